// Non-INVITE server transactions (RFC 3261 §17.2.2, matching per §17.2.3).
//
// A transaction absorbs retransmissions of its request while the handler works (Trying), re-sends the last
// provisional (Proceeding) or final response (Completed), and lives for Timer J = 64*T1 on unreliable
// transports (0 on reliable ones) after its final response.
//
// Every UDP transaction lives for the same span, so expiry order is creation order: a FIFO swept once a second
// replaces a timer object per transaction, which at tens of thousands of requests a second is real garbage.
// A transaction that ends early (reliable transport, or a stateless answer) leaves the FIFO at once too, so it
// dies young instead of being promoted to the old generation and held for 33 s (measured: at 13,000 REGISTERs
// a second that was 600 MB and most of the GC time). A transaction that completes over UDP leaves them too: its
// response waits for Timer J as a record in CompletedTransactions, outside the heap (completed.ts says why).

import { MAGIC_COOKIE, type Via } from '../message/via.ts';
import type { SipRequest } from '../message/message.ts';
import type { Destination } from '../transport/types.ts';
import { CompletedTransactions, type CompletedResponse } from './completed.ts';

export const T1 = 500;
export const T2 = 4000;
export const T4 = 5000;

export type ServerTransactionState = 'trying' | 'proceeding' | 'completed';

export interface ServerTransaction {
  readonly key: string;
  /** Absolute position in the FIFO, to clear it when the transaction ends early. */
  readonly slot: number;
  state: ServerTransactionState;
  /** The last response sent, serialized, and where it went; re-sent on retransmissions. */
  lastResponse: Buffer | null;
  destination: Destination | null;
  expiresAt: number;
}

/** The transaction key of a request: the branch and sent-by when RFC 3261-compliant, else the §17.2.3 tuple. */
export function transactionKey(req: SipRequest, via: Via, method = req.method === 'ACK' ? 'INVITE' : req.method): string {
  const branch = via.params.get('branch');
  if (branch && branch.startsWith(MAGIC_COOKIE)) {
    return branch + '\u0000' + via.host + ':' + (via.port ?? '') + '\u0000' + method;
  }
  // RFC 2543 peers: Request-URI, To tag, From tag, Call-ID, CSeq number and top Via.
  const toTag = req.to()?.params.get('tag') ?? '';
  const fromTag = req.from()?.params.get('tag') ?? '';
  return ['2543', req.uri, toTag, fromTag, req.callId() ?? '', req.cseq()?.seq ?? '', via.host, via.port ?? '', branch ?? '', method].join('\u0000');
}

export class ServerTransactionTable {
  private readonly table = new Map<string, ServerTransaction>();
  private fifo: Array<ServerTransaction | null> = [];
  private head = 0;
  /** Absolute slot of fifo[0]. */
  private base = 0;
  private readonly completed = new CompletedTransactions();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.sweep(Date.now()), 1000);
    this.timer.unref();
  }

  get size(): number {
    return this.table.size + this.completed.size;
  }

  /** The transaction of a request still being handled (Trying or Proceeding). */
  get(key: string): ServerTransaction | undefined {
    return this.table.get(key);
  }

  /** The final response a completed transaction re-sends for a retransmission of its request (until Timer J). */
  completedResponse(key: string, now: number): CompletedResponse | null {
    return this.completed.get(key, now);
  }

  /**
   * Creates the transaction for a new request. It is swept 64*T1 after creation at the latest, whether or not
   * its handler ever answered; on reliable transports `complete` ends it at once.
   */
  create(key: string, now: number): ServerTransaction {
    const txn: ServerTransaction = {
      key,
      slot: this.base + this.fifo.length,
      state: 'trying',
      lastResponse: null,
      destination: null,
      expiresAt: now + 64 * T1 + 1000,
    };
    this.table.set(key, txn);
    this.fifo.push(txn);
    return txn;
  }

  /**
   * Records a response. A final one ends the transaction at once on a reliable transport (Timer J = 0) or when
   * it was sent statelessly; otherwise it is kept to answer retransmissions until Timer J.
   */
  respond(txn: ServerTransaction, status: number, data: Buffer, destination: Destination, endNow: boolean, now = Date.now()): void {
    if (status < 200) {
      txn.lastResponse = data;
      txn.destination = destination;
      txn.state = 'proceeding';
      return;
    }
    txn.state = 'completed';
    this.answered(txn.key, data, destination, endNow, now);
    this.end(txn);
  }

  /**
   * A final response given while its request was being received, its handler having answered at once: no
   * transaction was created for it, since no retransmission can arrive before the answer. Kept for retransmissions
   * as respond() keeps one, unless `endNow`. (Created and ended around a synchronous answer, the transaction was a
   * Map insertion, a deletion and a FIFO slot for every challenge.)
   */
  answered(key: string, data: Buffer, destination: Destination, endNow: boolean, now = Date.now()): void {
    if (!endNow) this.completed.add(key, data, destination, now + 64 * T1, now);
  }

  private end(txn: ServerTransaction): void {
    if (this.table.get(txn.key) === txn) this.table.delete(txn.key);
    const i = txn.slot - this.base;
    if (i >= this.head && i < this.fifo.length && this.fifo[i] === txn) this.fifo[i] = null;
  }

  sweep(now: number): void {
    const fifo = this.fifo;
    let h = this.head;
    while (h < fifo.length) {
      const txn = fifo[h];
      if (txn !== null) {
        if (txn.expiresAt > now) break;
        if (this.table.get(txn.key) === txn) this.table.delete(txn.key);
        fifo[h] = null;
      }
      h++;
    }
    this.completed.sweep(now);
    if (h > 4096 && h * 2 > fifo.length) {
      this.fifo = fifo.slice(h);
      this.base += h;
      h = 0;
    }
    this.head = h;
  }

  close(): void {
    clearInterval(this.timer);
    this.table.clear();
    this.completed.clear();
    this.fifo = [];
    this.head = 0;
  }
}
