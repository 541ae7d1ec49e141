// INVITE client transactions (RFC 3261 §17.1.1 as amended by RFC 6026).
//
//   Calling --1xx--> Proceeding      (Timer A retransmits the INVITE on unreliable transports, T1 doubling;
//                                     Timer B = 64*T1 times the transaction out while no response came)
//   Calling/Proceeding --2xx--> Accepted   (RFC 6026: every 2xx, retransmissions and forks included, goes to the
//                                     TU, which sends the end-to-end ACK; Timer M = 64*T1 ends it)
//   Calling/Proceeding --3xx-6xx--> Completed (the ACK is built and sent here, hop by hop, §17.1.1.3, and sent again
//                                     for each retransmitted final; Timer D = 32 s unreliable, 0 reliable)
//
// CANCEL (§9.1) is sent only once a provisional response arrived; asked for earlier, it waits for one. After a
// CANCEL the callee has 64*T1 to answer the INVITE, else the transaction ends as timed out (as Kamailio's tm does
// with its fr_inv timer), so a branch that ignores CANCEL cannot hold a call.

import { H } from '../message/header-names.ts';
import { SipRequest, type SipResponse } from '../message/message.ts';
import { serialize } from '../message/serialize.ts';
import { after, type Delayed } from './delay-queue.ts';
import { DEFAULT_TIMERS, type TransactionTimers } from './invite-server.ts';

export type InviteClientState = 'calling' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

/** What the transaction sends through and reports to (invite-table.ts's ClientInvite; a test's stubs). */
export interface InviteClientTransactionOptions {
  reliable: boolean;
  timers?: TransactionTimers;
  /**
   * Sends bytes to the branch's destination; a rejection is a transport error (§17.1.4). A host that hears of the
   * outcome otherwise (a SendDone) returns nothing and calls transportError().
   */
  transmit: (data: Buffer) => Promise<void> | void;
  /** Sends a CANCEL for this transaction (a non-INVITE client transaction with the same branch). */
  sendCancel: (cancel: SipRequest) => void;
  /** Every response the TU should see: provisionals (100 excepted), the final, and each 2xx in Accepted. */
  onResponse: (res: SipResponse) => void;
  /** The transaction failed without a final response: Timer B, no answer after CANCEL, or a transport error. */
  onFailure: (reason: 'timeout' | 'transport') => void;
  /** Called once when the transaction ends, to drop it from its table. */
  onTerminated: () => void;
}

export class InviteClientTransaction implements Delayed {
  state: InviteClientState = 'calling';
  private readonly opts: InviteClientTransactionOptions;
  private readonly timers: TransactionTimers;
  /**
   * The INVITE and its bytes, for retransmissions, the CANCEL and the non-2xx ACK: released once a final response
   * arrived, so an Accepted transaction (Timer M, 32 s, one per answered call) holds no parsed message or buffer.
   */
  private inv: SipRequest | null;
  private data: Buffer | null;
  private timerA: NodeJS.Timeout | null = null;
  private timerB: NodeJS.Timeout | null = null;
  private aInterval: number;
  private ackData: Buffer | null = null;
  private cancelWanted: string | null | undefined = undefined;
  private cancelSent = false;
  /** performance.now() at start(), and when Accepted or Completed ends (Timer M or D): see delayed(). */
  private startedAt = 0;
  private endAt = 0;

  /** `request`: the INVITE as sent, our Via on top. */
  constructor(request: SipRequest, opts: InviteClientTransactionOptions) {
    this.opts = opts;
    this.timers = opts.timers ?? DEFAULT_TIMERS;
    this.aInterval = this.timers.t1;
    this.inv = request;
    this.data = serialize(request);
  }

  start(): void {
    this.startedAt = performance.now();
    if (this.data) this.transmit(this.data);
    // Timer A's first interval and Timer B from the shared queues of their durations (see delayed()): nearly every
    // branch has its provisional long before either, and a Node timer set and cleared for each was two of a call's
    // eight.
    if (!this.opts.reliable) after(this.aInterval, this);
    after(64 * this.timers.t1, this);
  }

  private transmit(data: Buffer): void {
    const sent = this.opts.transmit(data);
    if (sent) sent.catch(() => this.fail('transport'));
  }

  /** The host's send failed (§17.1.4): as Timer B, the transaction ends and the TU hears of it, unless already final. */
  transportError(): void {
    this.fail('transport');
  }

  private retransmit(): void {
    if (this.state !== 'calling' || !this.data) return;
    this.transmit(this.data);
    this.aInterval *= 2; // Timer A doubles without the T2 cap (§17.1.1.2); Timer B ends it
    this.timerA = this.timer(() => this.retransmit(), this.aInterval);
  }

