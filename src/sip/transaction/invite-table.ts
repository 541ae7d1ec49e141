// The endpoint's INVITE transactions (RFC 3261 §17, RFC 6026): the server table matched by the §17.2.3 key (an
// INVITE retransmission, the ACK for a non-2xx, a CANCEL), the client table matched by branch, and the handles a
// handler or a proxy branch works through. The endpoint decides what to dispatch; this module keeps the state.

import { detach } from '../message/detach.ts';
import type { SipRequest, SipResponse } from '../message/message.ts';
import { Errors } from '../../errors.ts';
import { createResponse, sipError } from '../message/response.ts';
import { serialize } from '../message/serialize.ts';
import { isReliable, type Destination, type SendDone } from '../transport/types.ts';
import type { ClientTransactionTable } from './client.ts';
import { InviteClientTransaction, type InviteClientTransactionOptions } from './invite-client.ts';
import type { TransactionTimers } from './invite-server.ts';
import { ServerInvite, type ServerInviteHost } from './invite-server-entry.ts';

export type { ServerInvite };

/** What an INVITE handler answers through: any number of provisionals, one final (a proxy: every 2xx it gets). */
export interface InviteServerHandle {
  /**
   * Sends a response (Server header added); false when the transaction's state no longer allows it. A 3xx-6xx
   * marked `stateless` goes once and ends the transaction (see InviteTable.create).
   */
  respond(res: SipResponse): boolean;
  /** The caller's CANCEL; when nobody listens, the endpoint answers the INVITE 487 itself. */
  onCancel(listener: () => void): void;
  readonly cancelled: boolean;
  /** True once any response went out (the endpoint sends 100 Trying otherwise). */
  readonly answered: boolean;
}

export interface InviteClientCallbacks {
  /** Provisionals (not 100), the final and every 2xx after it (RFC 6026 Accepted). */
  onResponse: (res: SipResponse) => void;
  /** No final response: Timer B, no answer after CANCEL, or the transport failed. */
  onFailure: (reason: 'timeout' | 'transport') => void;
}

/** A branch's INVITE client transaction as its TU sees it. */
export interface InviteClientHandle {
  readonly branch: string;
  /** CANCEL (§9.1), with a Reason header value (RFC 3326) when given; waits for a provisional if none came yet. */
  cancel(reason?: string): void;
  readonly state: string;
  /**
   * From now on the transaction reports to `callbacks` instead (a proxy's answered fork: its Accepted branches only
   * pass 2xx upstream, RFC 6026, and need none of the search's state).
   */
  handOver?(callbacks: InviteClientCallbacks): void;
}

export interface InviteTableOptions {
  timers?: TransactionTimers;
  serverHeader: string | null;
  /** A final response went out (for metrics): status and arrival time of the INVITE. */
  onFinal?: (status: number, arrivedAt: number) => void;
}

export interface OutboundSender {
  sendNow(data: Buffer, to: Destination): void;
  send(data: Buffer, to: Destination): Promise<void>;
  /** send() with the outcome told to `done` (transport/types.ts, SendDone); without it, send()'s promise tells. */
  sendReporting?(data: Buffer, to: Destination, done: SendDone): void;
}

// An INVITE whose handler never answers is ended with 408 after this long: longer than a proxy's Timer C (181 s,
// §16.8) plus the 64*T1 its branch's CANCEL may then wait for an answer. Checked every PROCEEDING_SWEEP_MS over the
// table (oldest first, in the Map's insertion order), not by a timer per INVITE set and cleared for every call.
const INVITE_PROCEEDING_LIMIT_MS = 240_000;
const PROCEEDING_SWEEP_MS = 5_000;

export class InviteTable {
  private readonly server = new Map<string, ServerInvite>();
  private readonly client = new Map<string, InviteClientTransaction>();
  private readonly opts: InviteTableOptions;
  private readonly host: ServerInviteHost;
  private sweep: NodeJS.Timeout | null = null;

  constructor(opts: InviteTableOptions) {
    this.opts = opts;
    this.host = {
      timers: opts.timers,
      serverHeader: opts.serverHeader,
      onFinal: opts.onFinal,
      ended: (entry) => {
        if (this.server.get(entry.key) === entry) this.server.delete(entry.key);
      },
    };
  }

  get serverSize(): number {
    return this.server.size;
  }

  get clientSize(): number {
    return this.client.size;
  }

  /** A retransmitted INVITE: true when it matched a transaction (which re-sent what it had to). */
  retransmission(key: string): boolean {
    const entry = this.server.get(key);
    if (!entry) return false;
    entry.txn.retransmission();
    return true;
  }

  /** Creates the server transaction of a new INVITE whose responses go to `dest` (invite-server-entry.ts). */
  create(key: string, invite: SipRequest, dest: Destination, sender: OutboundSender, arrivedAt: number): ServerInvite {
    // The key is cut from the INVITE's header text (its Via branch): detached, or it keeps that whole text alive for
    // the 32 s of Accepted (a heap snapshot of bench/calls-hotpath held one INVITE text per call so).
    const k = detach(key);
    const entry = new ServerInvite(k, invite, dest, sender, arrivedAt, this.host);
    this.server.set(k, entry);
    if (this.sweep === null) {
      this.sweep = setInterval(() => this.expireProceeding(performance.now()), PROCEEDING_SWEEP_MS);
      this.sweep.unref();
    }
    return entry;
  }

