// Presence over real SIP from tests: a peer that subscribes and publishes with Digest, keeps its dialogs, and reads
// and answers the NOTIFYs the server sends it. Built on SipTestClient, which answers nothing by itself: requests
// that arrive while a response is awaited are kept aside for nextRequest().

import { randomBytes } from 'node:crypto';
import { digestAuthorization, parseChallenge, parseResponse, SipTestClient, type SipResponseView } from './sip-client.ts';

export interface SipRequestView {
  raw: string;
  method: string;
  uri: string;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  all(name: string): string[];
  body: string;
}

const COMPACT: Record<string, string> = { i: 'call-id', f: 'from', t: 'to', v: 'via', m: 'contact', o: 'event', c: 'content-type', l: 'content-length' };
const norm = (n: string) => COMPACT[n.toLowerCase()] ?? n.toLowerCase();

export function parseRequest(raw: string): SipRequestView {
  const sep = raw.indexOf('\r\n\r\n');
  const head = sep < 0 ? raw : raw.slice(0, sep);
  const body = sep < 0 ? '' : raw.slice(sep + 4);
  const lines = head.split('\r\n');
  const m = /^([A-Z]+) (\S+) SIP\/2\.0$/.exec(lines[0]);
  if (!m) throw new Error(`not a request: ${lines[0]}`);
  const headers: Array<[string, string]> = [];
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c > 0) headers.push([l.slice(0, c).trim(), l.slice(c + 1).trim()]);
  }
  return {
    raw,
    method: m[1],
    uri: m[2],
    headers,
    header: (n) => headers.find(([k]) => norm(k) === norm(n))?.[1],
    all: (n) => headers.filter(([k]) => norm(k) === norm(n)).map(([, v]) => v),
    body,
  };
}

/** A response to a received request: Via, From, To, Call-ID and CSeq copied. */
export function responseTo(req: SipRequestView, status = 200, reason = 'OK', extra: Array<[string, string]> = []): string {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const [k, v] of req.headers) if (['via', 'from', 'to', 'call-id', 'cseq'].includes(norm(k))) lines.push(`${k}: ${v}`);
  for (const [k, v] of extra) lines.push(`${k}: ${v}`);
  lines.push('Content-Length: 0');
  return lines.join('\r\n') + '\r\n\r\n';
}

export interface Account {
  user: string;
  password: string;
  domain: string;
}

export interface Dialog {
  callId: string;
  fromTag: string;
  toTag: string | null;
  cseq: number;
  presentity: string;
  event: string;
}

/** The `;tag=` of a From or To value. */
export function tagOf(v: string | undefined): string | null {
  if (!v) return null;
  const gt = v.lastIndexOf('>');
  return /;\s*tag=([^;\s]+)/i.exec(gt >= 0 ? v.slice(gt + 1) : v)?.[1] ?? null;
}

export class PresencePeer {
  readonly c: SipTestClient;
  readonly account: Account;
  private readonly stash: SipRequestView[] = [];

  constructor(c: SipTestClient, account: Account) {
    this.c = c;
    this.account = account;
  }

  static async open(transport: 'UDP' | 'TCP', port: number, account: Account): Promise<PresencePeer> {
    return new PresencePeer(await SipTestClient.open(transport, port), account);
  }

  get aor(): string {
    return `${this.account.user}@${this.account.domain}`;
  }

  close(): void {
    this.c.close();
  }

  /** The final response to a request sent now; requests arriving meanwhile are kept for nextRequest(). */
  async send(msg: string, ms = 3000): Promise<SipResponseView> {
    this.c.send(msg);
    for (;;) {
      const raw = await this.c.next(ms);
      if (!raw.startsWith('SIP/2.0')) {
        this.stash.push(parseRequest(raw));
        continue;
      }
      const r = parseResponse(raw);
      if (r.status >= 200) return r;
    }
  }

  /** The next request received (of `method`, answering nothing), or rejects after `ms`. */
  async nextRequest(method = 'NOTIFY', ms = 3000): Promise<SipRequestView> {
    const i = this.stash.findIndex((r) => r.method === method);
    if (i >= 0) return this.stash.splice(i, 1)[0];
    const deadline = Date.now() + ms;
    for (;;) {
      const raw = await this.c.next(Math.max(1, deadline - Date.now()));
      if (raw.startsWith('SIP/2.0') || raw === '\r\n') continue;
      const req = parseRequest(raw);
      if (req.method === method) return req;
      this.stash.push(req);
    }
  }

  /** The next NOTIFY, answered `status` (200 by default). */
  async notify(ms = 3000, status = 200): Promise<SipRequestView> {
    const n = await this.nextRequest('NOTIFY', ms);
    this.c.send(responseTo(n, status, status === 200 ? 'OK' : 'Error'));
    return n;
  }

  /** True when no request arrives within `ms`. */
  async quiet(ms = 500): Promise<boolean> {
    if (this.stash.length) return false;
    try {
      await this.nextRequest('NOTIFY', ms);
      return false;
    } catch {
      return true;
    }
  }

