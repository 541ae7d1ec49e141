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
// A browser cannot put `Authorization: Session …` on a WebSocket, so until the server offers a browser-usable
// credential for /v1/messages/stream (a short-lived ticket, issue 18) the page reads the inbox over HTTP every
// POLL_MS: one GET per interval per open page, which the route's own bounds (limit ≤ 100) keep small.

import { ApiError } from '/ui/shared/auth.js';

const POLL_MS = 2000;

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
   *           onState: (s: string) => void, onVault?: (v: { state: string, recoveryKey?: string, message?: string }) => void }} o
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
  }

  async start() {
    await this.login();
    this.poll();
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
          const text = m.contentType.split(';')[0].trim().toLowerCase().startsWith('text/') ? utf8Base64(m.body) : `[${m.contentType}, not shown]`;
          this.o.onMessage({ id: m.id, from: m.sender, body: text, contentType: m.contentType, timestamp: m.timestamp, linkedAccount: m.linkedAccount, remote: m.remote });
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
    const app = this.app;
    if (app) {
      await fetch('/v1/sessions/current', { method: 'DELETE', headers: { authorization: `Session ${app.kid}:${app.key}` }, credentials: 'omit' }).catch(() => {});
    }
    this.app = null;
  }
}
