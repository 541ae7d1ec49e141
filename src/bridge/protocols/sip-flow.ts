// The SIP link's one flow to its provider (RFC 5626's word: the UDP 5-tuple, or the TCP/TLS connection, it registers
// over and is reached on) and the little of RFC 3261's transaction layer a UA with a single peer needs: non-INVITE
// client transactions (§17.1.2: matched by Via branch, retransmitted over UDP from T1 doubling up to T2, given up
// after TRANSACTION_TIMEOUT_MS), and answers to the provider's requests kept for their retransmissions (§17.2.2), so
// a MESSAGE whose 200 was lost is answered again instead of delivered twice.
//
// UDP goes over a connected socket: only the provider's address and port can reach it, and an ICMP port unreachable
// comes back as ECONNREFUSED (an unconnected socket never hears of it). Streams are cut with the server's framer.

import { randomBytes } from 'node:crypto';
import { Errors } from '../../errors.ts';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { canAnswer, MAGIC_COOKIE, parseMessage, serialize, SipParseError, sipError, validateRequest, type SipMessage, type SipRequest, type SipResponse } from '../../sip/message/index.ts';
import { StreamFramer, type FrameEvent } from '../../sip/transport/stream-framer.ts';
import { MAX_IM_BODY } from '../protocol.ts';
import type { SipTransport } from './sip-account.ts';

/** RFC 3261 §17.1.1.1: the round-trip estimate, and the cap on the retransmission interval of non-INVITE requests. */
export const T1_MS = 500;
export const T2_MS = 4000;
/** Our Timer F: 64×T1 (32 s) is the RFC's; a provider that has not answered in 8 s is treated as unreachable. */
export const TRANSACTION_TIMEOUT_MS = 8000;
const CONNECT_TIMEOUT_MS = 8000;
/** The largest message taken from the provider: a MAX_IM_BODY body and generous headers. */
const MAX_MESSAGE = MAX_IM_BODY + 8192;
/** Answers kept for retransmitted requests (§17.2.2's Timer J is 64×T1 over UDP), and how many. */
const ANSWER_TTL_MS = 64 * T1_MS;
const MAX_ANSWERS = 64;

export interface FlowTarget {
  transport: SipTransport;
  /** The policy-checked address to connect to. */
  address: string;
  port: number;
  /** The server's name, for TLS verification and SNI. */
  host: string;
  tlsVerify: boolean;
}

interface Pending {
  method: string;
  resolve(res: SipResponse): void;
  reject(err: Error): void;
  retransmit: NodeJS.Timeout | null;
  /** A provisional response came (§17.1.2.2 Proceeding): UDP retransmits every T2 from then on. */
  proceeding: boolean;
  timeout: NodeJS.Timeout;
}

export class SipTimeout extends Error {}

export class SipFlow {
  readonly transport: SipTransport;
  /** Our end of the flow, as a URI host (IPv6 in brackets), and its port: Via and Contact. */
  readonly localHost: string;
  readonly localPort: number;
  /** A request from the provider, well formed (RFC 3261 §8.2's checks), not a retransmission of one answered. */
  onRequest: (req: SipRequest) => void = () => undefined;
  /** The flow is gone (connection closed, ICMP unreachable, an unframeable stream): called once, not after close(). */
  onDown: (reason: string) => void = () => undefined;
  readonly #udp: dgram.Socket | null;
  readonly #stream: net.Socket | null;
  readonly #pending = new Map<string, Pending>();
  readonly #answers = new Map<string, { data: Buffer; at: number }>();
  #down = false;

