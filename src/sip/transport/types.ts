// What the transport layer tells the layers above about where a message came from and where one should go.

export type TransportName = 'UDP' | 'TCP' | 'TLS' | 'WS' | 'WSS';

export function isReliable(t: TransportName): boolean {
  return t !== 'UDP';
}

export interface Endpoint {
  address: string;
  port: number;
}

/** Where a received message came from. `connectionId` is set for connection-oriented transports. */
export interface Source extends Endpoint {
  transport: TransportName;
  family: 4 | 6;
  connectionId: number | null;
  /** The local address and port it arrived on. */
  local: Endpoint;
}

/** Where to send: over a given connection when it is still open, else to the address. */
export interface Destination extends Endpoint {
  transport: TransportName;
  connectionId?: number | null;
}

export interface InboundHandler {
  (data: Buffer, source: Source): void;
}

/** Answers a stream-level framing failure (for example 513 for an oversized message) before the close. */
export interface StreamErrorHandler {
  (reason: 'too-large' | 'bad-length', head: Buffer | null, source: Source): Buffer | null;
}

export interface ListenerAddress extends Endpoint {
  transport: TransportName;
}

export interface Transport {
  readonly name: TransportName;
  listen(): Promise<ListenerAddress[]>;
  /** Resolves when handed to the OS; rejects when the destination is unreachable. */
  send(data: Buffer, to: Destination): Promise<void>;
  close(): Promise<void>;
}

let connectionCounter = 0;

/** Connection ids are unique across every stream transport of the process (TCP, TLS, WS, WSS). */
export function nextConnectionId(): number {
  return ++connectionCounter;
}
