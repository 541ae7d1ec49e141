// The endpoint's INVITE transactions (RFC 3261 §17, RFC 6026): the server table matched by the §17.2.3 key (an
// INVITE retransmission, the ACK for a non-2xx, a CANCEL), the client table matched by branch, and the handles a
// handler or a proxy branch works through. The endpoint decides what to dispatch; this module keeps the state.

import { H } from '../message/header-names.ts';
import type { SipRequest, SipResponse } from '../message/message.ts';
import { Errors } from '../../errors.ts';
import { createResponse, markStatelessTag, sipError } from '../message/response.ts';
import { serialize } from '../message/serialize.ts';
import { isReliable, type Destination } from '../transport/types.ts';
import type { ClientTransactionTable } from './client.ts';
import { InviteClientTransaction } from './invite-client.ts';
import { InviteServerTransaction, type TransactionTimers } from './invite-server.ts';

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
}

// An INVITE whose handler never answers is ended with 408 after this long: longer than a proxy's Timer C (181 s,
// §16.8) plus the 64*T1 its branch's CANCEL may then wait for an answer.
const INVITE_PROCEEDING_LIMIT_MS = 240_000;

interface ServerEntry {
  txn: InviteServerTransaction;
  /** The INVITE, until a final response went out (then only its transaction's state is needed: see create). */
  req: SipRequest | null;
  handle: InviteServerHandle;
}

export class InviteTable {
  private readonly server = new Map<string, ServerEntry>();
  private readonly client = new Map<string, InviteClientTransaction>();
  private readonly opts: InviteTableOptions;

  constructor(opts: InviteTableOptions) {
    this.opts = opts;
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

  /**
   * Creates the server transaction of a new INVITE whose responses go to `dest`. The INVITE is let go once a final
   * response is sent: an answered call's transaction stays 32 s in Accepted (Timer L) and needs only its state, and
   * at 2,000 calls/s a parsed INVITE kept so long is 64,000 of them promoted into V8's old space.
   */
  create(key: string, invite: SipRequest, dest: Destination, sender: OutboundSender, arrivedAt: number): InviteServerHandle {
    const { opts } = this;
    let answered = false;
    const txn: InviteServerTransaction = new InviteServerTransaction({
      reliable: isReliable(dest.transport),
      timers: opts.timers,
      send: (data) => sender.sendNow(data, dest),
      onTerminated: () => {
        if (this.server.get(key)?.txn === txn) this.server.delete(key);
      },
      proceedingLimitMs: INVITE_PROCEEDING_LIMIT_MS,
      onProceedingTimeout: () => {
        if (entry.req) handle.respond(sipError(entry.req, Errors.SIP_ERR_TIMEOUT, 'no final response from the handler'));
      },
    });
    const handle: InviteServerHandle = {
      respond: (res) => {
        if (res.drop && res.status >= 300) {
          txn.terminate();
          entry.req = null;
          return true;
        }
        if (opts.serverHeader && !res.has(H.server)) res.append('Server', opts.serverHeader);
        if (res.stateless && res.status >= 300 && txn.state === 'proceeding') {
          // A rejection sent statelessly, as Kamailio's sl_send_reply does for INVITE too: no Timer G copies to a
          // source that may be forged (405 x 11 was an amplifier), no transaction held for Timer H; a retransmitted
          // INVITE is answered again, and its ACK is absorbed by its To tag (isStatelessTag).
          if (entry.req) markStatelessTag(entry.req, res);
          sender.sendNow(serialize(res), dest);
          txn.terminate();
          entry.req = null;
          answered = true;
          opts.onFinal?.(res.status, arrivedAt);
          return true;
        }
        const first = txn.finalStatus === 0;
        const sent = txn.respond(res.status, serialize(res));
        if (sent) answered = true;
        if (sent && res.status >= 200) {
          entry.req = null;
          if (first) opts.onFinal?.(res.status, arrivedAt);
        }
        return sent;
      },
      onCancel: (listener) => txn.onCancel(listener),
      get cancelled() {
        return txn.isCancelled;
      },
      get answered() {
        return answered;
      },
    };
    const entry: ServerEntry = { txn, req: invite, handle };
    this.server.set(key, entry);
    return handle;
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
    if (entry.txn.cancel() && !listened && invite) queueMicrotask(() => entry.handle.respond(sipError(invite, Errors.SIP_ERR_REQUEST_TERMINATED)));
    return createResponse(cancel, 200);
  }

  /** Starts an INVITE client transaction for `req`, whose top Via carries `branch`. */
  start(req: SipRequest, dest: Destination, branch: string, sender: OutboundSender, cancels: ClientTransactionTable, callbacks: InviteClientCallbacks): InviteClientHandle {
    const reliable = isReliable(dest.transport);
    const txn: InviteClientTransaction = new InviteClientTransaction({
      request: req,
      reliable,
      timers: this.opts.timers,
      transmit: (data) => sender.send(data, dest),
      sendCancel: (cancel) => {
        const data = serialize(cancel);
        // The CANCEL's own final response (200 or 481) changes nothing: the INVITE's answer decides.
        cancels.start(branch, 'CANCEL', dest, { reliable, transmit: () => sender.send(data, dest) }).catch(() => {});
      },
      onResponse: callbacks.onResponse,
      onFailure: callbacks.onFailure,
      onTerminated: () => {
        if (this.client.get(branch) === txn) this.client.delete(branch);
      },
    });
    this.client.set(branch, txn);
    txn.start();
    return {
      branch,
      cancel: (reason) => txn.cancel(reason),
      get state() {
        return txn.state;
      },
    };
  }

  /** A response to one of our INVITEs: false when no client transaction has its branch. */
  receive(branch: string, res: SipResponse): boolean {
    const txn = this.client.get(branch);
    if (!txn) return false;
    txn.receive(res);
    return true;
  }

  close(): void {
    for (const { txn } of [...this.server.values()]) txn.terminate();
    for (const txn of [...this.client.values()]) txn.terminate();
  }
}
