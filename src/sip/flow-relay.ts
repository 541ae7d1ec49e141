// Cross-node delivery (DESIGN.md, Scale-out): a request for a contact held on a TCP/TLS/WS/WSS connection of another
// node (NOTIFY, MESSAGE) travels over the bus to that node, which sends it over its own connection and publishes the
// final response back.
//
// - Origin side, `send(req, flow)`: a flow of this node, a UDP flow, or a flow without a connection is sent here
//   through the endpoint (the connection id only when it is this node's: ids are per process). Any other flow is
//   relayed: the request (without Via: the owner's endpoint adds its own) goes to `sip.relay.<owner>` with a random
//   id, and the promise settles with the owner's reply on `sip.relay-reply.<origin>` (the final response, or an error
//   such as a connection that is gone), or rejects after `timeoutMs` (the owner is down, or lost the message).
// - Owner side: a relayed request is parsed, sent with the endpoint over the named connection, and answered with the
//   final response or the error. A connection that is no longer open is refused (with `connections`) rather than
//   re-dialled: a WebSocket `.invalid` contact or a NATed TCP phone cannot be reached that way.
// - Any client of the broker can publish on `sip.relay.<node>`, so the owner sends only to the peer of the connection
//   the request names: the connection must be open here and its transport, address and port must be the flow's
//   (else RELAY_ERR_NOT_PEER); a connection id is random (53 bits, transport/types.ts), not a counter to enumerate;
//   each request id is random (128 bits), so nobody can answer another's request, and an id is served once (a
//   replayed request is dropped). Between nodes of one deployment the AMQP adapter also authenticates these
//   messages (bus/internal-auth.ts).
// - A relay message that is not well formed is logged (throttled) and dropped, or answered with an error when it
//   names whom to answer; nothing a peer publishes throws out of here. A request whose origin gave up on it already
//   (past `expiresAt`) is not sent.
//
// - INVITE branches (issue 17): the proxy on the origin keeps its INVITE client transaction and sends its wire
//   messages (the INVITE, its CANCEL, the ACK of a non-2xx; an in-dialog request or a 2xx ACK it forwards) through
//   `through(flow)`: the owner writes them as they are over the named connection (same checks as above: open, its
//   peer, served once) and confirms (`sent`) or refuses; the top Via is the origin's, so the callee's responses
//   reach the owner as responses of no transaction of its own, and the owner forwards those of a branch it wrote
//   for an origin (kept RELAYED_BRANCH_LIFE_MS, refreshed on each message of the branch) back to that origin, which
//   feeds them to its endpoint (its client transaction) only for a branch it sent through that very node.
//
// Node ids may contain dots (host names), so each becomes one topic word (percent-encoded by the bus port's
// topicWord, as Kazoo encodes its routing keys, with wildcards escaped too). Requests and responses travel
// base64-encoded: bodies are bytes.

import { randomBytes } from 'node:crypto';
import { Errors, isSwitchboardError, sbError, type ErrorCode, type SwitchboardError } from '../errors.ts';
import { ThrottledLog, type Logger } from '../log.ts';
import { H } from './message/header-names.ts';
import { SipRequest, SipResponse } from './message/message.ts';
import { parseMessage } from './message/parse.ts';
import { serialize } from './message/serialize.ts';
import type { Destination, TransportName } from './transport/types.ts';
import { topicWord, type BusMessage, type EventBus } from '../bus/event-bus.ts';

/** Where a request goes: the flow a binding or subscription recorded (FlowRecord, or a binding's source). */
export interface RelayFlow {
  /** The node holding the connection. */
  node: string;
  transport: string;
  address: string;
  port: number;
  /** Connection of a stream transport, valid on `node` only. */
  connectionId: number | null;
}

