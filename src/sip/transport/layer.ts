// The transport layer: the listening transports (UDP, TCP, TLS, WS, WSS) behind one send interface, picked by
// the destination's transport name.

import type { Logger } from '../../log.ts';
import type { Sender } from '../endpoint.ts';
import { TcpTransport, type TlsMaterial } from './tcp.ts';
import { ConnectionCaps, GuardLog } from './connection-caps.ts';
import type { NetworkSet } from './networks.ts';
import type { Destination, Endpoint, InboundHandler, ListenerAddress, SendDone, Source, StreamErrorHandler, Transport, TransportName } from './types.ts';
import { UdpTransport } from './udp.ts';
import { WsTransport } from './ws.ts';

export interface TransportLayerOptions {
  hosts: string[];
  /** UDP and TCP port (RFC 3261's 5060). */
  port: number;
  /** TLS (5061), WS (8088) and WSS (8089) ports; 0 picks a free one. */
  tlsPort?: number;
  wsPort?: number;
  wssPort?: number;
  transports: TransportName[];
  /** Certificate and key for TLS and WSS. */
  tls?: TlsMaterial | null;
  maxMessageSize: number;
  tcpIdleTimeoutMs: number;
  tcpMaxConnections: number;
  /** Inbound TCP, TLS, WS and WSS connections one peer (IPv4 address, IPv6 /64) may hold at once; 0: no cap. */
  maxConnectionsPerAddress?: number;
  /** Peers never capped (an office NAT, an SBC, an edge proxy). */
  capExempt?: NetworkSet;
  /** Deadline for a TCP/TLS message once its first byte arrived (default 20 s). */
  tcpMessageTimeoutMs?: number;
  /** Deadline for a new inbound connection's handshakes and first SIP message (default 10 s). */
  firstMessageTimeoutMs?: number;
  reusePort: boolean;
  /** Host to advertise in Vias of requests we send; defaults to the first listening address. */
  advertisedHost: string | null;
  logger: Logger;
  onMessage: InboundHandler;
  onStreamError: StreamErrorHandler;
  onConnectionClosed?: (connectionId: number, remote: Endpoint, transport: TransportName) => void;
  onDrop?: (reason: string) => void;
}

export class TransportLayer implements Sender {
  udp: UdpTransport | null = null;
  tcp: TcpTransport | null = null;
  tls: TcpTransport | null = null;
  ws: WsTransport | null = null;
  wss: WsTransport | null = null;
  private listeners: ListenerAddress[] = [];
  private readonly opts: TransportLayerOptions;

  constructor(opts: TransportLayerOptions) {
    this.opts = opts;
  }

