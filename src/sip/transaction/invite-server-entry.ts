// One INVITE server transaction as the endpoint's table holds it: the state machine (invite-server.ts), the host it
// sends through, and the handle its handler answers through, in one object. A class, not a closure per callback
// and an object literal with getters per INVITE: those were 4.7 us of a call's ~143 us of server time in
// bench/calls-hotpath.bench.ts's profile (two INVITEs a call), the largest self time after parsing and hashing.

import { H } from '../message/header-names.ts';
import type { SipRequest, SipResponse } from '../message/message.ts';
import { createResponse, markStatelessTag } from '../message/response.ts';
import { serialize } from '../message/serialize.ts';
import { isReliable, type Destination } from '../transport/types.ts';
import { InviteServerTransaction, type InviteServerTransactionOptions, type TransactionTimers } from './invite-server.ts';
import type { InviteServerHandle, OutboundSender } from './invite-table.ts';

export interface ServerInviteHost {
  timers?: TransactionTimers;
  serverHeader: string | null;
  /** A final response went out (for metrics): status and arrival time of the INVITE. */
  onFinal?: (status: number, arrivedAt: number) => void;
  /** The transaction ended: drop it from the table. */
  ended(entry: ServerInvite): void;
}

export class ServerInvite implements InviteServerHandle, InviteServerTransactionOptions {
  readonly key: string;
  /**
   * The INVITE, until a final response went out: an answered call's transaction stays 32 s in Accepted (Timer L)
   * and needs only its state, and at 2,000 calls/s a parsed INVITE kept so long is 64,000 of them in V8's old space.
   */
  req: SipRequest | null;
  readonly reliable: boolean;
  readonly timers: TransactionTimers | undefined;
  /** performance.now() when the INVITE arrived. */
  readonly arrivedAt: number;
  readonly txn: InviteServerTransaction;
  private readonly dest: Destination;
  private readonly sender: OutboundSender;
  private readonly host: ServerInviteHost;
  private sentAny = false;

  constructor(key: string, req: SipRequest, dest: Destination, sender: OutboundSender, arrivedAt: number, host: ServerInviteHost) {
    this.key = key;
    this.req = req;
    this.dest = dest;
    this.sender = sender;
    this.arrivedAt = arrivedAt;
    this.host = host;
    this.reliable = isReliable(dest.transport);
    this.timers = host.timers;
    this.txn = new InviteServerTransaction(this);
  }

  // The state machine's host (InviteServerTransactionOptions).

  send(data: Buffer): void {
    this.sender.sendNow(data, this.dest);
  }

  onTerminated(): void {
    this.host.ended(this);
  }

  // The handler's handle (InviteServerHandle).

  respond(res: SipResponse): boolean {
    const { txn, host } = this;
    if (res.drop && res.status >= 300) {
      txn.terminate();
      this.req = null;
      return true;
    }
    if (host.serverHeader && !res.has(H.server)) res.append('Server', host.serverHeader);
    if (res.stateless && res.status >= 300 && txn.state === 'proceeding') {
      // A rejection sent statelessly, as Kamailio's sl_send_reply does for INVITE too: no Timer G copies to a
      // source that may be forged (405 x 11 was an amplifier), no transaction held for Timer H; a retransmitted
      // INVITE is answered again, and its ACK is absorbed by its To tag (isStatelessTag).
      if (this.req) markStatelessTag(this.req, res);
      this.sender.sendNow(serialize(res), this.dest);
      txn.terminate();
      this.req = null;
      this.sentAny = true;
      host.onFinal?.(res.status, this.arrivedAt);
      return true;
    }
    const first = txn.finalStatus === 0;
    const sent = txn.respond(res.status, serialize(res));
    if (sent) this.sentAny = true;
    if (sent && res.status >= 200) {
      this.req = null;
      if (first) host.onFinal?.(res.status, this.arrivedAt);
    }
    return sent;
  }

  /**
   * 100 Trying unless a response went out already (the endpoint's 200 ms rule, §17.2.1). The endpoint's queue holds
   * this entry, not the INVITE: a 407'd INVITE is let go at once instead of 200 ms later.
   */
  trying(): void {
    if (!this.sentAny && this.req) this.respond(createResponse(this.req, 100));
  }

  onCancel(listener: () => void): void {
    this.txn.onCancel(listener);
  }

  get cancelled(): boolean {
    return this.txn.isCancelled;
  }

  get answered(): boolean {
    return this.sentAny;
  }
}
