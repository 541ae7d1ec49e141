// SIP over UDP (RFC 3261 §18): one socket per listening address; datagrams above the size limit are dropped
// (they cannot be answered 513 reliably, and answering would amplify floods).

import dgram from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { Destination, InboundHandler, ListenerAddress, SendDone, Source, Transport } from './types.ts';

export interface UdpOptions {
  hosts: string[];
  port: number;
  maxMessageSize: number;
  /** Share the port with sibling processes (SO_REUSEPORT) so every core can serve it. */
  reusePort?: boolean;
  onMessage: InboundHandler;
  onDrop?: (reason: string, source: Source) => void;
  onError?: (err: Error) => void;
}

/** Datagrams a turn may queue before they are sent without waiting for its end (enqueue). */
const OUTBOX_MAX = 64;

export class UdpTransport implements Transport {
  readonly name = 'UDP' as const;
  private readonly sockets: Array<{ socket: dgram.Socket; family: 4 | 6; local: { address: string; port: number } }> = [];
  private readonly opts: UdpOptions;
  /** Sends waiting for the turn's end (enqueue): socket, data, port, address, done, five slots a datagram. */
  private outbox: Array<dgram.Socket | Buffer | number | string | SendDone | undefined> = [];
  private flushScheduled = false;
  /** The turn's end flushed the outbox and no datagram has been read since: what is queued now is a straggler. */
  private afterFlush = false;
  private stragglers = false;

  constructor(opts: UdpOptions) {
    this.opts = opts;
  }

