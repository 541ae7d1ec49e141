// The transport layer: the listening transports behind one send interface, picked by the destination's
// transport name.

import type { Logger } from '../../log.ts';
import type { Sender } from '../endpoint.ts';
import { TcpTransport } from './tcp.ts';
import type { Destination, Endpoint, InboundHandler, ListenerAddress, StreamErrorHandler, TransportName } from './types.ts';
import { UdpTransport } from './udp.ts';

export interface TransportLayerOptions {
  hosts: string[];
  port: number;
  transports: TransportName[];
  maxMessageSize: number;
  tcpIdleTimeoutMs: number;
  tcpMaxConnections: number;
  reusePort: boolean;
  /** Host to advertise in Vias of requests we send; defaults to the first listening address. */
  advertisedHost: string | null;
  logger: Logger;
  onMessage: InboundHandler;
  onStreamError: StreamErrorHandler;
  onConnectionClosed?: (connectionId: number, remote: Endpoint) => void;
  onDrop?: (reason: string) => void;
}

export class TransportLayer implements Sender {
  udp: UdpTransport | null = null;
  tcp: TcpTransport | null = null;
  private listeners: ListenerAddress[] = [];
  private readonly opts: TransportLayerOptions;

  constructor(opts: TransportLayerOptions) {
    this.opts = opts;
  }

  /**
   * Opens every transport on the same port. With port 0 the first transport picks a free port and the others
   * follow it (retrying with a new port if another process holds it for TCP).
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
      this.tcp = new TcpTransport({
        hosts: opts.hosts,
        port,
        maxMessageSize: opts.maxMessageSize,
        idleTimeoutMs: opts.tcpIdleTimeoutMs,
        maxConnections: opts.tcpMaxConnections,
        reusePort: opts.reusePort,
        onMessage: opts.onMessage,
        onStreamError: opts.onStreamError,
        onClose: opts.onConnectionClosed,
        onError: (err, context) => log.warn({ err: err.message, context }, 'tcp error'),
      });
      this.listeners.push(...(await this.tcp.listen()));
    }
    return this.listeners;
  }

  sendNow(data: Buffer, to: Destination): void {
    if (to.transport === 'UDP') this.udp?.sendNow(data, to);
    else if (to.transport === 'TCP') this.tcp?.sendNow(data, to);
  }

  send(data: Buffer, to: Destination): Promise<void> {
    if (to.transport === 'UDP' && this.udp) return this.udp.send(data, to);
    if (to.transport === 'TCP' && this.tcp) return this.tcp.send(data, to);
    return Promise.reject(new Error(`no ${to.transport} transport`));
  }

  viaAddress(transport: TransportName): { host: string; port: number } {
    const l = this.listeners.find((x) => x.transport === transport) ?? this.listeners[0];
    const host = this.opts.advertisedHost ?? (l && l.address !== '0.0.0.0' && l.address !== '::' ? l.address : '127.0.0.1');
    return { host, port: l?.port ?? this.opts.port };
  }

  /** Keeps a TCP connection open while a binding depends on it. */
  keepConnection(connectionId: number, until: number): void {
    this.tcp?.keepAlive(connectionId, until);
  }

  isConnectionOpen(connectionId: number): boolean {
    return this.tcp?.isOpen(connectionId) ?? false;
  }

  get addresses(): ListenerAddress[] {
    return this.listeners;
  }

  async close(): Promise<void> {
    await Promise.all([this.udp?.close(), this.tcp?.close()]);
    this.udp = null;
    this.tcp = null;
  }
}