  /** 408 for every INVITE still unanswered past the limit (the oldest entries come first: stops at a younger one). */
  private expireProceeding(now: number): void {
    for (const entry of this.server.values()) {
      if (now - entry.arrivedAt < INVITE_PROCEEDING_LIMIT_MS) break;
      if (entry.txn.state === 'proceeding' && entry.req) entry.respond(sipError(entry.req, Errors.SIP_ERR_TIMEOUT, 'no final response from the handler'));
    }
  }

  /** An ACK with the INVITE's key: true when it acknowledged our non-2xx and ends here (hop by hop). */
  ack(key: string): boolean {
    const entry = this.server.get(key);
    return entry !== undefined && entry.txn.ack();
  }

  /**
   * CANCEL (§9.2) with the INVITE's key: 481 without a matching transaction, else 200; the INVITE's handler is
   * told, or, when it does not listen, the INVITE is answered 487 here (after the 200, as a caller expects them).
   */
  cancel(key: string, cancel: SipRequest): SipResponse {
    const entry = this.server.get(key);
    if (!entry) return sipError(cancel, Errors.SIP_ERR_NO_TRANSACTION);
    const listened = entry.txn.hasCancelListener;
    const invite = entry.req;
    if (entry.txn.cancel() && !listened && invite) queueMicrotask(() => entry.respond(sipError(invite, Errors.SIP_ERR_REQUEST_TERMINATED)));
    return createResponse(cancel, 200);
  }

  /** Starts an INVITE client transaction for `req`, whose top Via carries `branch`. */
  start(req: SipRequest, dest: Destination, branch: string, sender: OutboundSender, cancels: ClientTransactionTable, callbacks: InviteClientCallbacks): InviteClientHandle {
    const entry = new ClientInvite(req, dest, branch, sender, cancels, callbacks, this.opts.timers, this.clientEnded);
    this.client.set(branch, entry.txn);
    entry.txn.start();
    return entry;
  }

  private readonly clientEnded = (entry: ClientInvite): void => {
    if (this.client.get(entry.branch) === entry.txn) this.client.delete(entry.branch);
  };

  /** A response to one of our INVITEs: false when no client transaction has its branch. */
  receive(branch: string, res: SipResponse): boolean {
    const txn = this.client.get(branch);
    if (!txn) return false;
    txn.receive(res);
    return true;
  }

  close(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    for (const { txn } of [...this.server.values()]) txn.terminate();
    for (const txn of [...this.client.values()]) txn.terminate();
  }
}

/**
 * One INVITE client transaction as the table holds it: the host its state machine sends through and reports to, and
 * the handle the proxy's branch works through, in one object (a class, not three closures, an options object and a
 * handle literal with a getter per branch: the same shape as the server side's ServerInvite).
 */
class ClientInvite implements InviteClientTransactionOptions, InviteClientHandle {
  readonly branch: string;
  readonly reliable: boolean;
  readonly timers: TransactionTimers | undefined;
  readonly txn: InviteClientTransaction;
  private readonly dest: Destination;
  private readonly sender: OutboundSender;
  private readonly cancels: ClientTransactionTable;
  private callbacks: InviteClientCallbacks;
  private readonly ended: (entry: ClientInvite) => void;
  /** The INVITE's send outcome, one function for its sends (see SendDone): made at the first, let go at the final. */
  private sent: SendDone | null = null;

  constructor(req: SipRequest, dest: Destination, branch: string, sender: OutboundSender, cancels: ClientTransactionTable, callbacks: InviteClientCallbacks, timers: TransactionTimers | undefined, ended: (entry: ClientInvite) => void) {
    this.branch = branch;
    this.dest = dest;
    this.sender = sender;
    this.cancels = cancels;
    this.callbacks = callbacks;
    this.ended = ended;
    this.reliable = isReliable(dest.transport);
    this.timers = timers;
    this.txn = new InviteClientTransaction(req, this);
  }

  transmit(data: Buffer): Promise<void> | void {
    const { sender } = this;
    if (!sender.sendReporting) return sender.send(data, this.dest);
    sender.sendReporting(data, this.dest, (this.sent ??= (err) => err && this.txn.transportError()));
  }

  sendCancel(cancel: SipRequest): void {
    const data = serialize(cancel);
    const { sender, dest } = this;
    // The CANCEL's own final response (200 or 481) changes nothing: the INVITE's answer decides.
    this.cancels.start(this.branch, 'CANCEL', dest, { reliable: this.reliable, transmit: () => sender.send(data, dest) }).catch(() => {});
  }

  onResponse(res: SipResponse): void {
    if (res.status >= 200) this.sent = null; // no more sends but the non-2xx ACK: not held through Accepted's 32 s
    this.callbacks.onResponse(res);
  }

  onFailure(reason: 'timeout' | 'transport'): void {
    this.callbacks.onFailure(reason);
  }

  onTerminated(): void {
    this.ended(this);
  }

  cancel(reason?: string): void {
    this.txn.cancel(reason);
  }

  handOver(callbacks: InviteClientCallbacks): void {
    this.callbacks = callbacks;
  }

  get state(): string {
    return this.txn.state;
  }
}
