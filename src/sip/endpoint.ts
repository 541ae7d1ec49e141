// The SIP endpoint: bytes in from the transports → parse → Via stamping → server transaction → the handler
// registered for the method → response back through the transaction to the transport. Generic UAS behaviour
// lives here (OPTIONS, 405/501 with Allow, 420 with Unsupported, 400/505 for bad messages); services register
// handlers per method and never see transports.
//
// Requests Switchboard sends (NOTIFY, MESSAGE, OPTIONS) go out through client transactions.
//
// INVITE has transactions of its own (transaction/invite-server.ts, invite-client.ts): its handler answers through
// a handle as often as it needs to (provisionals, several 2xx when a proxy forks), a CANCEL reaches it through the
// matching server transaction, an ACK for a non-2xx is absorbed here and an ACK for a 2xx goes to the ACK handler
// (end to end, RFC 3261 §17); transaction/invite-table.ts keeps their state. A little over 400 lines: both halves
// share the dispatch, the Via handling and the send paths.

import { randomBytes } from 'node:crypto';
import { Errors, isSwitchboardError, sbError, type SwitchboardError } from '../errors.ts';
import { ThrottledLog, type Logger } from '../log.ts';
import { H } from './message/header-names.ts';
import { SipRequest, SipResponse, type SipMessage } from './message/message.ts';
import { parseMessage, SipParseError } from './message/parse.ts';
import { createResponse, isStatelessTag, sipError } from './message/response.ts';
import { serialize } from './message/serialize.ts';
import { canAnswer, validateRequest } from './message/validate.ts';
import { MAGIC_COOKIE, type Via } from './message/via.ts';
import { ClientTransactionTable, type TransactionOutcome } from './transaction/client.ts';
import { DelayQueue } from './transaction/delay-queue.ts';
import type { TransactionTimers } from './transaction/invite-server.ts';
import { InviteTable, type InviteClientCallbacks, type InviteClientHandle, type InviteServerHandle, type OutboundSender, type ServerInvite } from './transaction/invite-table.ts';
import { ServerTransactionTable, transactionKey, type ServerTransaction } from './transaction/server.ts';
import { responseDestination, stampVia } from './transport/route.ts';
import { isReliable, type Destination, type SendDone, type Source, type TransportName } from './transport/types.ts';

export interface RequestContext {
  readonly source: Source;
  /** performance.now() when the request arrived. */
  readonly arrivedAt: number;
}

export type RequestHandler = (req: SipRequest, ctx: RequestContext) => SipResponse | Promise<SipResponse>;

export type InviteHandler = (req: SipRequest, ctx: RequestContext, txn: InviteServerHandle) => void;
/** ACKs that matched no INVITE server transaction: those for a 2xx, end to end (§13.2.2.4, §16.7 for proxies). */
export type AckHandler = (req: SipRequest, ctx: RequestContext) => void;
export type { InviteClientCallbacks, InviteClientHandle, InviteServerHandle, OutboundSender, TransactionOutcome };

/** Sends bytes; implemented by the transport layer. */
export interface Sender {
  sendNow(data: Buffer, to: Destination): void;
  send(data: Buffer, to: Destination): Promise<void>;
  /** send() with the outcome told to `done`, no promise per datagram (a client transaction's requests, §17.1.4). */
  sendReporting?(data: Buffer, to: Destination, done: SendDone): void;
  /** The address and port to put in the Via of requests we originate over this transport. */
  viaAddress(transport: TransportName): { host: string; port: number };
}

export interface EndpointObserver {
  request?(method: string): void;
  response?(method: string, status: number, arrivedAt: number): void;
  badMessage?(reason: string): void;
  retransmission?(): void;
}

export interface EndpointOptions {
  logger: Logger;
  /** Option tags we support; a Require naming anything else gets 420 (RFC 3261 §8.2.2.3). */
  supported: string[];
  /** Answer UDP requests at their source address and port, whatever the Via says. */
  forceRport: boolean;
  serverHeader: string | null;
  observer?: EndpointObserver;
  /** Transaction timers (T1, T2, T4); tests shorten them. */
  timers?: TransactionTimers;
}


// Methods from the IANA SIP registry: those we do not implement get 405, anything else 501 (§8.2.1).
const KNOWN_METHODS = new Set([
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO',
  'REFER', 'MESSAGE', 'UPDATE',
]);