export interface FlowRelayOptions {
  bus: EventBus;
  /**
   * The SIP endpoint (client transactions); `receiveResponse` takes the responses of a branch sent `through` another
   * node (the origin's INVITE client transaction), `send` writes a message relayed as it is (the owner's transport).
   */
  endpoint: {
    request(req: SipRequest, dest: Destination): Promise<SipResponse>;
    receiveResponse?(res: SipResponse): void;
  };
  /** Writes bytes over a connection of this node (the transport layer), for messages relayed as they are. */
  transport?: { send(data: Buffer, to: Destination): Promise<void> };
  /** This node's id (the `node` its bindings and subscriptions record). */
  node: string;
  log: Logger;
  /** How long the origin waits for the owner's reply; default 34 s (a little above Timer F, 64*T1 = 32 s). */
  timeoutMs?: number;
  /**
   * Which connections are open here (the transport layer): a relayed request for a closed one is refused with
   * RELAY_ERR_FLOW_GONE. Without it the endpoint's own fallback applies (a new connection to the address).
   * With `connectionPeer`, a request whose target is not the peer of its connection is refused (RELAY_ERR_NOT_PEER).
   */
  connections?: {
    isConnectionOpen(connectionId: number): boolean;
    connectionPeer?(connectionId: number): { transport: string; address: string; port: number } | null;
  };
}

export interface FlowRelayStats {
  /** Requests this node relayed to the owner of their flow, and how they ended. */
  relayed: number;
  answered: number;
  failed: number;
  timedOut: number;
  /** Waiting for the owner's reply now. */
  pending: number;
  /** Requests this node sent over its own connections for other nodes, and those it could not. */
  served: number;
  serveFailed: number;
  /** Relay messages dropped or answered with an error for being malformed. */
  malformed: number;
}

export const RELAY_TOPIC = 'sip.relay';
export const RELAY_REPLY_TOPIC = 'sip.relay-reply';
/** A little above Timer F (64*T1 = 32 s): the owner's transaction gives up first, and its error comes back. */
export const DEFAULT_RELAY_TIMEOUT_MS = 34_000;

const TRANSPORTS: ReadonlySet<string> = new Set<TransportName>(['UDP', 'TCP', 'TLS', 'WS', 'WSS']);
/** Bounds on what a peer may put in a relay message. */
const MAX_ID = 64;
const MAX_NODE = 255;
const MAX_MESSAGE_B64 = 1 << 20;
/**
 * How long the owner forwards a relayed branch's responses to its origin after the branch's last message, and the
 * origin accepts them: above Timer C (181 s, a branch that rings) plus Timer M (32 s, the 2xx retransmissions of
 * RFC 6026), so an answer after three minutes of ringing still comes back.
 */
export const RELAYED_BRANCH_LIFE_MS = 240_000;
/** Most relayed branches one node keeps (each side); beyond it the oldest go. */
const MAX_RELAYED_BRANCHES = 100_000;
/** Request ids served, kept until their expiry to refuse replays; beyond this many the oldest go. */
const MAX_SERVED_IDS = 100_000;
/** Longest an origin may ask us to remember an id (a peer's expiresAt far ahead would pin it). */
const MAX_RELAY_LIFE_MS = 10 * 60_000;

/** A node id as one topic word: the bus's topic-word encoding (Kazoo's), and wildcards and the empty id escaped too. */
export function nodeTopicWord(node: string): string {
  if (node === '') return '%00';
  if (node === '*') return '%2A';
  if (node === '#') return '%23';
  return topicWord(node);
}

export function relayTopic(node: string): string {
  return `${RELAY_TOPIC}.${nodeTopicWord(node)}`;
}

export function relayReplyTopic(node: string): string {
  return `${RELAY_REPLY_TOPIC}.${nodeTopicWord(node)}`;
}

interface Pending {
  /** A relayed request's final response, or null for a message written as it is (`through`). */
  resolve: (res: SipResponse | null) => void;
  reject: (err: SwitchboardError) => void;
  timer: NodeJS.Timeout;
  owner: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, max: number): string | null {
  return typeof v === 'string' && v.length <= max ? v : null;
}

/** A code of the catalogue (own properties only: a peer's "toString" is not one). */
function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(Errors, code);
}

