// SIP over TCP and TLS (RFC 3261 §18.3, §26.2): stream framing, connection table, CRLF keepalive pongs
// (RFC 5626 §4.4.1), idle timeout, and outbound connections for responses and requests whose connection is gone.
// TLS is the same transport over tls.Server / tls.connect.

import net from 'node:net';
import tls from 'node:tls';
import type { ConnectionCaps } from './connection-caps.ts';
import { StreamFramer, type FrameEvent } from './stream-framer.ts';
import { nextConnectionId, type Destination, type Endpoint, type InboundHandler, type ListenerAddress, type Source, type StreamErrorHandler, type Transport } from './types.ts';

export interface TlsMaterial {
  key: string | Buffer;
  cert: string | Buffer;
  /** Verify peers' certificates on connections we open (responses to, or requests for, a closed flow). */
  verifyPeers: boolean;
  /** Protocol versions, cipher suites and OpenSSL options of every context, ours and theirs (certificates.ts). */
  context?: TlsContextOptions;
}

export interface TlsContextOptions {
  ciphers: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  secureOptions: number;
}

export interface TcpOptions {
  /** TLS when set: listen with tls.Server and open connections with tls.connect. */
  tls?: TlsMaterial;
  hosts: string[];
  port: number;
  maxMessageSize: number;
  /** Close a connection after this long without traffic, unless something asked to keep it. */
  idleTimeoutMs: number;
  /** Refuse new connections beyond this many (each costs a file descriptor). */
  maxConnections: number;
  /** Per-peer cap, shared with the other stream transports; none when absent. */
  caps?: ConnectionCaps;
  /**
   * Close a connection whose message has not arrived whole this long after its first byte (Kamailio's
   * tcp_msg_read_timeout): a peer trickling a header a byte at a time otherwise holds the connection forever.
   */
  messageTimeoutMs: number;
  /** Close an inbound connection that has not completed its TLS handshake and a first SIP message by then. */
  firstMessageTimeoutMs: number;
  /** A connection closed by one of the rules above (for a throttled log). */
  onGuard?: (reason: 'incomplete-message' | 'no-message', source: Source) => void;
  reusePort?: boolean;
  onMessage: InboundHandler;
  onStreamError: StreamErrorHandler;
  onClose?: (connectionId: number, remote: Endpoint) => void;
  onError?: (err: Error, context: string) => void;
}

interface Connection {
  id: number;
  socket: net.Socket;
  /** Corked until the end of the current turn, so the responses of one turn leave in one write. */
  corked: boolean;
  framer: StreamFramer;
  source: Source;
  /** Last SIP message in either direction (keepalive pings from the peer do not count). */
  lastActivity: number;
  /** Epoch ms until which idleness must not close it (a binding or flow rides on it). */
  keepUntil: number;
  openedAt: number;
  /** Whether a whole SIP message has arrived yet (or we opened it: our own connections are not suspects). */
  greeted: boolean;
  /** When the first byte of the message still incomplete arrived; 0 when none is pending. */
  partialSince: number;
}

export class TcpTransport implements Transport {
  readonly name: 'TCP' | 'TLS';
  private readonly servers: net.Server[] = [];
  private readonly connections = new Map<number, Connection>();
  /** "address|port" of the remote end → connection, for sending without a connection id. */
  private readonly byRemote = new Map<string, Connection>();
  private readonly opts: TcpOptions;
  private sweepTimer: NodeJS.Timeout | null = null;
  private closing = false;