export class SipEndpoint {
  private readonly handlers = new Map<string, RequestHandler>();
  private readonly server = new ServerTransactionTable();
  private readonly client = new ClientTransactionTable();
  private readonly invites: InviteTable;
  /**
   * INVITEs whose handler works asynchronously: 100 Trying when it has not answered within 200 ms (§17.2.1), so a
   * refusal that comes quickly (a 407, a 404) goes alone, as from Kamailio. One queue for all (delay-queue.ts).
   */
  private readonly trying = new DelayQueue<ServerInvite>(200, (entry) => entry.trying());
  private inviteHandler: InviteHandler | null = null;
  private ackHandler: AckHandler | null = null;
  private readonly opts: EndpointOptions;
  private readonly log: Logger;
  private readonly badInput: ThrottledLog;
  private sender: Sender | null = null;
  private allowHeader = 'OPTIONS';
  private readonly supportedSet: Set<string>;
  private inFlight = 0;
  private accepting = true;
  private observer: EndpointObserver | undefined;
  private unmatchedResponse: ((res: SipResponse, source: Source) => boolean) | null = null;

  constructor(opts: EndpointOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.badInput = new ThrottledLog(opts.logger, 20);
    this.supportedSet = new Set(opts.supported.map((s) => s.toLowerCase()));
    this.observer = opts.observer;
    this.invites = new InviteTable({
      timers: opts.timers,
      serverHeader: opts.serverHeader,
      onFinal: (status, arrivedAt) => this.observer?.response?.('INVITE', status, arrivedAt),
    });
  }

  setObserver(observer: EndpointObserver): void {
    this.observer = observer;
  }

  /** New requests are dropped from now on (clients retransmit to wherever the service comes back). */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Resolves when no handler is still working (or after `timeoutMs`), for a graceful shutdown. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  attach(sender: Sender): void {
    this.sender = sender;
  }

  /** Asked about a response that matched no transaction here (the flow relay's branches for another node). */
  onUnmatchedResponse(handler: (res: SipResponse, source: Source) => boolean): void {
    this.unmatchedResponse = handler;
  }

  /** A response that came another way than our transports (the flow relay): matched to our client transactions. */
  receiveResponse(res: SipResponse): void {
    if (this.matchResponse(res) === false) this.observer?.badMessage?.('unmatched-response');
  }

  /** Registers the handler for a method; OPTIONS has a built-in one. */
  handle(method: string, handler: RequestHandler): void {
    this.handlers.set(method, handler);
    this.updateAllow();
  }

  private updateAllow(): void {
    const methods = ['OPTIONS', ...(this.inviteHandler ? ['INVITE', 'ACK', 'CANCEL'] : []), ...this.handlers.keys()];
    this.allowHeader = [...new Set(methods)].join(', ');
  }

  /** INVITE handling: the handler answers through its transaction handle (see InviteServerHandle). */
  handleInvite(handler: InviteHandler): void {
    this.inviteHandler = handler;
    this.updateAllow();
  }

  /** ACKs for 2xx responses (end to end); without a handler they are dropped. */
  handleAck(handler: AckHandler): void {
    this.ackHandler = handler;
  }

  get allow(): string {
    return this.allowHeader;
  }

  /** Where this endpoint is reached over `transport` (for the Contact of dialogs it takes part in); null before attach. */
  localAddress(transport: TransportName): { host: string; port: number } | null {
    return this.sender ? this.sender.viaAddress(transport) : null;
  }

  get stats(): { serverTransactions: number; clientTransactions: number } {
    return { serverTransactions: this.server.size + this.invites.serverSize, clientTransactions: this.client.size + this.invites.clientSize };
  }

  /** Entry point for the transports: one complete message (a datagram, or one framed off a stream). */
  receive = (data: Buffer, source: Source): void => {
    if (!this.accepting) return;
    let msg: SipMessage;
    try {
      // Byte streams (TCP, TLS) were framed by Content-Length; datagrams and WebSocket messages are one message each.
      msg = parseMessage(data, source.transport === 'TCP' || source.transport === 'TLS');
    } catch (e) {
      this.rejectUnparsable(e, source);
      return;
    }
    if (msg.isRequest) this.onRequest(msg as SipRequest, source);
    else this.onResponse(msg as SipResponse, source);
  };

