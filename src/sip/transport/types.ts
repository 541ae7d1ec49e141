// What the transport layer tells the layers above about where a message came from and where one should go.

import { randomBytes } from 'node:crypto';

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
  /** As send, with the outcome told to `done` (null: handed to the OS) instead of a promise: see SendDone. */
  sendReporting?(data: Buffer, to: Destination, done: SendDone): void;
  close(): Promise<void>;
}

/**
 * A send's outcome for a client transaction (RFC 3261 §17.1.4: a transport error is reported to the TU), called once,
 * never from inside the send. One function per transaction, kept for all its sends: a promise per datagram (its
 * executor, resolving functions, callback and `.catch` reaction) was what the INVITE and BYE a call forwards paid
 * for the report.
 */
export type SendDone = (err: Error | null) => void;

/**
 * Connection ids are unique across every stream transport of the process (TCP, TLS, WS, WSS), and random: another
 * node asks this one over the bus to send a request over "connection n" (sip/flow-relay.ts), so an id must not be
 * guessable (a counter let any broker client enumerate them). 53 random bits, the most a number holds exactly
 * (bindings store the id as a number on every backend); two live connections share one with a probability of about
 * n²/2^54 (100,000 connections: 6e-7), and a guess hits one of n with n/2^53.
 */
export function nextConnectionId(): number {
  const b = randomBytes(8);
  return (b.readUInt32BE(0) & 0x1f_ffff) * 0x1_0000_0000 + b.readUInt32BE(4) || 1;
}