  async listen(): Promise<ListenerAddress[]> {
    const out: ListenerAddress[] = [];
    let port = this.opts.port;
    for (const host of this.opts.hosts) {
      const family = isIP(host) === 6 ? 6 : 4;
      const socket = dgram.createSocket({
        type: family === 6 ? 'udp6' : 'udp4',
        ipv6Only: family === 6,
        reuseAddr: this.opts.reusePort === true,
        ...(this.opts.reusePort ? { reusePort: true } : {}),
        lookup: literalLookup,
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(port, host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      // Large kernel buffers absorb bursts (a restart's registration storm) instead of dropping them.
      try {
        socket.setRecvBufferSize(8 * 1024 * 1024);
        socket.setSendBufferSize(4 * 1024 * 1024);
      } catch {
        // The kernel caps these at net.core.rmem_max; smaller buffers still work.
      }
      const addr = socket.address();
      const local = { address: addr.address, port: addr.port };
      port = addr.port; // with port 0, every address shares the first one's port
      const entry = { socket, family: family as 4 | 6, local };
      const max = this.opts.maxMessageSize;
      socket.on('message', (data, rinfo) => {
        const source: Source = {
          transport: 'UDP',
          address: rinfo.address,
          port: rinfo.port,
          family: rinfo.family === 'IPv6' ? 6 : 4,
          connectionId: null,
          local,
        };
        // The previous turn's stragglers leave before this pass's first datagram is handled (enqueue).
        if (this.stragglers) this.flush();
        this.afterFlush = false;
        if (data.length > max) {
          this.opts.onDrop?.('datagram above max message size', source);
          return;
        }
        this.opts.onMessage(data, source);
      });
      socket.on('error', (err) => this.opts.onError?.(err));
      this.sockets.push(entry);
      out.push({ transport: 'UDP', address: local.address, port: local.port });
    }
    return out;
  }

  send(data: Buffer, to: Destination): Promise<void> {
    const socket = this.socketFor(to.address);
    if (!socket) return Promise.reject(new Error('UDP transport not listening'));
    return new Promise((resolve, reject) => this.enqueue(socket, data, to, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Fire-and-forget send for the hot paths (responses, forwarded requests, NOTIFYs). No completion callback: node:dgram
   * then queues nothing per datagram (with one, every send scheduled a tick to call it). What that gives up is
   * hearing of a send the kernel refused at once (ENOBUFS on a full socket buffer, EPERM from a firewall), which for
   * a datagram is a loss like any other that the transaction layer's retransmissions cover. A bad port or address
   * still throws, and is reported.
   */
  sendNow(data: Buffer, to: Destination): void {
    const socket = this.socketFor(to.address);
    if (socket) this.enqueue(socket, data, to, undefined);
  }

  /**
   * A send whose failure a client transaction must hear of (§17.1.4): `done` is node:dgram's completion callback
   * itself (a synchronous send calls it on the next tick with null, a refused one with the error), so no promise or
   * closure is made per datagram, only dgram's tick. A bad port or address is told to `done` too, on a microtask.
   */
  sendReporting(data: Buffer, to: Destination, done: SendDone): void {
    const socket = this.socketFor(to.address);
    if (!socket) {
      queueMicrotask(() => done(new Error('UDP transport not listening')));
      return;
    }
    this.enqueue(socket, data, to, done);
  }

  /** Datagrams queued for the turn's end, not yet handed to the kernel. */
  get queued(): number {
    return this.outbox.length / 5;
  }

  /**
   * Every send goes out with the turn's others, as TCP's sendNow corks a connection until the turn's end: the
   * datagrams a pass over the socket's input produced leave back to back when it is done (setImmediate), or at
   * OUTBOX_MAX. Measured on a 2-vCPU Xeon VM (bench:register over UDP, alternating pairs, 2026-12-07): server CPU a
   * registration 97 → 94, 100 → 89, 83 → 79, 112 → 89 µs (Kamailio 66–76 in the same runs). The kernel's cost of
   * a datagram on loopback is mostly waking its reader (the IPI to another vCPU is a VM exit): sent one by one
   * between requests, nearly every datagram woke SIPp; sent together, one does. Order is kept (one queue for every
   * socket and every kind of send). What a turn's last immediates produce (the 200 OKs released by a group commit
   * run after this flush) would otherwise wait a whole pass over the input for the next check phase: they leave
   * before the next datagram is handled instead (`stragglers`). A bound in time as well (what has waited 0.5 ms
   * leaves before the next datagram) was worse at half load, wire p50 0.8 → 0.9–1.1 ms: each earlier flush is one
   * more wake-up of the peer (bench/RESULTS.md, 2026-12-08).
   */
  private enqueue(socket: dgram.Socket, data: Buffer, to: Destination, done: SendDone | undefined): void {
    const o = this.outbox;
    o.push(socket, data, to.port, to.address, done);
    if (this.afterFlush) this.stragglers = true;
    if (o.length >= OUTBOX_MAX * 5) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushFromImmediate);
    }
  }

  private readonly flushFromImmediate = (): void => {
    this.flushScheduled = false;
    this.flush();
    this.afterFlush = true;
  };

  private flush(): void {
    const o = this.outbox;
    if (o.length === 0) return;
    this.outbox = [];
    this.stragglers = false;
    for (let i = 0; i < o.length; i += 5) {
      const socket = o[i] as dgram.Socket;
      const done = o[i + 4] as SendDone | undefined;
      try {
        if (done) socket.send(o[i + 1] as Buffer, o[i + 2] as number, o[i + 3] as string, done);
        else socket.send(o[i + 1] as Buffer, o[i + 2] as number, o[i + 3] as string);
      } catch (e) {
        // dgram throws synchronously on a bad port or address; a peer's Via must never take the server down.
        if (done) queueMicrotask(() => done(e as Error));
        else this.opts.onError?.(e as Error);
      }
    }
  }

  /** The socket of the address's family (the only one when there is one), undefined before listen. */
  private socketFor(address: string): dgram.Socket | undefined {
    const s = this.sockets;
    if (s.length === 1) return s[0].socket;
    const family = address.indexOf(':') >= 0 ? 6 : 4;
    return (s.find((x) => x.family === family) ?? s[0])?.socket;
  }

  async close(): Promise<void> {
    this.flush();
    await Promise.all(this.sockets.map((s) => new Promise<void>((resolve) => s.socket.close(() => resolve()))));
    this.sockets.length = 0;
  }
}

/**
 * The sockets' address lookup: an IP literal (every destination the SIP layer hands us: Via received/rport, a
 * contact's resolved address) answers at once, in the same turn. node:dgram's default, dns.lookup, answers even a
 * literal on the next tick, so every datagram waited for a tick and its closure before reaching the kernel.
 */
function literalLookup(hostname: string, options: LookupOneOptions | number, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = isIP(hostname);
  if (family !== 0) callback(null, hostname, family);
  else dnsLookup(hostname, typeof options === 'number' ? { family: options } : options, callback);
}
