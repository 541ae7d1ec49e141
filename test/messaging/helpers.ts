// An app's view of the inbox for the messaging tests: log in (password, then an app session), send, read the stream.

import { WebSocket } from 'ws';

export type Json = Record<string, unknown>;

export interface Session {
  kid: string;
  key: string;
  expiresAt: number;
  auth: string;
}

export async function http(base: string, method: string, path: string, o: { auth?: string; body?: unknown } = {}): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = {};
  if (o.auth) headers.authorization = o.auth;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const text = await r.text();
  return { status: r.status, json: text ? (JSON.parse(text) as Json) : {} };
}

/** Password login (/auth/login) and then an app session from its access token. */
export async function appLogin(base: string, username: string, password: string): Promise<Session> {
  const login = await http(base, 'POST', '/auth/login', { body: { username, password } });
  if (login.status !== 200) throw new Error(`login ${username}: ${login.status} ${JSON.stringify(login.json)}`);
  const s = await http(base, 'POST', '/v1/sessions', { auth: `Bearer ${login.json.access_token as string}` });
  if (s.status !== 200) throw new Error(`session ${username}: ${s.status} ${JSON.stringify(s.json)}`);
  return sessionOf(s.json);
}

export function sessionOf(j: Json): Session {
  return { kid: j.kid as string, key: j.key as string, expiresAt: j.expiresAt as number, auth: `Session ${j.kid as string}:${j.key as string}` };
}

export function send(base: string, from: Session, to: string, text: string, clientId?: string) {
  return http(base, 'POST', '/v1/messages', { auth: from.auth, body: { to, body: Buffer.from(text).toString('base64'), ...(clientId ? { clientId } : {}) } });
}

/** A WebSocket on the inbox stream that records every frame. */
export interface Stream {
  frames: Json[];
  /** The texts of the message frames so far. */
  texts(): string[];
  waitFor(pred: (frames: Json[]) => boolean, what: string, ms?: number): Promise<void>;
  ack(id: string): void;
  close(): Promise<void>;
  ws: WebSocket;
}

export function openStream(base: string, s: Session | null, headers: Record<string, string> = {}): Promise<Stream> {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + '/v1/messages/stream', { headers: s ? { authorization: s.auth, ...headers } : headers });
  const frames: Json[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (d) => {
    frames.push(JSON.parse(d.toString()) as Json);
    for (const w of [...waiters]) w();
  });
  ws.on('close', () => {
    for (const w of [...waiters]) w();
  });
  const stream: Stream = {
    frames,
    ws,
    texts: () => frames.filter((f) => f.type === 'message').map((f) => Buffer.from(f.body as string, 'base64').toString()),
    waitFor: (pred, what, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(frames)) return;
          waiters.delete(check);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(frames)}`));
        }, ms);
        waiters.add(check);
        check();
      }),
    ack: (id) => ws.send(JSON.stringify({ type: 'ack', id })),
    close: () =>
      new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(stream));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

export const queueEmpty = (frames: Json[]) => frames.some((f) => f.type === 'queue-empty');
