// A raw SIP user agent for call tests over real sockets: a device that receives INVITEs and answers them, a caller
// that answers the proxy's 407 with Digest, and the ACK/CANCEL/BYE a UA builds (RFC 3261 §13, §15, §17).

import { randomBytes } from 'node:crypto';
import { digestAuthorization, parseChallenge, parseResponse, SipTestClient, type SipResponseView } from './sip-client.ts';

export interface Msg {
  raw: string;
  startLine: string;
  isRequest: boolean;
  method: string | null;
  status: number;
  header(name: string): string | undefined;
  all(name: string): string[];
}

export function parseMsg(raw: string): Msg {
  const head = raw.split('\r\n\r\n')[0].split('\r\n');
  const startLine = head[0];
  const isRequest = !startLine.startsWith('SIP/2.0');
  const headers = head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
  const compact: Record<string, string> = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length' };
  const norm = (n: string) => compact[n.toLowerCase()] ?? n.toLowerCase();
  return {
    raw,
    startLine,
    isRequest,
    method: isRequest ? startLine.split(' ')[0] : null,
    status: isRequest ? 0 : Number(startLine.split(' ')[1]),
    header: (n) => headers.find(([k]) => norm(k) === norm(n))?.[1],
    all: (n) => headers.filter(([k]) => norm(k) === norm(n)).map(([, v]) => v),
  };
}

/** Waits for the first message matching `pred`, dropping the others (retransmissions, provisionals). */
export async function waitFor(c: SipTestClient, pred: (m: Msg) => boolean, ms = 5000): Promise<Msg> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('no matching message in time');
    const m = parseMsg(await c.next(left));
    if (pred(m)) return m;
  }
}

export const isRequest = (method: string) => (m: Msg) => m.isRequest && m.method === method;
export const isResponse = (method: string, status?: number | ((s: number) => boolean)) => (m: Msg) =>
  !m.isRequest &&
  (m.header('CSeq') ?? '').endsWith(' ' + method) &&
  (status === undefined || (typeof status === 'number' ? m.status === status : status(m.status)));

