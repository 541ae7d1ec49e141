// SIP over WebSocket (RFC 7118): WS and WSS listeners, the `sip` subprotocol required at the handshake, one
// SIP message per WebSocket message (no Content-Length framing needed), and a connection table. Browsers put
// `.invalid` hosts in their Via and Contact, so the connection is the only way back: requests and responses
// for a WS flow travel on its connection, and a closed connection cannot be reopened from this side.
//
// The WebSocket protocol itself (RFC 6455 framing, masking, ping/pong) is the `ws` package's job.

import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ConnectionCaps } from './connection-caps.ts';
import type { TlsContextOptions } from './tcp.ts';
import { nextConnectionId, type Destination, type Endpoint, type InboundHandler, type ListenerAddress, type Source, type Transport } from './types.ts';

export interface WsOptions {
  hosts: string[];
  port: number;
  /** WSS when set. */
  tls?: { key: string | Buffer; cert: string | Buffer; context?: TlsContextOptions };
  maxMessageSize: number;
  /**
   * Close a connection that has carried no SIP message for this long, unless a binding keeps it (keepAlive).
   * WebSocket pings and pongs, ours or the peer's, and CRLF keepalives do not count: they prove the peer alive,
   * not that it uses the connection (our own pings used to keep idle sockets open forever).
   */
  idleTimeoutMs: number;
  /** Most simultaneous connections (each costs a file descriptor). */
  maxConnections: number;
  /** Per-peer cap, shared with the other stream transports; none when absent. */
  caps?: ConnectionCaps;
  /** Close a connection that has not completed its handshakes (TLS, HTTP upgrade) and a first SIP message by then. */
  firstMessageTimeoutMs: number;
  /** A connection closed by the first-message rule (for a throttled log). */
  onGuard?: (reason: 'no-message', source: Source) => void;
  /** Share the port with other processes (SO_REUSEPORT): --workers. */
  reusePort?: boolean;
  onMessage: InboundHandler;
  onClose?: (connectionId: number, remote: Endpoint) => void;
  onError?: (err: Error, context: string) => void;
}

interface Connection {
  id: number;
  ws: WebSocket;
  source: Source;
  /** Last SIP message in either direction. */
  lastActivity: number;
  /** Last frame of any kind from the peer (pongs included): for noticing a dead peer. */
  lastSeen: number;
  openedAt: number;
  greeted: boolean;
  /** Epoch ms until which idleness must not close it (a binding rides on it). */
  keepUntil: number;
}

const PING = Buffer.from('\r\n\r\n');
const PONG = Buffer.from('\r\n');

export class WsTransport implements Transport {
  readonly name: 'WS' | 'WSS';
  private readonly opts: WsOptions;
  private readonly servers: Array<http.Server | https.Server> = [];
  private readonly wss: WebSocketServer[] = [];
  private readonly connections = new Map<number, Connection>();
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(opts: WsOptions) {
    this.opts = opts;
    this.name = opts.tls ? 'WSS' : 'WS';
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async listen(): Promise<ListenerAddress[]> {
    const out: ListenerAddress[] = [];
    let port = this.opts.port;
    for (const host of this.opts.hosts) {
      // The upgrade request must arrive whole within the first-message deadline (Node's defaults give headers 60 s
      // and check only every 30 s); the TLS handshake too.
      const first = this.opts.firstMessageTimeoutMs;
      const httpOptions = { headersTimeout: first, requestTimeout: first, connectionsCheckingInterval: Math.max(250, Math.min(5000, first / 4)) };
      const server = this.opts.tls
        ? https.createServer({ key: this.opts.tls.key, cert: this.opts.tls.cert, ...this.opts.tls.context, handshakeTimeout: first, ...httpOptions }, plainAnswer)
        : http.createServer(httpOptions, plainAnswer);
      server.maxConnections = this.opts.maxConnections;
      const caps = this.opts.caps;
      // Checked on the raw socket, before TLS or HTTP cost anything (prepended: before the server's own listener).
      if (caps) server.prependListener('connection', (socket: net.Socket) => void caps.admit(socket));
      const wss = new WebSocketServer({
        server,
        maxPayload: this.opts.maxMessageSize,
        // RFC 7118 §4.1: the client must ask for "sip"; without it there is no SIP to speak.
        handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
        verifyClient: (info, done) => {
          const offered = String(info.req.headers['sec-websocket-protocol'] ?? '')
            .split(',')
            .map((p) => p.trim().toLowerCase());
          if (offered.includes('sip')) done(true);
          else done(false, 400, 'the sip WebSocket subprotocol is required (RFC 7118)');
        },
      });
      wss.on('connection', (ws, req) => this.accept(ws, req));
      wss.on('error', (err) => this.opts.onError?.(err, `${this.name} server`));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, ipv6Only: net.isIP(host) === 6, reusePort: this.opts.reusePort === true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.opts.onError?.(err, `${this.name} listener`));
      if (this.opts.tls) {
        server.on('tlsClientError', (err: Error) => {
          if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') this.opts.onError?.(err, 'WSS handshake');
        });
      }
      const addr = server.address() as net.AddressInfo;
      port = addr.port;
      this.servers.push(server);
      this.wss.push(wss);
      out.push({ transport: this.name, address: addr.address, port: addr.port });
    }
    this.sweepTimer = setInterval(() => this.sweepIdle(), Math.max(250, Math.min(10_000, this.opts.idleTimeoutMs / 4, this.opts.firstMessageTimeoutMs / 4)));
    this.sweepTimer.unref();
    return out;
  }