  private build(method: string, uri: string, d: { callId: string; fromTag: string; toTag: string | null; cseq: number; to: string }, headers: Array<[string, string]>, body = ''): string {
    const a = this.account;
    const lines = [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/${this.c.transport} 127.0.0.1:${this.c.localPort};branch=z9hG4bK${randomBytes(8).toString('hex')};rport`,
      'Max-Forwards: 70',
      `From: <sip:${a.user}@${a.domain}>;tag=${d.fromTag}`,
      `To: <${d.to}>${d.toTag ? `;tag=${d.toTag}` : ''}`,
      `Call-ID: ${d.callId}`,
      `CSeq: ${d.cseq} ${method}`,
      ...headers.map(([k, v]) => `${k}: ${v}`),
      `Content-Length: ${Buffer.byteLength(body)}`,
    ];
    return lines.join('\r\n') + '\r\n\r\n' + body;
  }

  /** Sends a request; a 401 is answered once with Digest (CSeq + 1). Returns the final response and the CSeq used. */
  async authed(
    method: string,
    uri: string,
    d: { callId: string; fromTag: string; toTag: string | null; cseq: number; to: string },
    headers: Array<[string, string]>,
    body = '',
  ): Promise<{ res: SipResponseView; cseq: number }> {
    let res = await this.send(this.build(method, uri, d, headers, body));
    let cseq = d.cseq;
    if (res.status === 401) {
      const challenge = parseChallenge(res.header('WWW-Authenticate')!);
      const auth = digestAuthorization(challenge, { username: this.account.user, password: this.account.password, method, uri });
      cseq++;
      res = await this.send(this.build(method, uri, { ...d, cseq }, [...headers, ['Authorization', auth]], body));
    }
    return { res, cseq };
  }

  /** SUBSCRIBE to a presentity (user@domain); the dialog comes back for refreshes. */
  async subscribe(presentity: string, o: { expires?: number; event?: string; headers?: Array<[string, string]> } = {}): Promise<{ res: SipResponseView; dialog: Dialog }> {
    const callId = `sub-${randomBytes(6).toString('hex')}@test`;
    const fromTag = randomBytes(4).toString('hex');
    const event = o.event ?? 'presence';
    const headers: Array<[string, string]> = [
      ['Contact', `<sip:${this.account.user}@127.0.0.1:${this.c.localPort};transport=${this.c.transport.toLowerCase()}>`],
      ['Event', event],
      ['Accept', 'application/pidf+xml'],
      ...(o.expires !== undefined ? ([['Expires', String(o.expires)]] as Array<[string, string]>) : []),
      ...(o.headers ?? []),
    ];
    const { res, cseq } = await this.authed('SUBSCRIBE', `sip:${presentity}`, { callId, fromTag, toTag: null, cseq: 1, to: `sip:${presentity}` }, headers);
    return { res, dialog: { callId, fromTag, toTag: tagOf(res.header('To')), cseq, presentity, event } };
  }

  /** SUBSCRIBE within the dialog: a refresh, or with expires 0 an unsubscribe. */
  async resubscribe(d: Dialog, expires: number, headers: Array<[string, string]> = []): Promise<SipResponseView> {
    const h: Array<[string, string]> = [
      ['Contact', `<sip:${this.account.user}@127.0.0.1:${this.c.localPort};transport=${this.c.transport.toLowerCase()}>`],
      ['Event', d.event],
      ['Expires', String(expires)],
      ...headers,
    ];
    const { res, cseq } = await this.authed('SUBSCRIBE', `sip:${d.presentity}`, { callId: d.callId, fromTag: d.fromTag, toTag: d.toTag, cseq: d.cseq + 1, to: `sip:${d.presentity}` }, h);
    d.cseq = cseq;
    return res;
  }

  /** PUBLISH our own presence: a body (initial or modify), an entity tag (refresh, modify, remove). */
  async publish(o: { body?: string; etag?: string; expires?: number; event?: string; contentType?: string; presentity?: string } = {}): Promise<SipResponseView> {
    const target = o.presentity ?? this.aor;
    const headers: Array<[string, string]> = [['Event', o.event ?? 'presence']];
    if (o.expires !== undefined) headers.push(['Expires', String(o.expires)]);
    if (o.etag) headers.push(['SIP-If-Match', o.etag]);
    if (o.body) headers.push(['Content-Type', o.contentType ?? 'application/pidf+xml']);
    const d = { callId: `pub-${randomBytes(6).toString('hex')}@test`, fromTag: randomBytes(4).toString('hex'), toTag: null, cseq: 1, to: `sip:${target}` };
    return (await this.authed('PUBLISH', `sip:${target}`, d, headers, o.body ?? '')).res;
  }
}

/** A PIDF document with one tuple and, optionally, RPID activities. */
export function pidf(entity: string, basic: 'open' | 'closed', o: { id?: string; activities?: string[]; note?: string; contact?: string } = {}): string {
  const acts = o.activities?.length ? `<dm:person id="p1"><rpid:activities>${o.activities.map((a) => `<rpid:${a}/>`).join('')}</rpid:activities></dm:person>` : '';
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="${entity}">`,
    `<tuple id="${o.id ?? 't1'}"><status><basic>${basic}</basic></status>${o.contact ? `<contact>${o.contact}</contact>` : ''}${o.note ? `<note>${o.note}</note>` : ''}</tuple>`,
    acts,
    '</presence>',
  ].join('\n');
}

/** The <basic> values of a PIDF body, in document order. */
export function basics(body: string): string[] {
  return [...body.matchAll(/<basic>([^<]+)<\/basic>/g)].map((m) => m[1]);
}
