// A minimal SIP test peer over real UDP or TCP sockets: send raw requests, read responses. Digest answers are
// computed here independently of src/sip/digest.ts (plain node:crypto), so tests do not check the server's
// digest code against itself.

import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';

export interface SipResponseView {
  raw: string;
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  all(name: string): string[];
}

export function parseResponse(raw: string): SipResponseView {
  const [head] = raw.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(lines[0]);
  if (!m) throw new Error(`not a response: ${lines[0]}`);
  const headers: Array<[string, string]> = [];
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c > 0) headers.push([l.slice(0, c).trim(), l.slice(c + 1).trim()]);
  }
  const norm = (n: string) => n.toLowerCase();
  return {
    raw,
    status: Number(m[1]),
    reason: m[2],
    headers,
    header: (n) => headers.find(([k]) => norm(k) === norm(n))?.[1],
    all: (n) => headers.filter(([k]) => norm(k) === norm(n)).map(([, v]) => v),
  };
}

export class SipTestClient {
  readonly transport: 'UDP' | 'TCP';
  private udp: dgram.Socket | null = null;
  private tcp: net.Socket | null = null;
  private queue: string[] = [];
  private waiting: Array<{ deliver: (s: string) => void; fail: (e: Error) => void }> = [];
  private closed = false;
  private tcpBuf = '';
  localPort = 0;
  readonly host: string;
  readonly port: number;

  private constructor(transport: 'UDP' | 'TCP', host: string, port: number) {
    this.transport = transport;
    this.host = host;
    this.port = port;
  }

  /** `bind`: the local address to send from (another loopback address, such as 127.0.0.2, is another source). */
  static async open(transport: 'UDP' | 'TCP', port: number, host = '127.0.0.1', bind = host): Promise<SipTestClient> {
    const c = new SipTestClient(transport, host, port);
    if (transport === 'UDP') {
      const s = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
      await new Promise<void>((r) => s.bind(0, bind, () => r()));
      s.on('message', (m) => c.push(m.toString('latin1')));
      c.udp = s;
      c.localPort = s.address().port;
    } else {
      const s = net.connect({ host, port, localAddress: bind });
      await new Promise<void>((r, j) => {
        s.once('connect', () => r());
        s.once('error', j);
      });
      s.on('data', (d) => c.onTcpData(d.toString('latin1')));
      s.on('error', () => {});
      // The server went away (killed, stopped): waiting for a response on this connection is pointless.
      s.on('close', () => {
        c.closed = true;
        c.failWaiting(new Error('connection closed'));
      });
      c.tcp = s;
      c.localPort = s.localPort!;
    }
    return c;
  }