  private accept(ws: WebSocket, req: http.IncomingMessage): void {
    const id = nextConnectionId();
    const sock = req.socket;
    const source: Source = {
      transport: this.name,
      address: sock.remoteAddress ?? '',
      port: sock.remotePort ?? 0,
      family: sock.remoteFamily === 'IPv6' ? 6 : 4,
      connectionId: id,
      local: { address: sock.localAddress ?? '', port: sock.localPort ?? 0 },
    };
    const now = Date.now();
    const conn: Connection = { id, ws, source, lastActivity: now, lastSeen: now, openedAt: now, greeted: false, keepUntil: 0 };
    this.connections.set(id, conn);
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const at = Date.now();
      conn.lastSeen = at;
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      // Some clients keep NAT bindings with a CRLF CRLF text message, as over TCP (RFC 5626 §4.4.1).
      if (!isBinary && buf.equals(PING)) {
        ws.send(PONG);
        return;
      }
      conn.lastActivity = at;
      conn.greeted = true;
      this.opts.onMessage(buf, source);
    });
    ws.on('pong', () => (conn.lastSeen = Date.now()));
    ws.on('ping', () => (conn.lastSeen = Date.now()));
    ws.on('error', () => {
      // Protocol errors from the peer; 'close' follows.
    });
    ws.on('close', () => {
      this.connections.delete(id);
      this.opts.onClose?.(id, { address: source.address, port: source.port });
    });
  }

  isOpen(connectionId: number): boolean {
    return this.connections.has(connectionId);
  }

  /** Where an open connection goes (its peer as accepted), or null. */
  peerOf(connectionId: number): Source | null {
    return this.connections.get(connectionId)?.source ?? null;
  }

  /** Keep the connection open at least until `until` (epoch ms) however quiet it is: a binding rides on it. */
  keepAlive(connectionId: number, until: number): void {
    const c = this.connections.get(connectionId);
    if (c && c.keepUntil < until) c.keepUntil = until;
  }

  send(data: Buffer, to: Destination): Promise<void> {
    const conn = to.connectionId != null ? this.connections.get(to.connectionId) : undefined;
    if (!conn) return Promise.reject(new Error(`${this.name} connection ${to.connectionId ?? '?'} is closed; a browser cannot be reached otherwise`));
    return new Promise((resolve, reject) => conn.ws.send(data, { binary: false }, (err) => (err ? reject(err) : resolve())));
  }

  sendNow(data: Buffer, to: Destination): void {
    const conn = to.connectionId != null ? this.connections.get(to.connectionId) : undefined;
    if (!conn) {
      this.opts.onError?.(new Error(`${this.name} connection ${to.connectionId ?? '?'} closed before its response`), `${this.name} send`);
      return;
    }
    conn.lastActivity = Date.now();
    conn.ws.send(data, { binary: false });
  }

  private sweepIdle(): void {
    const now = Date.now();
    const { idleTimeoutMs: idle, firstMessageTimeoutMs: first } = this.opts;
    for (const c of this.connections.values()) {
      if (!c.greeted && now - c.openedAt > first) {
        this.opts.onGuard?.('no-message', c.source);
        c.ws.terminate();
      } else if (now - c.lastActivity > idle && now > c.keepUntil) c.ws.close(1000, 'idle');
      // A peer that stopped answering our pings is gone, binding or not.
      else if (now - c.lastSeen > idle) c.ws.terminate();
      // Probe quiet connections so a dead browser is noticed before the idle limit.
      else if (now - c.lastSeen > idle / 2) c.ws.ping();
    }
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const c of this.connections.values()) c.ws.close(1001, 'server shutting down');
    await Promise.all(this.wss.map((w) => new Promise<void>((resolve) => w.close(() => resolve()))));
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.closeAllConnections?.();
            s.close(() => resolve());
          }),
      ),
    );
    this.connections.clear();
  }
}

/** Plain HTTP requests to the WebSocket port get a short explanation. */
function plainAnswer(_req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
  res.end('SIP over WebSocket (RFC 7118): connect with the "sip" subprotocol.\n');
}