  /**
   * Opens every transport. UDP and TCP share one port: with port 0 the first picks a free port and the other
   * follows it (retrying with a new port if another process holds it for TCP).
   */
  async listen(): Promise<ListenerAddress[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.listenOn(this.opts.port);
      } catch (e) {
        await this.close();
        this.listeners = [];
        if (this.opts.port !== 0 || attempt >= 10 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
  }

  private async listenOn(requested: number): Promise<ListenerAddress[]> {
    const { opts } = this;
    const log = opts.logger;
    const guardLog = new GuardLog((fields, message) => log.warn(fields, message));
    // Failed handshakes are the peer's doing and as frequent as it likes: throttled like the other guards.
    const onError = (err: Error, context: string) =>
      context.endsWith('handshake') ? guardLog.note(context, { err: err.message }, 'TLS handshake failed') : log.warn({ err: err.message, context }, 'transport error');
    const caps = new ConnectionCaps(opts.maxConnectionsPerAddress ?? 0, opts.capExempt ?? null, (address) =>
      guardLog.note('per-address-cap', { from: address, cap: opts.maxConnectionsPerAddress }, 'SIP connection refused: too many from one address'),
    );
    const firstMessageTimeoutMs = opts.firstMessageTimeoutMs ?? 10_000;
    const onGuard = (reason: 'incomplete-message' | 'no-message', source: Source) =>
      guardLog.note(
        reason,
        { from: `${source.transport} ${source.address}:${source.port}` },
        reason === 'no-message' ? 'SIP connection closed: no complete message in time' : 'SIP connection closed: message incomplete past its deadline',
      );
    const stream = (tls?: TlsMaterial) => ({
      hosts: opts.hosts,
      maxMessageSize: opts.maxMessageSize,
      idleTimeoutMs: opts.tcpIdleTimeoutMs,
      maxConnections: opts.tcpMaxConnections,
      caps,
      messageTimeoutMs: opts.tcpMessageTimeoutMs ?? 20_000,
      firstMessageTimeoutMs,
      onGuard,
      reusePort: opts.reusePort,
      onMessage: opts.onMessage,
      onStreamError: opts.onStreamError,
      onError,
      tls,
    });
    let port = requested;
    if (opts.transports.includes('UDP')) {
      this.udp = new UdpTransport({
        hosts: opts.hosts,
        port,
        maxMessageSize: opts.maxMessageSize,
        reusePort: opts.reusePort,
        onMessage: opts.onMessage,
        onDrop: (reason) => opts.onDrop?.(reason),
        onError: (err) => log.warn({ err }, 'udp socket error'),
      });
      this.listeners.push(...(await this.udp.listen()));
      port = this.listeners[0].port;
    }
    if (opts.transports.includes('TCP')) {
      this.tcp = new TcpTransport({ ...stream(), port, onClose: (id, remote) => opts.onConnectionClosed?.(id, remote, 'TCP') });
      this.listeners.push(...(await this.tcp.listen()));
    }
    const needTls = opts.transports.includes('TLS') || opts.transports.includes('WSS');
    if (needTls && !opts.tls) throw new Error('TLS and WSS need a certificate and key');
    if (opts.transports.includes('TLS')) {
      this.tls = new TcpTransport({ ...stream(opts.tls!), port: opts.tlsPort ?? 5061, onClose: (id, remote) => opts.onConnectionClosed?.(id, remote, 'TLS') });
      this.listeners.push(...(await this.tls.listen()));
    }
    const ws = (secure: boolean) =>
      new WsTransport({
        hosts: opts.hosts,
        port: (secure ? opts.wssPort : opts.wsPort) ?? (secure ? 8089 : 8088),
        tls: secure ? { key: opts.tls!.key, cert: opts.tls!.cert, context: opts.tls!.context } : undefined,
        maxMessageSize: opts.maxMessageSize,
        idleTimeoutMs: opts.tcpIdleTimeoutMs,
        maxConnections: opts.tcpMaxConnections,
        caps,
        firstMessageTimeoutMs,
        onGuard,
        reusePort: opts.reusePort,
        onMessage: opts.onMessage,
        onClose: (id, remote) => opts.onConnectionClosed?.(id, remote, secure ? 'WSS' : 'WS'),
        onError,
      });
    if (opts.transports.includes('WS')) {
      this.ws = ws(false);
      this.listeners.push(...(await this.ws.listen()));
    }
    if (opts.transports.includes('WSS')) {
      this.wss = ws(true);
      this.listeners.push(...(await this.wss.listen()));
    }
    return this.listeners;
  }

  private transport(name: TransportName): UdpTransport | TcpTransport | WsTransport | null {
    switch (name) {
      case 'UDP':
        return this.udp;
      case 'TCP':
        return this.tcp;
      case 'TLS':
        return this.tls;
      case 'WS':
        return this.ws;
      case 'WSS':
        return this.wss;
    }
  }

  sendNow(data: Buffer, to: Destination): void {
    this.transport(to.transport)?.sendNow(data, to);
  }

  send(data: Buffer, to: Destination): Promise<void> {
    const t = this.transport(to.transport);
    return t ? t.send(data, to) : Promise.reject(new Error(`no ${to.transport} transport`));
  }

  /** send() with the outcome told to `done` (types.ts, SendDone); a transport without its own gets the promise's. */
  sendReporting(data: Buffer, to: Destination, done: SendDone): void {
    const t: Transport | null = this.transport(to.transport);
    if (!t) queueMicrotask(() => done(new Error(`no ${to.transport} transport`)));
    else if (t.sendReporting) t.sendReporting(data, to, done);
    else t.send(data, to).then(() => done(null), done);
  }

  viaAddress(transport: TransportName): { host: string; port: number } {
    const l = this.listeners.find((x) => x.transport === transport) ?? this.listeners[0];
    const host = this.opts.advertisedHost ?? (l && l.address !== '0.0.0.0' && l.address !== '::' ? l.address : '127.0.0.1');
    return { host, port: l?.port ?? this.opts.port };
  }

  /** Keeps a TCP, TLS, WS or WSS connection open while a binding depends on it. */
  keepConnection(connectionId: number, until: number): void {
    this.tcp?.keepAlive(connectionId, until);
    this.tls?.keepAlive(connectionId, until);
    this.ws?.keepAlive(connectionId, until);
    this.wss?.keepAlive(connectionId, until);
  }

  isConnectionOpen(connectionId: number): boolean {
    return (this.tcp?.isOpen(connectionId) || this.tls?.isOpen(connectionId) || this.ws?.isOpen(connectionId) || this.wss?.isOpen(connectionId)) ?? false;
  }

  /** The peer of an open stream connection (transport, address, port as accepted), or null. */
  connectionPeer(connectionId: number): Source | null {
    return this.tcp?.peerOf(connectionId) ?? this.tls?.peerOf(connectionId) ?? this.ws?.peerOf(connectionId) ?? this.wss?.peerOf(connectionId) ?? null;
  }

    get connectionCount(): number {
    return (this.tcp?.connectionCount ?? 0) + (this.tls?.connectionCount ?? 0) + (this.ws?.connectionCount ?? 0) + (this.wss?.connectionCount ?? 0);
  }

  get addresses(): ListenerAddress[] {
    return this.listeners;
  }

  async close(): Promise<void> {
    await Promise.all([this.udp?.close(), this.tcp?.close(), this.tls?.close(), this.ws?.close(), this.wss?.close()]);
    this.udp = this.tcp = this.tls = null;
    this.ws = this.wss = null;
  }
}
