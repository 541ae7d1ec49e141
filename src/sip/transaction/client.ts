// Non-INVITE client transactions (RFC 3261 §17.1.2) for the requests Switchboard sends: NOTIFY, MESSAGE,
// OPTIONS. Timer E retransmits on unreliable transports (T1 doubling to T2), Timer F (64*T1) gives up with a
// timeout, Timer K (T4 on unreliable, 0 on reliable) absorbs retransmitted responses after the final one.
// Responses match by branch and CSeq method (§17.1.3).
//
// A presence fan-out starts a thousand of these in a few milliseconds, and nearly every one is answered within
// milliseconds, so what a transaction allocates is most of its cost (bench:presence, 2026-12-07: GC was a quarter
// of the fan-out's CPU). Each one holds a single timer, for whichever of E and F is due next, armed with a shared
// function and the transaction as its argument (no closures); Timer K is a DelayQueue of keys with a second's slack
// (every completed transaction waits the same T4, so expiry order is completion order, and one wake-up a second
// ends them all: Timer K so lasts T4 to T4 + 1 s) instead of a timer object per transaction, and what it holds is
// the key alone: the transaction, its request bytes and its outcome die young rather than being promoted for T4.

import { sbError, type SwitchboardError } from '../../errors.ts';
import type { SipResponse } from '../message/message.ts';
import type { Destination, SendDone } from '../transport/types.ts';
import { DelayQueue } from './delay-queue.ts';
import { T1, T2, T4 } from './server.ts';

export interface ClientTransactionOptions {
  reliable: boolean;
  /**
   * Re-sends the request bytes; errors count as a transport failure of the transaction (§17.1.4): a rejection of the
   * promise, or, when it returns nothing, an error given to `done` (the transaction's one SendDone for all its sends).
   */
  transmit: (done: SendDone) => Promise<void> | void;
  onProvisional?: (res: SipResponse) => void;
}

/** Told how a transaction ended (`begin`): its final response, or why there is none (timeout, transport error). */
export interface TransactionOutcome {
  final(res: SipResponse): void;
  failed(err: SwitchboardError): void;
}

interface ClientTransaction {
  readonly key: string;
  readonly method: string;
  readonly table: ClientTransactionTable;
  state: 'trying' | 'proceeding' | 'completed';
  readonly outcome: TransactionOutcome;
  /** Timer E or F, whichever is due first: QUEUED while it is the first one, in one of the table's queues. */
  timer: NodeJS.Timeout | typeof QUEUED | null;
  /** The current Timer E interval (unreliable transports). */
  interval: number;
  /** When Timer F fires (Date.now() clock). */
  readonly deadline: number;
  readonly opts: ClientTransactionOptions;
  /** Told each send's outcome when `opts.transmit` reports through it; made at the first send. */
  sent: SendDone | null;
}

/**
 * A transaction's first timer (Timer E at T1 over UDP, Timer F at 64*T1 over a stream) lasts the same for all, so it
 * is a place in one of two FIFO queues of keys (delay-queue.ts) rather than a Timeout of its own: nearly every
 * transaction is answered before it, and a Timeout's creation, insertion and removal were ~5 % of the CPU of a
 * SUBSCRIBE's set-up, of what it allocated, and of what V8 compiled for it (bench/presence-hotpath.bench.ts,
 * 2026-12-07). The queues hold keys, so an answered transaction is not kept alive by them. Retransmissions (an
 * unanswered request) take Timeouts of their own.
 */
const QUEUED = 'queued';

/** What the table holds for a transaction in Timer K: its responses are absorbed. */
const COMPLETED = { state: 'completed' } as const;

export function clientKey(branch: string, method: string): string {
  return branch + '\u0000' + method;
}

export class ClientTransactionTable {
  private readonly table = new Map<string, ClientTransaction | typeof COMPLETED>();
  /** Keys of completed transactions over unreliable transports until their Timer K ends (up to a second late). */
  private readonly timerK = new DelayQueue<string>(T4, (key) => this.endTimerK(key), Date.now, 1000);
  private readonly firstOverUdp = new DelayQueue<string>(T1, (key) => this.fireQueued(key), Date.now);
  private readonly firstOverStream = new DelayQueue<string>(64 * T1, (key) => this.fireQueued(key), Date.now);

  get size(): number {
    return this.table.size;
  }

  /** Starts a transaction; resolves with the final response, rejects on timeout or transport error. */
  start(branch: string, method: string, dest: Destination, opts: ClientTransactionOptions): Promise<SipResponse> {
    return new Promise<SipResponse>((resolve, reject) => this.begin(branch, method, dest, opts, { final: resolve, failed: reject }));
  }

