// INVITE server transactions (RFC 3261 §17.2.1 as amended by RFC 6026).
//
//   Proceeding --1xx--> Proceeding (the last provisional re-sent on a retransmitted INVITE)
//   Proceeding --2xx--> Accepted   (RFC 6026: further 2xx from the TU still go out, so a proxy passes a callee's
//                                   2xx retransmissions upstream; the ACK for a 2xx is end to end and never matches
//                                   here; Timer L = 64*T1 ends it)
//   Proceeding --3xx-6xx--> Completed (Timer G re-sends the final on unreliable transports, T1 doubling to T2;
//                                   Timer H = 64*T1 gives up waiting for the ACK)
//   Completed --ACK--> Confirmed   (Timer I = T4 on unreliable transports, 0 on reliable, absorbs ACK copies)
//
// The transaction is a pure state machine over a `send` callback and timers, so it can be unit-tested with a
// small T1; the endpoint owns the table and the wiring to transports.

import { after, type Delayed } from './delay-queue.ts';
import { T1, T2, T4 } from './server.ts';

export interface TransactionTimers {
  t1: number;
  t2: number;
  t4: number;
}

export const DEFAULT_TIMERS: TransactionTimers = { t1: T1, t2: T2, t4: T4 };

export type InviteServerState = 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';

export interface InviteServerTransactionOptions {
  reliable: boolean;
  timers?: TransactionTimers;
  /** Sends a serialized response to the transaction's peer. */
  send: (data: Buffer) => void;
  /** Called once when the transaction ends, to drop it from its table. */
  onTerminated: () => void;
  /** Timer H fired: the final non-2xx response was never acknowledged (§17.2.1: a transport failure to the TU). */
  onAckTimeout?: () => void;
  /**
   * A TU that never answers must not hold the transaction for ever (a peer could pile them up): after this long in
   * Proceeding this is called, and the endpoint answers 408. Longer than a proxy's Timer C (> 3 min, §16.8).
   */
  proceedingLimitMs?: number;
  onProceedingTimeout?: () => void;
}

export class InviteServerTransaction implements Delayed {
  state: InviteServerState = 'proceeding';
  /** The final status sent, 0 before one. */
  finalStatus = 0;
  private last: Buffer | null = null;
  private timerG: NodeJS.Timeout | null = null;
  private timerH: NodeJS.Timeout | null = null;
  private timerEnd: NodeJS.Timeout | null = null;
  private gInterval: number;
  private readonly timers: TransactionTimers;
  private readonly opts: InviteServerTransactionOptions;
  private cancelled = false;
  private cancelListeners: Array<() => void> = [];

  constructor(opts: InviteServerTransactionOptions) {
    this.opts = opts;
    this.timers = opts.timers ?? DEFAULT_TIMERS;
    this.gInterval = this.timers.t1;
    if (opts.proceedingLimitMs) {
      this.timerEnd = this.timer(() => {
        if (this.state === 'proceeding') opts.onProceedingTimeout?.();
      }, opts.proceedingLimitMs);
    }
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  /**
   * Sends a response from the TU. Returns false when the state does not allow it (a second final non-2xx, a
   * response after Completed), in which case nothing is sent.
   */
  respond(status: number, data: Buffer): boolean {
    if (this.state === 'accepted') {
      if (status < 200 || status >= 300) return false;
      this.opts.send(data); // RFC 6026 §7.1: 2xx from the TU in Accepted are sent
      return true;
    }
    if (this.state !== 'proceeding') return false;
    this.opts.send(data);
    if (status < 200) {
      this.last = data;
      return true;
    }
    this.finalStatus = status;
    this.clear();
    this.cancelListeners = []; // a CANCEL now changes nothing (§9.2), and the listeners hold the TU's call state
    if (status < 300) {
      this.state = 'accepted';
      this.last = null;
      after(64 * this.timers.t1, this); // Timer L: see delayed()
      return true;
    }
    this.state = 'completed';
    this.last = data;
    if (!this.opts.reliable) this.timerG = this.timer(() => this.retransmitFinal(), this.gInterval);
    this.timerH = this.timer(() => {
      this.terminate();
      this.opts.onAckTimeout?.();
    }, 64 * this.timers.t1);
    return true;
  }

  private retransmitFinal(): void {
    if (this.state !== 'completed' || !this.last) return;
    this.opts.send(this.last);
    this.gInterval = Math.min(this.gInterval * 2, this.timers.t2);
    this.timerG = this.timer(() => this.retransmitFinal(), this.gInterval);
  }

  /** A retransmission of the INVITE: the last provisional or the final non-2xx again; absorbed otherwise. */
  retransmission(): void {
    if ((this.state === 'proceeding' || this.state === 'completed') && this.last) this.opts.send(this.last);
  }

  /**
   * An ACK matching this transaction. Returns true when it acknowledged the final non-2xx (or was a copy of that
   * ACK) and is absorbed here, hop by hop; false when it is for the TU (Accepted: a 2xx ACK that reused the branch).
   */
  ack(): boolean {
    if (this.state === 'completed') {
      this.state = 'confirmed';
      this.clear();
      if (this.opts.reliable) this.terminate();
      else this.timerEnd = this.timer(() => this.terminate(), this.timers.t4);
      return true;
    }
    return this.state === 'confirmed';
  }

  /**
   * A CANCEL matched this transaction (§9.2). The TU is told only while no final response was sent; returns
   * whether it was (the CANCEL gets 200 either way).
   */
  cancel(): boolean {
    if (this.state !== 'proceeding' || this.cancelled) return false;
    this.cancelled = true;
    for (const l of this.cancelListeners.splice(0)) l();
    return true;
  }

  /** Registers a listener for the caller's CANCEL; false when nobody listens (the endpoint then answers 487). */
  onCancel(listener: () => void): void {
    this.cancelListeners.push(listener);
  }

  get hasCancelListener(): boolean {
    return this.cancelListeners.length > 0;
  }

  /** Timer L fired (from the shared 64*T1 queue, delay-queue.ts: Accepted is left only so). */
  delayed(): void {
    if (this.state === 'accepted') this.terminate();
  }

  private timer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }

  private clear(): void {
    if (this.timerG) clearTimeout(this.timerG);
    if (this.timerH) clearTimeout(this.timerH);
    if (this.timerEnd) clearTimeout(this.timerEnd);
    this.timerG = this.timerH = this.timerEnd = null;
  }

  /** Ends the transaction now (timers fired, or the endpoint is closing). */
  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.clear();
    this.last = null;
    this.cancelListeners = [];
    this.opts.onTerminated();
  }
}