/** Sets `key` (moved to the end: insertion order is expiry order) and drops the expired or oldest beyond the bound. */
function remember<T extends { until: number }>(map: Map<string, T>, key: string, value: T): void {
  map.delete(key);
  map.set(key, value);
  const now = Date.now();
  for (const [k, v] of map) {
    if (v.until > now && map.size <= MAX_RELAYED_BRANCHES) break;
    map.delete(k);
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The request as relayed: every header but Via (the owner's endpoint adds its own), and the body. */
function wireWithoutVia(req: SipRequest): Buffer {
  if (!req.has(H.via)) return serialize(req);
  const copy = new SipRequest(req.method, req.uri, req.version);
  for (const h of req.headers) if (h.key !== H.via) copy.headers.push({ key: h.key, name: h.name, value: h.value });
  copy.body = req.body;
  return serialize(copy);
}

export class FlowRelay {
  private readonly o: FlowRelayOptions;
  private readonly log: Logger;
  private readonly badInput: ThrottledLog;
  private readonly timeoutMs: number;
  private readonly pending = new Map<string, Pending>();
  /** Request ids served (owner side) → until when a replay of them is refused (epoch ms); insertion-ordered. */
  private readonly served = new Map<string, number>();
  /** Owner side: branch of a message written for an origin → that origin and until when (epoch ms). */
  private readonly branchesServed = new Map<string, { origin: string; connectionId: number; until: number }>();
  /** Origin side: branch sent through another node → that node and until when. */
  private readonly branchesSent = new Map<string, { owner: string; until: number }>();
  private unsubscribes: Array<() => void> = [];
  private closed = false;
  private readonly counters = { relayed: 0, answered: 0, failed: 0, timedOut: 0, served: 0, serveFailed: 0, malformed: 0 };

  constructor(o: FlowRelayOptions) {
    this.o = o;
    this.log = o.log;
    this.badInput = new ThrottledLog(o.log, 10);
    this.timeoutMs = o.timeoutMs ?? DEFAULT_RELAY_TIMEOUT_MS;
  }

  /** Subscribes to this node's relay requests and replies; returns the unsubscribe function (close() calls it too). */
  start(): () => void {
    if (this.unsubscribes.length === 0 && !this.closed) {
      this.unsubscribes = [
        this.o.bus.subscribe(relayTopic(this.o.node), this.onRequest),
        this.o.bus.subscribe(relayReplyTopic(this.o.node), this.onReply),
      ];
    }
    return () => this.unsubscribe();
  }

  stats(): FlowRelayStats {
    return { ...this.counters, pending: this.pending.size };
  }

  /** Whether `send` would put this flow on the bus (another node's connection) rather than send it here. */
  isRemote(flow: RelayFlow): boolean {
    return flow.node !== this.o.node && flow.transport !== 'UDP' && flow.connectionId !== null;
  }

  /** Sends `req` over `flow` (here, or through the node holding its connection); resolves with the final response. */
  send(req: SipRequest, flow: RelayFlow): Promise<SipResponse> {
    if (!TRANSPORTS.has(flow.transport)) return Promise.reject(sbError('SIP_ERR_TRANSPORT', `cannot send ${req.method} over ${flow.transport}`));
    const transport = flow.transport as TransportName;
    if (!this.isRemote(flow)) {
      const dest: Destination = { transport, address: flow.address, port: flow.port, connectionId: flow.node === this.o.node ? flow.connectionId : null };
      return this.o.endpoint.request(req, dest);
    }
    if (this.closed) return Promise.reject(sbError('RELAY_ERR_CLOSED'));
    if (this.unsubscribes.length === 0) return Promise.reject(sbError('RELAY_ERR_CLOSED', 'flow relay not started: no reply would be heard'));
    // 128 random bits: a reply is taken for the request of that id only, so the id must not be guessable.
    const id = randomBytes(16).toString('base64url');
    const owner = flow.node;
    const request = wireWithoutVia(req).toString('base64');
    return new Promise<SipResponse>((resolve, reject) => {
      this.publishRelay(owner, id, flow, { request }, req.method, (res) => (res ? resolve(res) : reject(sbError('BUS_ERR_MALFORMED', `node ${owner} replied to a relayed request without its response`, { node: owner }))), reject);
    });
  }

  /**
   * A sender for the endpoint (`invite`, `request`, `forwardStateless`) that writes messages over another node's
   * connection as they are: the origin's transaction stays here, and the responses come back to `receiveResponse`.
   */
  through(flow: RelayFlow): { send(data: Buffer): Promise<void>; sendNow(data: Buffer): void } {
    const send = (data: Buffer): Promise<void> => this.sendWire(data, flow);
    return { send, sendNow: (data) => void send(data).catch((err: unknown) => this.log.debug({ err: errText(err), node: flow.node }, 'relayed message not sent')) };
  }

  private sendWire(data: Buffer, flow: RelayFlow): Promise<void> {
    if (!TRANSPORTS.has(flow.transport) || !this.isRemote(flow)) return Promise.reject(sbError('SIP_ERR_TRANSPORT', `not another node's ${flow.transport} connection`));
    if (this.closed || this.unsubscribes.length === 0) return Promise.reject(sbError('RELAY_ERR_CLOSED'));
    let method = '?';
    try {
      const msg = parseMessage(data, false);
      if (!msg.isRequest) throw new Error('not a request');
      method = (msg as SipRequest).method;
      const branch = msg.topVia()?.params.get('branch');
      if (!branch) throw new Error('no branch');
      if (method !== 'ACK') remember(this.branchesSent, branch, { owner: flow.node, until: Date.now() + RELAYED_BRANCH_LIFE_MS });
    } catch (e) {
      return Promise.reject(sbError('SIP_ERR_TRANSPORT', `cannot relay that message: ${errText(e)}`));
    }
    const id = randomBytes(16).toString('base64url');
    return new Promise<void>((resolve, reject) => {
      this.publishRelay(flow.node, id, flow, { message: data.toString('base64') }, method, () => resolve(), reject);
    });
  }

  /** Publishes a relay message to `owner` and waits for its reply (pending by `id`) or the timeout. */
  private publishRelay(owner: string, id: string, flow: RelayFlow, body: Record<string, string>, method: string, resolve: (res: SipResponse | null) => void, reject: (err: SwitchboardError) => void): void {
    const transport = flow.transport;
    const timer = setTimeout(() => {
      if (this.pending.get(id)?.timer !== timer) return;
      this.pending.delete(id);
      this.counters.timedOut++;
      reject(sbError('RELAY_ERR_TIMEOUT', `no answer from node ${owner} within ${this.timeoutMs} ms for ${method} over its ${transport} connection ${flow.connectionId}`, { node: owner }));
    }, this.timeoutMs);
    timer.unref();
    this.pending.set(id, { resolve, reject, timer, owner });
    this.counters.relayed++;
    this.o.bus.publish(relayTopic(owner), {
      v: 1,
      id,
      origin: this.o.node,
      flow: { transport, address: flow.address, port: flow.port, connectionId: flow.connectionId },
      ...body,
      expiresAt: Date.now() + this.timeoutMs,
    });
  }

  // Owner side ------------------------------------------------------------------------------------------------

  private readonly onRequest = (msg: BusMessage): void => {
    const p = msg.payload;
    const id = str(p.id, MAX_ID);
    const origin = str(p.origin, MAX_NODE);
    if (!id || origin === null) {
      this.malformed(msg, 'relay request without id or origin: dropped');
      return;
    }
    const fail = (code: ErrorCode, message: string): void => {
      this.counters.serveFailed++;
      this.reply(origin, { v: 1, id, node: this.o.node, error: { code, message } });
    };
    const f = p.flow;
    const wire = p.message !== undefined;
    const request = str(wire ? p.message : p.request, MAX_MESSAGE_B64);
    if (
      !isObject(f) ||
      typeof f.transport !== 'string' ||
      !TRANSPORTS.has(f.transport) ||
      typeof f.address !== 'string' ||
      !Number.isInteger(f.port) ||
      !Number.isSafeInteger(f.connectionId) ||
      request === null
    ) {
      this.malformed(msg, 'relay request with a malformed flow or request: refused', origin);
      fail('BUS_ERR_MALFORMED', 'relay request with a malformed flow or request');
      return;
    }
    let req: SipRequest;
    try {
      const parsed = parseMessage(Buffer.from(request, 'base64'), false);
      if (!parsed.isRequest) throw new Error('not a request');
      req = parsed as SipRequest;
    } catch (e) {
      this.malformed(msg, 'relay request whose SIP message does not parse: refused', origin);
      fail('BUS_ERR_MALFORMED', `relayed SIP request does not parse: ${errText(e)}`);
      return;
    }
    const now = Date.now();
    if (typeof p.expiresAt !== 'number' || p.expiresAt < now) {
      // The origin has given up already: sending now would only surprise the phone.
      this.counters.serveFailed++;
      this.badInput.warn({ origin, method: req.method, late: typeof p.expiresAt === 'number' ? now - p.expiresAt : undefined }, 'relayed request arrived after its origin gave up (or names no expiry): not sent');
      return;
    }
    if (!this.firstTime(id, Math.min(p.expiresAt, now + MAX_RELAY_LIFE_MS), now)) {
      this.counters.serveFailed++;
      this.badInput.warn({ origin, method: req.method, code: Errors.BUS_ERR_MALFORMED.code }, 'relay request id served already (a replay): not sent');
      return;
    }
    const connectionId = f.connectionId as number;
    const dest: Destination = { transport: f.transport as TransportName, address: f.address, port: f.port as number, connectionId };
    const conns = this.o.connections;
    if (conns && !conns.isConnectionOpen(connectionId)) {
      fail('RELAY_ERR_FLOW_GONE', `${dest.transport} connection ${connectionId} to ${dest.address}:${dest.port} is closed on node ${this.o.node}`);
      return;
    }
    const peer = conns?.connectionPeer ? conns.connectionPeer(connectionId) : undefined;
    if (peer !== undefined && (peer === null || peer.transport !== dest.transport || peer.address !== dest.address || peer.port !== dest.port)) {
      this.badInput.warn({ origin, method: req.method, transport: dest.transport, address: dest.address, port: dest.port, code: Errors.RELAY_ERR_NOT_PEER.code }, 'relay request for a target that is not the peer of the connection it names: refused');
      fail('RELAY_ERR_NOT_PEER', `${dest.transport} ${dest.address}:${dest.port} is not the peer of that connection on node ${this.o.node}`);
      return;
    }
    if (wire) return this.writeWire(req, dest, origin, id, fail);
    // For a node that is shutting down the endpoint rejects at once, and that error goes back like any other.
    this.o.endpoint.request(req, dest).then(
      (res) => {
        this.counters.served++;
        this.reply(origin, { v: 1, id, node: this.o.node, response: serialize(res).toString('base64') });
      },
      (err: unknown) => {
        const code = isSwitchboardError(err) && isErrorCode(err.code) ? err.code : 'RELAY_ERR_FAILED';
        fail(code, errText(err));
      },
    );
  };

  /** A message relayed as it is (`through`): written over the connection; its branch's responses go to `origin`. */
  private writeWire(req: SipRequest, dest: Destination, origin: string, id: string, fail: (code: ErrorCode, message: string) => void): void {
    const branch = req.topVia()?.params.get('branch');
    if (!this.o.transport || !branch || branch.length > MAX_ID * 2) {
      fail(this.o.transport ? 'BUS_ERR_MALFORMED' : 'RELAY_ERR_FAILED', this.o.transport ? 'relayed message without a branch' : 'this node writes no relayed messages');
      return;
    }
    if (req.method !== 'ACK') remember(this.branchesServed, branch, { origin, connectionId: dest.connectionId!, until: Date.now() + RELAYED_BRANCH_LIFE_MS });
    this.o.transport.send(serialize(req), dest).then(
      () => {
        this.counters.served++;
        this.reply(origin, { v: 1, id, node: this.o.node, sent: true });
      },
      (err: unknown) => fail('RELAY_ERR_FAILED', errText(err)),
    );
  }

  /**
   * Owner side: a response that matched no transaction of ours (the endpoint asks). A response of a branch written
   * for another node, arriving over the connection it was written to, goes back to that node; true then.
   */
  forwardResponse(res: SipResponse, source: { connectionId: number | null }): boolean {
    const branch = res.topVia()?.params.get('branch');
    const entry = branch ? this.branchesServed.get(branch) : undefined;
    if (!entry || entry.connectionId !== source.connectionId || entry.until < Date.now() || this.closed) return false;
    this.reply(entry.origin, { v: 1, node: this.o.node, branchResponse: serialize(res).toString('base64') });
    return true;
  }

  /** Records a request id as served until `until`; false when it was already (a replay). */
  private firstTime(id: string, until: number, now: number): boolean {
    for (const [old, t] of this.served) {
      if (t > now && this.served.size < MAX_SERVED_IDS) break;
      this.served.delete(old);
    }
    if (this.served.has(id)) return false;
    this.served.set(id, until);
    return true;
  }

  private reply(origin: string, payload: Record<string, unknown>): void {
    this.o.bus.publish(relayReplyTopic(origin), payload);
  }

  // Origin side -----------------------------------------------------------------------------------------------

  private readonly onReply = (msg: BusMessage): void => {
    const p = msg.payload;
    if (p.branchResponse !== undefined) return this.onBranchResponse(msg);
    const id = str(p.id, MAX_ID);
    if (!id) {
      this.malformed(msg, 'relay reply without id: dropped');
      return;
    }
    const entry = this.pending.get(id);
    if (!entry) {
      // Timed out here already (or another process's id): nobody waits.
      this.log.debug({ id, from: p.node }, 'late or unknown relay reply dropped');
      return;
    }
    this.pending.delete(id);
    clearTimeout(entry.timer);
    const node = typeof p.node === 'string' ? p.node : entry.owner;
    if (isObject(p.error)) {
      const code = typeof p.error.code === 'string' && isErrorCode(p.error.code) ? p.error.code : 'RELAY_ERR_FAILED';
      const message = typeof p.error.message === 'string' ? p.error.message : Errors[code].message;
      this.counters.failed++;
      entry.reject(sbError(code, message, { node }));
      return;
    }
    if (p.sent === true) {
      this.counters.answered++;
      entry.resolve(null);
      return;
    }
    const response = str(p.response, MAX_MESSAGE_B64);
    let res: SipResponse | null = null;
    if (response !== null) {
      try {
        const parsed = parseMessage(Buffer.from(response, 'base64'), false);
        if (!parsed.isRequest) res = parsed as SipResponse;
      } catch {
        res = null;
      }
    }
    if (!res) {
      this.counters.failed++;
      this.malformed(msg, 'relay reply with neither a response nor an error');
      entry.reject(sbError('BUS_ERR_MALFORMED', `node ${node} replied with neither a SIP response nor an error`, { node }));
      return;
    }
    this.counters.answered++;
    entry.resolve(res);
  };

  /** A response of a branch we sent `through` a node, from that node: to the endpoint (our client transaction). */
  private onBranchResponse(msg: BusMessage): void {
    const p = msg.payload;
    const data = str(p.branchResponse, MAX_MESSAGE_B64);
    let res: SipResponse | null = null;
    try {
      const parsed = data === null ? null : parseMessage(Buffer.from(data, 'base64'), false);
      if (parsed && !parsed.isRequest) res = parsed as SipResponse;
    } catch {
      res = null;
    }
    const branch = res?.topVia()?.params.get('branch');
    const sent = branch ? this.branchesSent.get(branch) : undefined;
    if (!res || !sent || sent.owner !== p.node || sent.until < Date.now()) {
      // Not a branch we sent through that node (or long ago): nobody here may be fed it.
      this.malformed(msg, 'relayed response for a branch not sent through that node: dropped');
      return;
    }
    this.o.endpoint.receiveResponse?.(res);
  }

  private malformed(msg: BusMessage, what: string, origin?: string): void {
    this.counters.malformed++;
    this.badInput.warn({ topic: msg.topic, origin, code: Errors.BUS_ERR_MALFORMED.code }, what);
  }

  private unsubscribe(): void {
    for (const u of this.unsubscribes.splice(0)) u();
  }

  /** Stops listening; whatever still waits for a reply is rejected. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      this.pending.delete(id);
      entry.reject(sbError('RELAY_ERR_CLOSED', undefined, { node: entry.owner }));
    }
  }
}