  constructor(opts: TcpOptions) {
    this.opts = opts;
    this.name = opts.tls ? 'TLS' : 'TCP';
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async listen(): Promise<ListenerAddress[]> {
    const out: ListenerAddress[] = [];
    let port = this.opts.port;
    for (const host of this.opts.hosts) {
      const server: net.Server = this.opts.tls
        ? tls.createServer(
            // The handshake is part of the first-message deadline (Node's default allows it 120 s).
            { key: this.opts.tls.key, cert: this.opts.tls.cert, ...this.opts.tls.context, noDelay: true, handshakeTimeout: this.opts.firstMessageTimeoutMs },
            (socket) => this.accept(socket),
          )
        : net.createServer({ noDelay: true }, (socket) => this.accept(socket));
      server.maxConnections = this.opts.maxConnections;
      // The per-peer cap is checked on the raw socket, before a TLS handshake costs anything; prepended so it runs
      // before the server's own listener (which wraps the socket for TLS).
      const caps = this.opts.caps;
      if (caps) server.prependListener('connection', (socket: net.Socket) => void caps.admit(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, ipv6Only: net.isIP(host) === 6, reusePort: this.opts.reusePort === true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.opts.onError?.(err, `${this.name} server`));
      // A failed handshake is the peer's problem: count it in the log, never let it throw.
      server.on('tlsClientError', (err: Error) => {
        // A peer hanging up mid-handshake (or one refused by the cap) is routine, not worth a line each.
        if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') this.opts.onError?.(err, 'TLS handshake');
      });
      const addr = server.address() as net.AddressInfo;
      port = addr.port;
      this.servers.push(server);
      out.push({ transport: this.name, address: addr.address, port: addr.port });
    }
    const o = this.opts;
    const sweepEvery = Math.max(250, Math.min(5000, o.idleTimeoutMs / 4, o.messageTimeoutMs / 4, o.firstMessageTimeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweepIdle(), sweepEvery);
    this.sweepTimer.unref();
    return out;
  }

  private accept(socket: net.Socket): void {
    if (this.closing || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.register(socket, false);
  }

  private register(socket: net.Socket, outbound: boolean): Connection {
    const id = nextConnectionId();
    const remoteAddress = socket.remoteAddress ?? '';
    const source: Source = {
      transport: this.name,
      address: remoteAddress,
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === 'IPv6' ? 6 : 4,
      connectionId: id,
      local: { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
    };
    const conn: Connection = {
      id,
      socket,
      framer: new StreamFramer(this.opts.maxMessageSize),
      source,
      lastActivity: Date.now(),
      keepUntil: 0,
      corked: false,
      openedAt: Date.now(),
      greeted: outbound,
      partialSince: 0,
    };
    this.connections.set(id, conn);
    this.byRemote.set(remoteKey(source.address, source.port), conn);
    socket.setNoDelay(true);
    const events: FrameEvent[] = [];
    socket.on('data', (chunk: Buffer) => {
      const framer = conn.framer;
      framer.push(chunk, events);
      let messages = false;
      for (let i = 0; i < events.length; i++) {
        const ev = events[i];
        if (ev.kind === 'message') {
          messages = true;
          this.opts.onMessage(ev.data, source);
        } else if (ev.kind === 'ping') socket.write('\r\n');
        else {
          const answer = this.opts.onStreamError(ev.reason, ev.head, source);
          if (answer) socket.end(answer);
          else socket.destroy();
          break;
        }
      }
      events.length = 0;
      // The message deadline runs from the first byte of the message still pending (one Date.now per chunk).
      if (messages) {
        const now = Date.now();
        conn.lastActivity = now;
        conn.greeted = true;
        conn.partialSince = framer.pending > 0 ? now : 0;
      } else if (framer.pending === 0) conn.partialSince = 0;
      else if (conn.partialSince === 0) conn.partialSince = Date.now();
    });
    socket.on('error', () => {
      // Resets and timeouts from peers are routine; 'close' follows and cleans up.
    });
    socket.on('close', () => {
      this.connections.delete(id);
      const key = remoteKey(source.address, source.port);
      if (this.byRemote.get(key) === conn) this.byRemote.delete(key);
      this.opts.onClose?.(id, { address: source.address, port: source.port });
    });
    return conn;
  }

  isOpen(connectionId: number): boolean {
    return this.connections.has(connectionId);
  }

  /** Where an open connection goes (its peer as accepted), or null. */
  peerOf(connectionId: number): Source | null {
    return this.connections.get(connectionId)?.source ?? null;
  }

  /** Keep the connection open at least until `until` (epoch ms), whatever its idleness. */
  keepAlive(connectionId: number, until: number): void {
    const c = this.connections.get(connectionId);
    if (c && c.keepUntil < until) c.keepUntil = until;
  }

  send(data: Buffer, to: Destination): Promise<void> {
    const conn = this.route(to);
    if (conn) return write(conn, data);
    return this.connect(to).then((c) => write(c, data));
  }

  /** Response hot path: write on the open connection when there is one, else connect; errors are reported. */
  sendNow(data: Buffer, to: Destination): void {
    const conn = this.route(to);
    if (conn) {
      conn.lastActivity = Date.now();
      if (!conn.corked) {
        conn.corked = true;
        conn.socket.cork();
        setImmediate(uncork, conn);
      }
      conn.socket.write(data);
      return;
    }
    this.send(data, to).catch((err: Error) => this.opts.onError?.(err, 'tcp send'));
  }

  private route(to: Destination): Connection | undefined {
    if (to.connectionId != null) {
      const c = this.connections.get(to.connectionId);
      if (c && !c.socket.destroyed) return c;
    }
    const c = this.byRemote.get(remoteKey(to.address, to.port));
    return c && !c.socket.destroyed ? c : undefined;
  }

  private connect(to: Endpoint): Promise<Connection> {
    if (this.closing) return Promise.reject(new Error('transport closing'));
    return new Promise((resolve, reject) => {
      const t = this.opts.tls;
      const socket: net.Socket = t
        ? tls.connect({ host: to.address, port: to.port, ...t.context, rejectUnauthorized: t.verifyPeers, servername: net.isIP(to.address) ? undefined : to.address })
        : net.connect({ host: to.address, port: to.port, noDelay: true });
      const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), 5000);
      socket.once(t ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', reject);
        resolve(this.register(socket, true));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private sweepIdle(): void {
    const now = Date.now();
    const { idleTimeoutMs, messageTimeoutMs, firstMessageTimeoutMs, onGuard } = this.opts;
    for (const c of this.connections.values()) {
      if (c.partialSince !== 0 && now - c.partialSince > messageTimeoutMs) {
        onGuard?.('incomplete-message', c.source);
        c.socket.destroy();
      } else if (!c.greeted && now - c.openedAt > firstMessageTimeoutMs) {
        onGuard?.('no-message', c.source);
        c.socket.destroy();
      } else if (now - c.lastActivity > idleTimeoutMs && now > c.keepUntil) c.socket.destroy();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all(
      this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))).concat(
        [...this.connections.values()].map((c) => {
          c.socket.end();
          return new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              c.socket.destroy();
              resolve();
            }, 1000);
            c.socket.once('close', () => {
              clearTimeout(t);
              resolve();
            });
          });
        }),
      ),
    );
    this.servers.length = 0;
  }
}

function uncork(conn: Connection): void {
  conn.corked = false;
  conn.socket.uncork();
}

function remoteKey(address: string, port: number): string {
  return address + '|' + port;
}

function write(conn: Connection, data: Buffer): Promise<void> {
  conn.lastActivity = Date.now();
  return new Promise((resolve, reject) => {
    conn.socket.write(data, (err) => (err ? reject(err) : resolve()));
  });
}