  private constructor(transport: SipTransport, udp: dgram.Socket | null, stream: net.Socket | null) {
    this.transport = transport;
    this.#udp = udp;
    this.#stream = stream;
    const local = udp ? udp.address() : { address: stream!.localAddress ?? '', port: stream!.localPort ?? 0 };
    this.localHost = net.isIP(local.address) === 6 ? `[${local.address}]` : local.address;
    this.localPort = local.port;
    if (udp) {
      udp.on('message', (m) => {
        if (m.length <= MAX_MESSAGE) this.#handle(m, false);
      });
      udp.on('error', (err: NodeJS.ErrnoException) => this.#fail(err.code === 'ECONNREFUSED' ? 'ICMP port unreachable' : `UDP: ${err.code ?? err.message}`));
    } else {
      const s = stream!;
      const framer = new StreamFramer(MAX_MESSAGE);
      const events: FrameEvent[] = [];
      s.on('data', (chunk: Buffer) => {
        framer.push(chunk, events);
        for (const e of events.splice(0)) {
          if (e.kind === 'message') this.#handle(e.data, true);
          else if (e.kind === 'ping') s.write('\r\n'); // RFC 5626 §4.4.1: the pong
          else return this.#fail(`the provider sent an unframeable message (${e.reason})`);
        }
      });
      s.on('error', (err: NodeJS.ErrnoException) => this.#fail(`${transport.toUpperCase()}: ${err.code ?? err.message}`));
      s.on('close', () => this.#fail('connection closed by the provider'));
    }
  }

  /** Opens the flow; rejects when the provider cannot be reached (refused, TLS failure, no answer in time). */
  static open(t: FlowTarget): Promise<SipFlow> {
    return new Promise((resolve, reject) => {
      if (t.transport === 'udp') {
        const udp = dgram.createSocket(net.isIP(t.address) === 6 ? 'udp6' : 'udp4');
        const failed = (err: Error) => {
          udp.close();
          reject(err);
        };
        udp.once('error', failed);
        udp.connect(t.port, t.address, () => {
          udp.off('error', failed);
          resolve(new SipFlow('udp', udp, null));
        });
        return;
      }
      const s =
        t.transport === 'tls'
          ? // The certificate is checked against the server's name (SNI too, unless that is an address: RFC 6066 §3
            // has no SNI for literals) while the connection goes to the address the policy checked.
            tls.connect({ host: t.address, port: t.port, servername: net.isIP(t.host) ? undefined : t.host, rejectUnauthorized: t.tlsVerify, checkServerIdentity: (_h, cert) => tls.checkServerIdentity(t.host, cert) })
          : net.connect({ host: t.address, port: t.port });
      const failed = (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(err);
      };
      const timer = setTimeout(() => failed(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      s.once('error', failed);
      s.once(t.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.off('error', failed);
        s.setNoDelay(true);
        resolve(new SipFlow(t.transport, null, s));
      });
    });
  }

  /**
   * Sends a request as a new non-INVITE client transaction (its own Via branch) and resolves with the final
   * response; rejects with SipTimeout when none comes in time, or with an Error when the flow goes down.
   */
  request(req: SipRequest, o: { timeoutMs?: number; maxUdpBytes?: number } = {}): Promise<SipResponse> {
    if (this.#down) return Promise.reject(new Error('the flow to the provider is closed'));
    const timeoutMs = o.timeoutMs ?? TRANSACTION_TIMEOUT_MS;
    const branch = MAGIC_COOKIE + randomBytes(9).toString('base64url');
    req.set('Via', `SIP/2.0/${this.transport.toUpperCase()} ${this.localHost}:${this.localPort};branch=${branch};rport`);
    const data = serialize(req);
    if (this.#udp && o.maxUdpBytes !== undefined && data.length > o.maxUdpBytes) {
      return Promise.reject(new RangeError(`${req.method} of ${data.length} bytes: over UDP at most ${o.maxUdpBytes} (RFC 3428 §8); use transport tcp or tls`));
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        this.#pending.delete(branch);
        clearTimeout(p.timeout);
        if (p.retransmit) clearTimeout(p.retransmit);
      };
      const p: Pending = {
        method: req.method,
        resolve: (res) => (done(), resolve(res)),
        reject: (err) => (done(), reject(err)),
        retransmit: null,
        proceeding: false,
        timeout: setTimeout(() => p.reject(new SipTimeout(`no answer to ${req.method} within ${timeoutMs} ms`)), timeoutMs),
      };
      this.#pending.set(branch, p);
      // Timer E (§17.1.2.2): over UDP again after T1, 2×T1 … at most T2 apart; a stream is reliable.
      let interval = T1_MS;
      const again = () => {
        this.#write(data);
        interval = p.proceeding ? T2_MS : Math.min(interval * 2, T2_MS);
        p.retransmit = setTimeout(again, interval);
      };
      this.#write(data);
      if (this.#udp) p.retransmit = setTimeout(again, interval);
    });
  }

  /** Answers a request of the provider's, and keeps the answer for the request's retransmissions. */
  respond(req: SipRequest, res: SipResponse): void {
    const data = serialize(res);
    const key = answerKey(req);
    if (key !== null) {
      if (this.#answers.size >= MAX_ANSWERS) this.#answers.delete(this.#answers.keys().next().value!);
      this.#answers.set(key, { data, at: Date.now() });
    }
    this.#write(data);
  }

  /** Closes the flow; pending transactions fail; onDown is not called. */
  close(): void {
    if (this.#down) return;
    this.#down = true;
    this.#failPending('the flow to the provider is closed');
    if (this.#udp) this.#udp.close();
    else this.#stream!.destroy();
  }

  #write(data: Buffer): void {
    if (this.#down) return;
    if (this.#udp) this.#udp.send(data);
    else this.#stream!.write(data);
  }

  #fail(reason: string): void {
    if (this.#down) return;
    this.close();
    this.onDown(reason);
  }

  #failPending(reason: string): void {
    for (const p of [...this.#pending.values()]) p.reject(new Error(reason));
  }

  #handle(buf: Buffer, stream: boolean): void {
    let msg: SipMessage;
    try {
      msg = parseMessage(buf, stream);
    } catch (err) {
      // §16.3/§8.2: a request too broken to handle is answered 400 when it can be answered at all; anything else
      // (a broken response, a request without Via or CSeq) is dropped.
      const partial = err instanceof SipParseError ? err.partial : null;
      if (partial?.isRequest && (partial as SipRequest).method !== 'ACK' && canAnswer(partial)) {
        this.respond(partial as SipRequest, sipError(partial as SipRequest, { code: (err as SipParseError).code, sip: (err as SipParseError).sip ?? 400 }));
      }
      return;
    }
    if (!msg.isRequest) return this.#response(msg as SipResponse);
    const req = msg as SipRequest;
    if (req.method === 'ACK') return; // for a non-2xx of ours (§17.2.1); we hold no INVITE to acknowledge
    const invalid = validateRequest(req);
    if (invalid) return canAnswer(req) ? this.respond(req, sipError(req, { code: invalid.code, sip: invalid.sip ?? 400 })) : undefined;
    const key = answerKey(req);
    const kept = key === null ? undefined : this.#answers.get(key);
    if (kept && Date.now() - kept.at < ANSWER_TTL_MS) return this.#write(kept.data);
    try {
      this.onRequest(req);
    } catch {
      // A fault in handling one request must not take the connector down with it (this runs in a socket's event).
      this.respond(req, sipError(req, Errors.SIP_ERR_INTERNAL));
    }
  }

  #response(res: SipResponse): void {
    const branch = res.topVia()?.params.get('branch');
    const p = branch ? this.#pending.get(branch) : undefined;
    if (!p || res.cseq()?.method !== p.method) return; // a stray or late response: no transaction of ours
    if (res.status >= 200) p.resolve(res);
    else p.proceeding = true;
  }
}

/** A request's transaction as its retransmissions repeat it (§17.2.3, by the top Via branch); null without one. */
function answerKey(req: SipRequest): string | null {
  const branch = req.topVia()?.params.get('branch');
  return branch ? `${branch}\n${req.method}` : null;
}