  /**
   * A stream that cannot be framed any more (oversized message, bad Content-Length): the bytes for the answer
   * to send before the connection closes (513 or 400, RFC 3261 §18.3), or null when no answer can be formed.
   */
  streamError = (reason: 'too-large' | 'bad-length', head: Buffer | null, source: Source): Buffer | null => {
    this.observer?.badMessage?.(reason === 'too-large' ? 'SIP_ERR_TOO_LARGE' : 'SIP_ERR_CONTENT_LENGTH');
    this.badInput.warn({ reason, from: `${source.transport} ${source.address}:${source.port}` }, 'SIP stream closed: cannot frame the next message');
    if (!head) return null;
    let req: SipMessage | null;
    try {
      req = parseMessage(head, false);
    } catch (e) {
      req = e instanceof SipParseError ? e.partial : null;
    }
    if (!req || !req.isRequest || (req as SipRequest).method === 'ACK' || !canAnswer(req)) return null;
    const res = sipError(req as SipRequest, reason === 'too-large' ? Errors.SIP_ERR_TOO_LARGE : Errors.SIP_ERR_CONTENT_LENGTH);
    if (this.opts.serverHeader) res.append('Server', this.opts.serverHeader);
    return serialize(res);
  };

  private rejectUnparsable(e: unknown, source: Source): void {
    const err = e as SipParseError;
    const partial = e instanceof SipParseError ? err.partial : null;
    this.observer?.badMessage?.(err.code ?? 'unknown');
    const answerable = partial !== null && partial.isRequest && (partial as SipRequest).method !== 'ACK' && canAnswer(partial);
    this.badInput.warn(
      { code: err.code, reason: err.message, from: `${source.transport} ${source.address}:${source.port}`, answered: answerable ? err.sip : false },
      'bad SIP message',
    );
    if (!answerable) return;
    const req = partial as SipRequest;
    stampVia(req, source);
    this.sendResponse(req, source, this.errorResponse(req, err), null);
  }

  private onRequest(req: SipRequest, source: Source): void {
    const arrivedAt = performance.now();
    const via = stampVia(req, source);
    if (!via) {
      this.observer?.badMessage?.('SIP_ERR_MISSING_HEADER');
      this.badInput.warn({ from: `${source.transport} ${source.address}:${source.port}`, method: req.method }, 'request without a usable Via dropped');
      return;
    }
    if (req.method === 'ACK') return this.onAck(req, via, source, arrivedAt);
    const key = transactionKey(req, via);
    if (req.method === 'INVITE') return this.onInvite(req, key, source, arrivedAt);
    const existing = this.server.get(key);
    if (existing) {
      this.observer?.retransmission?.();
      if (existing.lastResponse && existing.destination && this.sender) this.sender.sendNow(existing.lastResponse, existing.destination);
      return;
    }
    const now = Date.now();
    const completed = this.server.completedResponse(key, now);
    if (completed) {
      this.observer?.retransmission?.();
      this.sender?.sendNow(completed.data, completed.destination);
      return;
    }
    this.observer?.request?.(req.method);
    const ctx: RequestContext = { source, arrivedAt };
    const invalid = validateRequest(req);
    if (invalid) {
      this.badInput.warn({ code: invalid.code, reason: invalid.message, from: `${source.transport} ${source.address}:${source.port}`, method: req.method }, 'invalid SIP request');
      this.sendResponse(req, source, this.errorResponse(req, invalid), key, arrivedAt);
      return;
    }
    let res: SipResponse | Promise<SipResponse>;
    try {
      res = this.dispatch(req, ctx);
    } catch (e) {
      res = this.internalError(req, e);
    }
    // A final answer given at once needs no transaction (nothing can arrive meanwhile): it is only kept for
    // retransmissions (ServerTransactionTable.answered). A transaction absorbs them while a handler works.
    if (res instanceof SipResponse && res.status >= 200) this.sendResponse(req, source, res, key, arrivedAt);
    else if (res instanceof SipResponse) this.sendResponse(req, source, res, this.server.create(key, now), arrivedAt);
    else {
      const txn = this.server.create(key, now);
      this.inFlight++;
      res.then(
        (r) => {
          this.inFlight--;
          this.sendResponse(req, source, r, txn, arrivedAt);
        },
        (e: unknown) => {
          this.inFlight--;
          this.sendResponse(req, source, this.internalError(req, e), txn, arrivedAt);
        },
      );
    }
  }

