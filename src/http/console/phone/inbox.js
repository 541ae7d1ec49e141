// The softphone's app side of messaging (issue 18's inbox): an app session (POST /v1/sessions; its key lives in
// this object only), the queued messages read in order and acked once shown (GET /v1/messages, DELETE
// /v1/messages/{id}), and sends through POST /v1/messages with a client id (a retry is stored once), to an address
// of record or, naming a linked account, to a remote IM address through the bridge (issue 19).
//
// The first session of a sign-in is started with the password the user just typed (it opens the bridge's vault
// for this session, which linking an account and connecting the linked ones need); the page drops the password
// right after. Later sessions (after a reload, or when one expired) come from the access token: they read and send
// messages, but the vault stays closed until the next sign-in with the password.
//
// Delivery is the stream's (/v1/messages/stream): a browser cannot put `Authorization: Session …` on a WebSocket,
// so the page opens it with a single-use ticket (POST /v1/messages/stream-ticket, 30 s, issue 18). On the stream
// come messages (acked on it once shown), the "queue-empty" marker, receipts for what this account sent, and the
// bridge's link-state and delivery frames. A server without tickets (404), or a stream that cannot be opened,
// leaves the page reading the inbox over HTTP every POLL_MS (one GET per interval per open page; limit ≤ 100).

import { ApiError } from '/ui/shared/auth.js';

const POLL_MS = 2000;
/** Reopening a dropped stream: 1 s, 2 s, 4 s … at most 30 s; after MAX_STREAM_FAILURES in a row, HTTP polling. */
const MAX_STREAM_BACKOFF_MS = 30_000;
const MAX_STREAM_FAILURES = 5;
/** Close codes from stream.ts/messages.ts: the session expired; another socket of this session replaced this one. */
const CLOSE_SESSION_EXPIRED = 4401;
const CLOSE_REPLACED = 4409;

function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function utf8Base64(b64) {
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

export class AppInbox {
  /**
   * @param {import('/ui/shared/auth.js').Session} session the signed-in browser session (its access token)
   * @param {{ onMessage: (m: { id: string, from: string, body: string, contentType: string, timestamp: number, linkedAccount?: string, remote?: string }) => void,
   *           onState: (s: string) => void, onVault?: (v: { state: string, recoveryKey?: string, message?: string }) => void,
   *           onFrame?: (f: { type: string }) => void }} o  onFrame: receipt, link-state and delivery frames
   * @param {{ username: string, password: string } | null} credentials the password of this sign-in, used once
   */
  constructor(session, o, credentials = null) {
    this.session = session;
    this.o = o;
    this.credentials = credentials;
    this.app = null; // { kid, key, expiresAt }
    this.timer = null;
    this.stopped = false;
    this.seen = new Set(); // ids shown but whose ack failed: shown once
    this.ws = null;
    this.streamFailures = 0;
  }

  async start() {
    await this.login();
    if (!(await this.openStream())) this.poll();
  }

  /** True while the stream is open (the caller may then refresh other state less often). */
  get live() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Opens the stream with a fresh ticket; false when this server has no tickets (HTTP polling then). */
  async openStream() {
    let t;
    try {
      t = await this.call('POST', '/v1/messages/stream-ticket');
    } catch (err) {
      if (err.status === 404) return false;
      throw err;
    }
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/messages/stream?ticket=${encodeURIComponent(t.ticket)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.streamFailures = 0;
      this.o.onState('live');
    });
    ws.addEventListener('message', (e) => this.onFrame(ws, e.data));
    ws.addEventListener('close', (e) => this.onStreamClose(ws, e.code));
    return true;
  }

  onFrame(ws, data) {
    let f;
    try {
      f = JSON.parse(String(data));
    } catch {
      return;
    }
    if (f.type === 'message') {
      if (!this.seen.has(f.id)) this.show(f);
      this.seen.delete(f.id);
      ws.send(JSON.stringify({ type: 'ack', id: f.id }));
    } else if (f.type !== 'queue-empty') this.o.onFrame?.(f);
  }

  onStreamClose(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.stopped || code === CLOSE_REPLACED) return;
    if (code === CLOSE_SESSION_EXPIRED) this.app = null; // the next ticket comes with a new session
    this.streamFailures += 1;
    if (this.streamFailures > MAX_STREAM_FAILURES) {
      this.o.onState('polling (the stream keeps failing)');
      return this.poll();
    }
    this.o.onState('reconnecting');
    const delay = Math.min(MAX_STREAM_BACKOFF_MS, 1000 * 2 ** (this.streamFailures - 1));
    this.timer = setTimeout(() => {
      this.openStream().then(
        (ok) => ok || this.poll(),
        () => this.onStreamClose(null, 1006), // no ticket (this.ws is null, like the argument): try again later
      );
    }, delay);
  }

  show(m) {
    const text = m.contentType.split(';')[0].trim().toLowerCase().startsWith('text/') ? utf8Base64(m.body) : `[${m.contentType}, not shown]`;
    this.o.onMessage({ id: m.id, from: m.sender, body: text, contentType: m.contentType, timestamp: m.timestamp, linkedAccount: m.linkedAccount, remote: m.remote });
  }

  async login() {
    const credentials = this.credentials;
    this.credentials = null;
    // The access token rides along: a server without the bridge ignores the body and takes the Bearer token.
    this.app = await this.session.api('POST', '/v1/sessions', credentials ?? undefined);
    if (this.app.vault) this.o.onVault?.(this.app.vault);
    delete this.app.vault;
    this.o.onState('connected');
  }

  /** fetch() with the app session's credential; one new session and retry when it expired (401). */
  async call(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      if (!this.app) await this.login();
      const headers = { authorization: `Session ${this.app.kid}:${this.app.key}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit' });
      if (res.status === 401 && attempt === 0) {
        this.app = null;
        continue;
      }
      if (res.status === 204) return null;
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new ApiError(res.status, data.error?.code ?? 'HTTP_ERR', data.error?.message ?? `HTTP ${res.status}`);
      return data;
    }
  }

  poll() {
    if (this.stopped) return;
    this.readQueue().then(
      () => this.o.onState('connected'),
      (err) => this.o.onState(`offline: ${err.message}`),
    ).finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => this.poll(), POLL_MS);
    });
  }

  /** Shows every queued message in order, then acks it: an ack lost on the way shows it again only once. */
  async readQueue() {
    for (;;) {
      const { messages, more } = await this.call('GET', '/v1/messages?limit=100');
      for (const m of messages) {
        if (!this.seen.has(m.id)) {
          this.seen.add(m.id);
          this.show(m);
        }
        await this.call('DELETE', `/v1/messages/${encodeURIComponent(m.id)}`).then(
          () => this.seen.delete(m.id),
          (err) => {
            if (err.status === 404) this.seen.delete(m.id); // acked before (another tab of this account)
          },
        );
      }
      if (!more) return;
    }
  }

  /** Sends text to an address (with { linkedAccount }: a remote IM address); resolves with { id, status, delivered }. */
  send(to, text, extra = {}) {
    return this.call('POST', '/v1/messages', { to, body: base64Utf8(text), contentType: 'text/plain;charset=utf-8', clientId: crypto.randomUUID(), ...extra });
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, 'page closed');
    this.ws = null;
    const app = this.app;
    if (app) {
      await fetch('/v1/sessions/current', { method: 'DELETE', headers: { authorization: `Session ${app.kid}:${app.key}` }, credentials: 'omit' }).catch(() => {});
    }
    this.app = null;
  }
}
