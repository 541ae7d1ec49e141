// The bridge tests' app side: a password session (which opens the vault), linking an account, reading the list.

import type { IncomingIm, LinkState } from '../../src/bridge/protocol.ts';
import { http, sessionOf, type Json, type Session, type Stream } from '../messaging/helpers.ts';

/** A protocol link's events as a test reads them: what it reported, in order, and waits for the next of each. */
export interface LinkRecorder {
  states: LinkState[];
  messages: IncomingIm[];
  /** The events object a ProtocolFactory takes. */
  events: { state(s: LinkState): void; message(m: IncomingIm): void };
  /** The next message (after those returned before) matching `pred`. */
  nextMessage(pred?: (m: IncomingIm) => boolean): Promise<IncomingIm>;
  /** The first state of that name reported (now or later). */
  nextState(name: LinkState['state'], ms?: number): Promise<LinkState>;
}

export function linkRecorder(): LinkRecorder {
  const states: LinkState[] = [];
  const messages: IncomingIm[] = [];
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  const until = <T>(find: () => T | undefined, what: string, ms = 15_000): Promise<T> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; states ${JSON.stringify(states)}`)), ms);
      const check = () => {
        const v = find();
        if (v !== undefined) {
          clearTimeout(t);
          resolve(v);
        } else waiters.push(check);
      };
      check();
    });
  let seen = 0;
  return {
    states,
    messages,
    events: { state: (s) => (states.push(s), wake()), message: (m) => (messages.push(m), wake()) },
    nextMessage: (pred = () => true) =>
      until(() => {
        const i = messages.findIndex((m, j) => j >= seen && pred(m));
        if (i < 0) return undefined;
        seen = i + 1;
        return messages[i];
      }, 'a message'),
    nextState: (name, ms) => until(() => states.find((s) => s.state === name), `state ${name}`, ms),
  };
}

export interface VaultSession extends Session {
  vault: Json;
}

export async function passwordSession(base: string, username: string, password: string, extra: Json = {}): Promise<VaultSession> {
  const r = await http(base, 'POST', '/v1/sessions', { body: { username, password, ...extra } });
  if (r.status !== 200) throw Object.assign(new Error(`session ${username}: ${r.status} ${JSON.stringify(r.json)}`), { status: r.status });
  return { ...sessionOf(r.json), vault: (r.json.vault ?? {}) as Json };
}

export async function linkXmpp(base: string, s: Session, server: string, jid: string, password: string, extra: Json = {}): Promise<Json> {
  const r = await http(base, 'POST', '/v1/linked-accounts', { auth: s.auth, body: { type: 'xmpp', server, username: jid, password, ...extra } });
  if (r.status !== 201) throw new Error(`link ${jid}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

export async function linkedList(base: string, s: Session): Promise<Json[]> {
  const r = await http(base, 'GET', '/v1/linked-accounts', { auth: s.auth });
  if (r.status !== 200) throw new Error(`list: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.linkedAccounts as Json[];
}

/**
 * Links an account whose credentials the server refuses: the 201, then the stream's `bad_credentials` frame for it,
 * then its record from GET /v1/linked-accounts (which must agree).
 */
export async function linkRefused(base: string, s: Session, stream: Stream, body: Json): Promise<Json> {
  const linked = await http(base, 'POST', '/v1/linked-accounts', { auth: s.auth, body });
  if (linked.status !== 201) throw new Error(`link: ${linked.status} ${JSON.stringify(linked.json)}`);
  const id = linked.json.id as string;
  await stream.waitFor((f) => f.some((x) => x.type === 'link-state' && x.linkedAccount === id && x.state === 'bad_credentials'), 'bad_credentials');
  const rec = (await linkedList(base, s)).find((a) => a.id === id);
  if (!rec) throw new Error(`linked account ${id} not listed`);
  return rec;
}

/** Polls until the linked account's state is `state` (or the time is up). */
export async function waitForState(base: string, s: Session, id: string, state: string, ms = 15_000): Promise<Json> {
  const until = Date.now() + ms;
  let last: Json | undefined;
  while (Date.now() < until) {
    last = (await linkedList(base, s)).find((l) => l.id === id);
    if (last?.state === state) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`linked account ${id} not ${state} within ${ms} ms: ${JSON.stringify(last)}`);
}

export function imSend(base: string, s: Session, linkedAccount: string, to: string, text: string) {
  return http(base, 'POST', '/v1/messages', { auth: s.auth, body: { linkedAccount, to, body: Buffer.from(text).toString('base64') } });
}