  private dispatch(req: SipRequest, ctx: RequestContext): SipResponse | Promise<SipResponse> {
    const method = req.method;
    if (method === 'CANCEL') return this.invites.cancel(transactionKey(req, req.topVia()!, 'INVITE'), req);
    const unsupported = this.unsupportedRequirements(req);
    if (unsupported.length) {
      const res = sipError(req, Errors.SIP_ERR_EXTENSION);
      res.append('Unsupported', unsupported.join(', '));
      return res;
    }
    const handler = this.handlers.get(method);
    if (handler) return handler(req, ctx);
    if (method === 'OPTIONS') return this.answerOptions(req);
    const res = sipError(req, KNOWN_METHODS.has(method) ? Errors.SIP_ERR_METHOD_NOT_ALLOWED : Errors.SIP_ERR_NOT_IMPLEMENTED);
    res.append('Allow', this.allowHeader);
    return res;
  }

  private onInvite(req: SipRequest, key: string, source: Source, arrivedAt: number): void {
    if (this.invites.retransmission(key)) {
      this.observer?.retransmission?.();
      return;
    }
    const sender = this.sender;
    const via = req.topVia();
    if (!sender || !via) return;
    const handle = this.invites.create(key, req, responseDestination(via, source, this.opts.forceRport), sender, arrivedAt);
    this.observer?.request?.('INVITE');
    const ctx: RequestContext = { source, arrivedAt };
    const invalid = validateRequest(req);
    if (invalid) {
      this.badInput.warn({ code: invalid.code, reason: invalid.message, from: `${source.transport} ${source.address}:${source.port}`, method: req.method }, 'invalid SIP request');
      handle.respond(stateless(this.errorResponse(req, invalid)));
      return;
    }
    const handler = this.inviteHandler;
    try {
      if (!handler) {
        const res = this.dispatch(req, ctx); // no INVITE handler: 405 with Allow (or 420), as for any method
        if (res instanceof SipResponse) handle.respond(stateless(res));
        else res.then((r) => handle.respond(stateless(r)), (e: unknown) => handle.respond(stateless(this.internalError(req, e))));
        return;
      }
      const unsupported = this.unsupportedRequirements(req);
      if (unsupported.length) {
        handle.respond(stateless(sipError(req, Errors.SIP_ERR_EXTENSION).append('Unsupported', unsupported.join(', '))));
        return;
      }
      handler(req, ctx, handle);
    } catch (e) {
      handle.respond(this.internalError(req, e));
      return;
    }
    // The handler works asynchronously (a lookup, authentication, forwarding): see `trying`.
    if (!handle.answered) this.trying.add(handle);
  }

  /** ACK: for a non-2xx it matches our INVITE server transaction and ends there; for a 2xx it is end to end. */
  private onAck(req: SipRequest, via: Via, source: Source, arrivedAt: number): void {
    if (this.invites.ack(transactionKey(req, via))) return;
    const toTag = req.to()?.params.get('tag');
    if (toTag && isStatelessTag(toTag)) return; // the ACK for a rejection we sent statelessly (Kamailio's sl_filter_ACK)
    if (!this.ackHandler || validateRequest(req)) return; // a bad ACK cannot be answered: dropped
    try {
      this.ackHandler(req, { source, arrivedAt });
    } catch (e) {
      this.log.error({ err: e, callId: req.callId() }, 'ACK handler failed');
    }
  }

  private unsupportedRequirements(req: SipRequest): string[] {
    const required = req.values(H.require);
    if (required.length === 0) return [];
    return required.filter((tag) => !this.supportedSet.has(tag.toLowerCase()));
  }

  /** OPTIONS (RFC 3261 §11.2): what we accept and support. */
  answerOptions(req: SipRequest): SipResponse {
    const res = createResponse(req, 200);
    res.append('Allow', this.allowHeader);
    res.append('Accept', 'application/sdp, application/pidf+xml');
    res.append('Accept-Encoding', 'identity');
    res.append('Accept-Language', 'en');
    if (this.opts.supported.length) res.append('Supported', this.opts.supported.join(', '));
    return res;
  }

  private errorResponse(req: SipRequest, err: SwitchboardError): SipResponse {
    const status = err.sip ?? 400;
    // The reason phrase says what was wrong, so a phone's log tells its operator (§21: phrases are free text).
    const res = sipError(req, { code: err.code, sip: status }, sanitizeReason(err.message));
    if (status === 405 || status === 501) res.append('Allow', this.allowHeader);
    return res;
  }

  private internalError(req: SipRequest, e: unknown): SipResponse {
    if (isSwitchboardError(e) && e.sip) return this.errorResponse(req, e);
    this.log.error({ err: e, method: req.method, callId: req.callId() }, 'request handler failed');
    return sipError(req, Errors.SIP_ERR_INTERNAL);
  }