/** A response to a received request: its Vias, From, To (with `toTag` when it has none), Call-ID, CSeq. */
export function reply(req: Msg, status: number, o: { toTag?: string; headers?: Array<[string, string]>; body?: string } = {}): string {
  const lines = [`SIP/2.0 ${status} ${status === 200 ? 'OK' : 'Status'}`];
  for (const v of req.all('Via')) lines.push(`Via: ${v}`);
  for (const rr of req.all('Record-Route')) if (status > 100 && status < 300) lines.push(`Record-Route: ${rr}`);
  lines.push(`From: ${req.header('From')}`);
  const to = req.header('To')!;
  lines.push(`To: ${/;tag=/.test(to) || status === 100 || !o.toTag ? to : `${to};tag=${o.toTag}`}`);
  lines.push(`Call-ID: ${req.header('Call-ID')}`, `CSeq: ${req.header('CSeq')}`);
  for (const [k, v] of o.headers ?? []) lines.push(`${k}: ${v}`);
  const body = o.body ?? '';
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

export interface CallSpec {
  from: string;
  to: string;
  uri: string;
  user: string;
  password: string;
  callId?: string;
  headers?: Array<[string, string]>;
  /** An SDP offer for the INVITE (none: an INVITE without a body). */
  sdp?: string;
}

/** A caller's INVITE and what it needs to build its ACK, CANCEL and in-dialog requests. */
export class Call {
  readonly c: SipTestClient;
  readonly callId: string;
  readonly fromTag = randomBytes(4).toString('hex');
  cseq = 1;
  branch = '';
  spec: CallSpec;
  routeSet: string[] = [];
  remoteTarget = '';
  toHeader = '';

  constructor(c: SipTestClient, spec: CallSpec) {
    this.c = c;
    this.spec = spec;
    this.callId = spec.callId ?? `call-${randomBytes(6).toString('hex')}@test`;
    this.toHeader = spec.to;
  }

  private via(branch: string): string {
    return `Via: SIP/2.0/${this.c.transport} 127.0.0.1:${this.c.localPort};branch=${branch};rport`;
  }

  invite(extra: Array<[string, string]> = []): string {
    this.branch = 'z9hG4bK' + randomBytes(6).toString('hex');
    const lines = [
      `INVITE ${this.spec.uri} SIP/2.0`,
      this.via(this.branch),
      'Max-Forwards: 70',
      `From: ${this.spec.from};tag=${this.fromTag}`,
      `To: ${this.spec.to}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${this.cseq} INVITE`,
      `Contact: <sip:${this.spec.user}@127.0.0.1:${this.c.localPort};transport=${this.c.transport.toLowerCase()}>`,
      ...[...(this.spec.headers ?? []), ...extra].map(([k, v]) => `${k}: ${v}`),
      ...(this.spec.sdp === undefined ? [] : ['Content-Type: application/sdp']),
      `Content-Length: ${Buffer.byteLength(this.spec.sdp ?? '')}`,
    ];
    return lines.join('\r\n') + '\r\n\r\n' + (this.spec.sdp ?? '');
  }

  /** The ACK for a non-2xx final (same branch, hop by hop). */
  ackFor(res: Msg | SipResponseView): string {
    return [
      `ACK ${this.spec.uri} SIP/2.0`,
      this.via(this.branch),
      'Max-Forwards: 70',
      `From: ${this.spec.from};tag=${this.fromTag}`,
      `To: ${res.header('To')}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${this.cseq} ACK`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
  }

  cancel(): string {
    return [`CANCEL ${this.spec.uri} SIP/2.0`, this.via(this.branch), 'Max-Forwards: 70', `From: ${this.spec.from};tag=${this.fromTag}`, `To: ${this.spec.to}`, `Call-ID: ${this.callId}`, `CSeq: ${this.cseq} CANCEL`, 'Content-Length: 0', '', ''].join('\r\n');
  }

  /** Sends the INVITE, answers a 407 with Digest, and returns the first response to the authenticated INVITE. */
  async start(extra: Array<[string, string]> = []): Promise<void> {
    this.c.send(this.invite(extra));
    let first = await waitFor(this.c, isResponse('INVITE'));
    if (first.status === 100) {
      // Forwarded (the proxy's 100), or a slow 407 after the endpoint's 100: a 407 would follow at once.
      try {
        first = await waitFor(this.c, isResponse('INVITE', (s) => s > 100), 400);
      } catch {
        return;
      }
    }
    if (first.status !== 407) {
      this.pushBack = first;
      return;
    }
    this.c.send(this.ackFor(first));
    const ch = parseChallenge(first.header('Proxy-Authenticate')!);
    const auth = digestAuthorization(ch, { username: this.spec.user, password: this.spec.password, method: 'INVITE', uri: this.spec.uri });
    this.cseq++;
    this.c.send(this.invite([...extra, ['Proxy-Authorization', auth]]));
  }

  pushBack: Msg | null = null;

  /** The next response to the INVITE matching `pred`. */
  async response(pred: (s: number) => boolean, ms = 5000): Promise<Msg> {
    if (this.pushBack && pred(this.pushBack.status)) {
      const m = this.pushBack;
      this.pushBack = null;
      return m;
    }
    this.pushBack = null;
    return waitFor(this.c, isResponse('INVITE', pred), ms);
  }

  /** Learns the dialog from a 2xx: route set (reversed Record-Route) and remote target. */
  established(ok: Msg): void {
    this.routeSet = ok.all('Record-Route').flatMap((v) => v.split(/,(?![^<]*>)/).map((s) => s.trim())).reverse();
    this.remoteTarget = /<([^>]+)>/.exec(ok.header('Contact')!)![1];
    this.toHeader = ok.header('To')!;
  }

  /** An in-dialog request along the route set (loose routing). */
  inDialog(method: string, o: { branch?: string; cseq?: number } = {}): string {
    const cseq = o.cseq ?? (method === 'ACK' ? this.cseq : ++this.cseq);
    const lines = [
      `${method} ${this.remoteTarget} SIP/2.0`,
      this.via(o.branch ?? 'z9hG4bK' + randomBytes(6).toString('hex')),
      'Max-Forwards: 70',
      ...this.routeSet.map((r) => `Route: ${r}`),
      `From: ${this.spec.from};tag=${this.fromTag}`,
      `To: ${this.toHeader}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`,
      'Content-Length: 0',
    ];
    return lines.join('\r\n') + '\r\n\r\n';
  }
}

export { parseResponse };