  private onTcpData(d: string): void {
    this.tcpBuf += d;
    for (;;) {
      while (this.tcpBuf.startsWith('\r\n') && !this.tcpBuf.startsWith('\r\n\r\n')) {
        this.push('\r\n'); // keepalive pong
        this.tcpBuf = this.tcpBuf.slice(2);
      }
      const end = this.tcpBuf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const cl = /\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)/i.exec(this.tcpBuf.slice(0, end + 2));
      const total = end + 4 + (cl ? Number(cl[1]) : 0);
      if (this.tcpBuf.length < total) return;
      this.push(this.tcpBuf.slice(0, total));
      this.tcpBuf = this.tcpBuf.slice(total);
    }
  }

  private push(msg: string): void {
    const w = this.waiting.shift();
    if (w) w.deliver(msg);
    else this.queue.push(msg);
  }

  send(data: string | Buffer): void {
    const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (this.udp) this.udp.send(buf, this.port, this.host);
    else this.tcp!.write(buf);
  }

  /** UDP only: sends to another port than the one opened for (a peer the server was told of before it started). */
  sendTo(data: string, port: number, host = '127.0.0.1'): void {
    this.udp!.send(Buffer.from(data, 'latin1'), port, host);
  }

  /** The next message received (raw), or rejects after `ms`. */
  next(ms = 3000): Promise<string> {
    const q = this.queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    if (this.closed) return Promise.reject(new Error('client closed'));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error(`no message within ${ms} ms`));
      }, ms);
      const w = {
        deliver: (s: string) => {
          clearTimeout(t);
          resolve(s);
        },
        fail: (e: Error) => {
          clearTimeout(t);
          reject(e);
        },
      };
      this.waiting.push(w);
    });
  }

  /** True when nothing arrives within `ms`. */
  async silent(ms = 500): Promise<boolean> {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  async response(ms = 3000): Promise<SipResponseView> {
    return parseResponse(await this.next(ms));
  }

  /**
   * Sends a request and returns the final response (skipping provisional ones). With `retransmit` over UDP it is sent
   * again as a phone's non-INVITE client transaction does (RFC 3261 §17.1.2.2, Timer E: T1 = 500 ms doubling to T2 =
   * 4 s) until a response comes or `ms` has passed: a datagram the kernel dropped under a flood is not a lost answer.
   */
  async request(msg: string, ms = 3000, opts: { retransmit?: boolean } = {}): Promise<SipResponseView> {
    this.send(msg);
    if (!opts.retransmit || !this.udp) {
      for (;;) {
        const r = await this.response(ms);
        if (r.status >= 200) return r;
      }
    }
    // Responses to this request only: a stateless answer to a retransmission (a second 401) may arrive after the
    // first, while the caller has gone on to its next request.
    const cseq = /^CSeq:\s*(.+?)\s*$/im.exec(msg)?.[1];
    const callId = /^(?:Call-ID|i):\s*(.+?)\s*$/im.exec(msg)?.[1];
    const ours = (r: SipResponseView) => r.header('CSeq')?.trim() === cseq && r.header('Call-ID')?.trim() === callId;
    const deadline = Date.now() + ms;
    let interval = 500;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no final response within ${ms} ms (retransmitted)`);
      let r: SipResponseView;
      try {
        r = await this.response(Math.min(interval, left));
      } catch (err) {
        if (Date.now() >= deadline || !/no message within/.test((err as Error).message)) throw err;
        this.send(msg);
        interval = Math.min(interval * 2, 4000);
        continue;
      }
      if (!ours(r)) continue;
      if (r.status >= 200) return r;
      interval = 4000; // §17.1.2.2: after a provisional response, every T2
    }
  }

  /** Closes the socket; whoever still waits for a message is told at once instead of timing out. */
  close(): void {
    this.tcp?.destroy();
    if (this.closed) return;
    this.closed = true;
    this.udp?.close();
    this.failWaiting(new Error('client closed'));
  }

  private failWaiting(e: Error): void {
    for (const w of this.waiting.splice(0)) w.fail(e);
  }
}

export interface RequestSpec {
  method: string;
  uri: string;
  from: string;
  to: string;
  callId?: string;
  cseq?: number;
  contact?: string | string[];
  headers?: Array<[string, string]>;
  body?: string;
  branch?: string;
}

/** Builds a request for `client` (Via with its transport and port). */
export function buildRequest(client: SipTestClient, spec: RequestSpec): string {
  const branch = spec.branch ?? 'z9hG4bK' + randomBytes(8).toString('hex');
  const lines = [
    `${spec.method} ${spec.uri} SIP/2.0`,
    `Via: SIP/2.0/${client.transport} 127.0.0.1:${client.localPort};branch=${branch};rport`,
    `Max-Forwards: 70`,
    `From: ${spec.from};tag=${randomBytes(4).toString('hex')}`,
    `To: ${spec.to}`,
    `Call-ID: ${spec.callId ?? randomBytes(8).toString('hex') + '@test'}`,
    `CSeq: ${spec.cseq ?? 1} ${spec.method}`,
  ];
  for (const c of ([] as string[]).concat(spec.contact ?? [])) lines.push(`Contact: ${c}`);
  for (const [k, v] of spec.headers ?? []) lines.push(`${k}: ${v}`);
  const body = spec.body ?? '';
  lines.push(`Content-Length: ${Buffer.byteLength(body, 'latin1')}`);
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

/** Parses a WWW-Authenticate Digest challenge into its parameters. */
export function parseChallenge(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z0-9_-]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value.replace(/^Digest\s+/i, '')))) out[m[1].toLowerCase()] = m[2] ?? m[3];
  return out;
}

const HASHES: Record<string, string> = { MD5: 'md5', 'SHA-256': 'sha256', 'SHA-512-256': 'sha512-256' };

/** An Authorization header value answering `challenge` (RFC 7616 with qop=auth), computed independently. */
export function digestAuthorization(
  challenge: Record<string, string>,
  o: { username: string; password: string; method: string; uri: string; nc?: number; cnonce?: string },
): string {
  const alg = (challenge.algorithm ?? 'MD5').toUpperCase();
  const H = (s: string) => createHash(HASHES[alg]).update(s).digest('hex');
  const ha1 = H(`${o.username}:${challenge.realm}:${o.password}`);
  const ha2 = H(`${o.method}:${o.uri}`);
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = o.cnonce ?? randomBytes(6).toString('hex');
  if (challenge.qop) {
    const response = H(`${ha1}:${challenge.nonce}:${nc}:${cnonce}:auth:${ha2}`);
    return `Digest username="${o.username}", realm="${challenge.realm}", nonce="${challenge.nonce}", uri="${o.uri}", response="${response}", algorithm=${alg}, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
  }
  const response = H(`${ha1}:${challenge.nonce}:${ha2}`);
  return `Digest username="${o.username}", realm="${challenge.realm}", nonce="${challenge.nonce}", uri="${o.uri}", response="${response}", algorithm=${alg}`;
}