  /**
   * Sends `res` and records it: in `txn`, its transaction, or, given the transaction key of a request answered at
   * once with a final response, for its retransmissions (null: neither, a message that could not be parsed).
   */
  private sendResponse(req: SipRequest, source: Source, res: SipResponse, txn: ServerTransaction | string | null, arrivedAt?: number): void {
    const via = req.topVia();
    if (!via || !this.sender) return;
    if (res.drop) {
      if (txn !== null && typeof txn !== 'string') this.server.respond(txn, res.status, Buffer.alloc(0), source, true);
      return;
    }
    if (this.opts.serverHeader && !res.has(H.server)) res.append('Server', this.opts.serverHeader);
    const data = serialize(res);
    const dest = responseDestination(via, source, this.opts.forceRport);
    if (txn !== null) {
      const endNow = res.stateless || isReliable(source.transport) || rejectsStatelessly(req, res);
      if (typeof txn === 'string') this.server.answered(txn, data, dest, endNow);
      else this.server.respond(txn, res.status, data, dest, endNow);
    }
    this.sender.sendNow(data, dest);
    if (arrivedAt !== undefined) this.observer?.response?.(req.method, res.status, arrivedAt);
  }

  private onResponse(res: SipResponse, source: Source): void {
    const matched = this.matchResponse(res);
    if (matched === true) return;
    // A branch another node sent through our connection (the flow relay) goes back to it; §18.1.2: any other
    // response matching no client transaction is discarded.
    if (matched === false && this.unmatchedResponse?.(res, source)) return;
    this.observer?.badMessage?.('unmatched-response');
  }

  /** Feeds a response to its client transaction: true when one took it, false when none has its branch, null without one. */
  private matchResponse(res: SipResponse): boolean | null {
    const via = res.topVia();
    const cseq = res.cseq();
    const branch = via?.params.get('branch');
    if (!via || !cseq || !branch) return null;
    if (cseq.method === 'INVITE' && this.invites.receive(branch, res)) return true;
    return this.client.receive(branch, cseq.method, res);
  }

  /**
   * Sends a request in a new client transaction and resolves with its final response. The endpoint adds the top
   * Via (with a fresh branch and rport), Max-Forwards and Content-Length.
   */
  request(req: SipRequest, dest: Destination, onProvisional?: (res: SipResponse) => void, through?: OutboundSender): Promise<SipResponse> {
    if (!this.sender) return Promise.reject(new Error('endpoint not attached to transports'));
    const sender = through ?? this.sender;
    const branch = newBranch();
    this.addVia(req, dest, branch);
    const data = serialize(req);
    const cseq = req.cseq();
    return this.client.start(branch, cseq?.method ?? req.method, dest, {
      reliable: isReliable(dest.transport),
      transmit: transmitter(sender, data, dest),
      onProvisional,
    });
  }

  /**
   * Sends a request given as wire text in a new client transaction, as `request` does but without a message
   * object, and tells `outcome` how it ended instead of returning a promise. `startLine` comes without its CRLF,
   * `headers` as lines each ending in CRLF, with no Via, Max-Forwards or Content-Length: the endpoint writes its Via
   * (a fresh branch, rport) and Max-Forwards: 70 first and Content-Length last, into one buffer with the body. For
   * requests built from per-dialog text (a NOTIFY fan-out): the message objects and their serialization were about a
   * tenth of a fan-out's sampled CPU (profile of bench:presence, 2026-12-07; serialize alone 83 of 1,097 ms).
   */
  requestWire(method: string, startLine: string, headers: string, body: Buffer | null, dest: Destination, outcome: TransactionOutcome): void {
    const sender = this.sender;
    if (!sender) {
      queueMicrotask(() => outcome.failed(sbError('SIP_ERR_TRANSPORT', 'endpoint not attached to transports')));
      return;
    }
    const branch = newBranch();
    const { host, port } = sender.viaAddress(dest.transport);
    const hostText = host.indexOf(':') >= 0 ? `[${host}]` : host;
    const bodyLength = body === null ? 0 : body.length;
    const head = `${startLine}\r\nVia: SIP/2.0/${dest.transport} ${hostText}:${port};branch=${branch};rport\r\nMax-Forwards: 70\r\n${headers}Content-Length: ${bodyLength}\r\n\r\n`;
    const data = Buffer.allocUnsafe(head.length + bodyLength);
    data.write(head, 0, 'latin1');
    if (body !== null) body.copy(data, head.length);
    this.client.begin(branch, method, dest, { reliable: isReliable(dest.transport), transmit: transmitter(sender, data, dest) }, outcome);
  }