  /**
   * Starts a transaction whose end `outcome` is told of, synchronously, without a promise: for a sender of many
   * (a NOTIFY fan-out) that keeps one outcome per dialog rather than a promise and two closures per request.
   */
  begin(branch: string, method: string, _dest: Destination, opts: ClientTransactionOptions, outcome: TransactionOutcome): void {
    const key = clientKey(branch, method);
    const now = Date.now();
    const txn: ClientTransaction = {
      key,
      method,
      table: this,
      state: 'trying',
      outcome,
      timer: null,
      interval: T1,
      deadline: now + 64 * T1,
      opts,
      sent: null,
    };
    this.table.set(key, txn);
    txn.timer = QUEUED;
    (opts.reliable ? this.firstOverStream : this.firstOverUdp).add(key);
    transmit(txn);
  }

  /** Delivers a response; returns false when no transaction matches (the caller drops it, §18.1.2). */
  receive(branch: string, method: string, res: SipResponse): boolean {
    const txn = this.table.get(clientKey(branch, method));
    if (!txn) return false;
    if (!('key' in txn) || txn.state === 'completed') return true; // retransmission absorbed during Timer K
    if (res.status < 200) {
      txn.state = 'proceeding';
      txn.opts.onProvisional?.(res);
      return true;
    }
    txn.state = 'completed';
    this.clearTimer(txn);
    if (txn.opts.reliable) this.table.delete(txn.key);
    else this.holdForTimerK(txn.key);
    txn.outcome.final(res);
    return true;
  }

  /** A first timer came out of its queue: fired if its transaction still waits for it. */
  private fireQueued(key: string): void {
    const txn = this.table.get(key);
    if (txn !== undefined && 'key' in txn && txn.timer === QUEUED) this.fire(txn);
  }

  /** Timer E or F fired: retransmit (E), or give up (F, or E past F's deadline). */
  fire(txn: ClientTransaction): void {
    txn.timer = null;
    if (this.table.get(txn.key) !== txn || txn.state === 'completed') return;
    const left = txn.deadline - Date.now();
    if (txn.opts.reliable || left <= 0) {
      this.fail(txn, sbError('SIP_ERR_TIMEOUT', `no final response to ${txn.method} within 64*T1`));
      return;
    }
    transmit(txn);
    // In Proceeding the interval stays at T2 (§17.1.2.2).
    txn.interval = txn.state === 'proceeding' ? T2 : Math.min(txn.interval * 2, T2);
    txn.timer = setTimeout(onTimer, Math.min(txn.interval, left), txn);
  }

  fail(txn: ClientTransaction, err: SwitchboardError): void {
    if (this.table.get(txn.key) !== txn || txn.state === 'completed') return;
    this.clearTimer(txn);
    this.table.delete(txn.key);
    txn.outcome.failed(err);
  }

  private clearTimer(txn: ClientTransaction): void {
    if (txn.timer !== null && txn.timer !== QUEUED) clearTimeout(txn.timer);
    txn.timer = null;
  }

  private holdForTimerK(key: string): void {
    this.table.set(key, COMPLETED);
    this.timerK.add(key);
  }

  /** Timer K ran out: the transaction ends (branches are unique, so the key still names it). */
  private endTimerK(key: string): void {
    if (this.table.get(key) === COMPLETED) this.table.delete(key);
  }

  close(): void {
    for (const txn of this.table.values()) {
      if (!('key' in txn)) continue; // in Timer K
      this.clearTimer(txn);
      if (txn.state !== 'completed') txn.outcome.failed(sbError('SIP_ERR_TRANSPORT', 'endpoint shutting down'));
    }
    this.table.clear();
    this.firstOverUdp.clear();
    this.firstOverStream.clear();
    this.timerK.clear();
  }
}

function onTimer(txn: ClientTransaction): void {
  txn.table.fire(txn);
}

/** Sends (or re-sends) the request; a transport error ends the transaction (§17.1.4). */
function transmit(txn: ClientTransaction): void {
  let sent: Promise<void> | void;
  try {
    sent = txn.opts.transmit((txn.sent ??= (err) => err && transportFailed(txn, err)));
  } catch (e) {
    sent = Promise.reject(e as Error); // told as any transport error is: later, not from inside begin
  }
  if (sent) sent.catch((e: Error) => transportFailed(txn, e));
}

function transportFailed(txn: ClientTransaction, e: Error): void {
  txn.table.fail(txn, sbError('SIP_ERR_TRANSPORT', `transport error sending ${txn.method}: ${e.message}`));
}