  receive(res: SipResponse): void {
    const status = res.status;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        if (status < 200) {
          this.stopRetransmitting();
          this.state = 'proceeding';
          if (this.cancelWanted !== undefined) this.sendCancelNow();
          if (status > 100) this.opts.onResponse(res);
          return;
        }
        this.clear();
        this.data = null;
        if (status < 300) {
          this.inv = null;
          this.state = 'accepted';
          this.endAt = performance.now() + 64 * this.timers.t1;
          after(64 * this.timers.t1, this); // Timer M: see delayed()
          this.opts.onResponse(res);
          return;
        }
        this.state = 'completed';
        this.ackData = serialize(this.buildAck(res));
        this.inv = null;
        this.transmit(this.ackData);
        if (this.opts.reliable) {
          this.opts.onResponse(res);
          this.terminate();
        } else {
          const d = 64 * this.timers.t1 > 32000 ? 32000 : 64 * this.timers.t1;
          this.endAt = performance.now() + d;
          after(d, this); // Timer D: see delayed()
          this.opts.onResponse(res);
        }
        return;
      case 'completed':
        if (status >= 300 && this.ackData) this.transmit(this.ackData); // the final again: our ACK was lost
        return;
      case 'accepted':
        if (status >= 200 && status < 300) this.opts.onResponse(res);
        return;
      default:
    }
  }

  /**
   * Cancels the INVITE (§9.1) with an optional Reason header value (RFC 3326). Nothing happens once a final
   * response arrived; before a provisional one the CANCEL waits for it.
   */
  cancel(reason?: string): void {
    if (this.cancelWanted !== undefined || (this.state !== 'calling' && this.state !== 'proceeding')) return;
    this.cancelWanted = reason ?? null;
    if (this.state === 'proceeding') this.sendCancelNow();
  }

  private sendCancelNow(): void {
    if (this.cancelSent) return;
    this.cancelSent = true;
    this.opts.sendCancel(this.buildCancel(this.cancelWanted ?? undefined));
    // The callee must now answer 487 (or its final) within 64*T1.
    if (this.timerB) clearTimeout(this.timerB);
    this.timerB = this.timer(() => this.fail('timeout'), 64 * this.timers.t1);
  }

  /** §17.1.1.3: the ACK for a non-2xx final response. */
  buildAck(res: SipResponse): SipRequest {
    const inv = this.inv!; // held until the final response, after which neither is built
    const ack = new SipRequest('ACK', inv.uri);
    copy(inv, ack, H.via, true);
    ack.append('Max-Forwards', '70');
    copy(inv, ack, H.from);
    ack.append('To', res.get(H.to) ?? inv.get(H.to) ?? '');
    copy(inv, ack, H.callId);
    ack.append('CSeq', `${inv.cseq()?.seq ?? 1} ACK`);
    copy(inv, ack, H.route);
    return ack;
  }

  /** §9.1: the CANCEL, with the INVITE's Request-URI, top Via (so its branch), Call-ID, From, To, CSeq number and Route. */
  buildCancel(reason?: string): SipRequest {
    const inv = this.inv!; // held until the final response, after which neither is built
    const cancel = new SipRequest('CANCEL', inv.uri);
    copy(inv, cancel, H.via, true);
    cancel.append('Max-Forwards', '70');
    copy(inv, cancel, H.from);
    copy(inv, cancel, H.to);
    copy(inv, cancel, H.callId);
    cancel.append('CSeq', `${inv.cseq()?.seq ?? 1} CANCEL`);
    copy(inv, cancel, H.route);
    if (reason) cancel.append('Reason', reason);
    return cancel;
  }

  private fail(reason: 'timeout' | 'transport'): void {
    if (this.state !== 'calling' && this.state !== 'proceeding') return;
    this.terminate();
    this.opts.onFailure(reason);
  }

  private stopRetransmitting(): void {
    if (this.timerA) clearTimeout(this.timerA);
    this.timerA = null;
    // Timer B guards only Calling (§17.1.1.2); in Proceeding the proxy's Timer C or the TU decides. (Its queued
    // first arming is ignored outside Calling: see delayed().)
    if (this.state === 'calling' && this.timerB && !this.cancelSent) {
      clearTimeout(this.timerB);
      this.timerB = null;
    }
  }

  /**
   * A timer from the shared queues (delay-queue.ts), told apart by state and time, as nothing is taken out of
   * them: in Calling, Timer A's first interval (retransmit) or Timer B (time out, 64*T1 after the start); in
   * Accepted or Completed, Timer M or D once its own time has come (an earlier item, Timer B's, finds it has not).
   * Each of those states is left only by the transition the timer makes, or by terminate(), after which nothing
   * is done.
   */
  delayed(): void {
    const now = performance.now();
    if (this.state === 'calling') {
      if (now - this.startedAt >= 64 * this.timers.t1 - 1) this.fail('timeout');
      else this.retransmit();
    } else if ((this.state === 'accepted' || this.state === 'completed') && now >= this.endAt - 1) this.terminate();
  }

  private timer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }

  private clear(): void {
    if (this.timerA) clearTimeout(this.timerA);
    if (this.timerB) clearTimeout(this.timerB);
    this.timerA = this.timerB = null;
  }

  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.clear();
    this.ackData = null;
    this.inv = null;
    this.data = null;
    this.opts.onTerminated();
  }
}

/** Copies a header's lines from one message to another (only the first value of the first line with `first`). */
function copy(from: SipRequest, to: SipRequest, key: string, first = false): void {
  for (const h of from.headers) {
    if (h.key !== key) continue;
    if (first) {
      const v = from.topVia();
      to.headers.push({ key: h.key, name: h.name, value: v && h.value.indexOf(',') >= 0 ? h.value.slice(0, topValueEnd(h.value)) : h.value });
      return;
    }
    to.headers.push({ key: h.key, name: h.name, value: h.value });
  }
}

/** End of the first comma-separated value of a Via line (commas inside quotes do not count). */
function topValueEnd(v: string): number {
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 34) quoted = !quoted;
    else if (c === 44 && !quoted) return i;
  }
  return v.length;
}