  /**
   * Sends an INVITE in a new INVITE client transaction (a proxy's branch). The endpoint adds the top Via (with
   * `branch`, or a fresh one) and Max-Forwards when missing. Throws before attach.
   */
  invite(req: SipRequest, dest: Destination, callbacks: InviteClientCallbacks, branch = newBranch(), through?: OutboundSender): InviteClientHandle {
    const sender = this.sender;
    if (!sender) throw new Error('endpoint not attached to transports');
    this.addVia(req, dest, branch);
    return this.invites.start(req, dest, branch, through ?? sender, this.client, callbacks);
  }

  /**
   * Sends a request without a transaction (a proxy forwarding a 2xx ACK, §16.11 stateless forwarding): our Via
   * with `branch` on top. Fire and forget, as a response is sent: no transaction waits for the outcome, and a
   * transport error is the transport's to report (no promise and callback per forwarded ACK).
   */
  forwardStateless(req: SipRequest, dest: Destination, branch = newBranch(), through?: OutboundSender): void {
    if (!this.sender) throw new Error('endpoint not attached to transports');
    this.addVia(req, dest, branch);
    (through ?? this.sender).sendNow(serialize(req), dest);
  }

  /** Sends a response outside any transaction (a proxy forwarding a 2xx that arrived after its transaction ended, §16.7). */
  sendResponseTo(res: SipResponse, dest: Destination): void {
    this.sender?.sendNow(serialize(res), dest);
  }

  private addVia(req: SipRequest, dest: Destination, branch: string): void {
    const { host, port } = this.sender!.viaAddress(dest.transport);
    const hostText = host.indexOf(':') >= 0 ? `[${host}]` : host;
    req.prepend(H.via, `SIP/2.0/${dest.transport} ${hostText}:${port};branch=${branch};rport`);
    if (!req.has(H.maxForwards)) req.append('Max-Forwards', '70');
  }

  close(): void {
    this.trying.clear();
    this.server.close();
    this.client.close();
    this.invites.close();
  }
}

/** Marks a response to go statelessly (see rejectsStatelessly). */
function stateless(res: SipResponse): SipResponse {
  res.stateless = true;
  return res;
}

/**
 * A non-INVITE request's rejection (3xx-6xx) is sent statelessly, as Kamailio's sl_send_reply sends them (its
 * registrar answers even 200 so): a retransmission is simply answered again, which gives the same answer (the
 * checks that reject hold no state of the request's own), and a flood of requests that are refused holds no
 * transaction. Measured with test/security/flood.test.ts: 92,000 refused UDP requests held 90,000 transactions,
 * each with its answer, for Timer J (33 s): +560 MiB RSS; rejected statelessly, 16 transactions and +30 to +150 MiB
 * (garbage V8 keeps). Successes stay in their transaction: a retransmitted REGISTER whose 200 was lost gets that 200
 * again, not a second write. INVITE has transactions of its own (onInvite): the rejections the endpoint makes
 * itself go statelessly there too, a handler's rejections statefully unless it marks them stateless.
 */
function rejectsStatelessly(req: SipRequest, res: SipResponse): boolean {
  return res.status >= 300 && req.method !== 'INVITE';
}

/** Reason phrases are UTF-8 text without CR/LF; keep them short and printable. */
function sanitizeReason(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').slice(0, 120);
}

// Branches must be unique across space and time (RFC 3261 §8.1.1.7): a random per-process prefix and a counter
// are, without a randomBytes call per request (NOTIFY fan-out sends thousands at once).
const branchPrefix = MAGIC_COOKIE + randomBytes(9).toString('base64url') + '.';
let branchCounter = 0;

export function newBranch(): string {
  branchCounter = (branchCounter + 1) % Number.MAX_SAFE_INTEGER;
  return branchPrefix + branchCounter.toString(36);
}

/** A client transaction's transmit: the sender's reporting send when it has one (§17.1.4 without a promise per
 * datagram), else its promise. */
function transmitter(sender: Pick<Sender, 'send' | 'sendReporting'>, data: Buffer, dest: Destination): (done: SendDone) => Promise<void> | void {
  return (done) => (sender.sendReporting ? sender.sendReporting(data, dest, done) : sender.send(data, dest));
}
