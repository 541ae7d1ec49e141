// Non-INVITE client transactions (RFC 3261 §17.1.2) for the requests Switchboard sends: NOTIFY, MESSAGE,
// OPTIONS. Timer E retransmits on unreliable transports (T1 doubling to T2), Timer F (64*T1) gives up with a
// timeout, Timer K (T4 on unreliable, 0 on reliable) absorbs retransmitted responses after the final one.
// Responses match by branch and CSeq method (§17.1.3).

import { sbError, type SwitchboardError } from '../../errors.ts';
import type { SipResponse } from '../message/message.ts';
import type { Destination } from '../transport/types.ts';
import { DelayQueue } from './delay-queue.ts';
import { T1, T2, T4 } from './server.ts';

export interface ClientTransactionOptions {
  reliable: boolean;
  /** Re-sends the request bytes; errors count as a transport failure of the transaction (§17.1.4). */
  transmit: () => Promise<void>;
  onProvisional?: (res: SipResponse) => void;
}

interface ClientTransaction {
  key: string;
  state: 'trying' | 'proceeding' | 'completed';
  resolve: (res: SipResponse) => void;
  reject: (err: SwitchboardError) => void;
  timerE: NodeJS.Timeout | null;
  timerF: NodeJS.Timeout | null;
  interval: number;
  opts: ClientTransactionOptions;
}

export function clientKey(branch: string, method: string): string {
  return branch + '\u0000' + method;
}

const settled = (): void => {};
const COMPLETED: ClientTransactionOptions = { reliable: false, transmit: () => Promise.resolve() };

export class ClientTransactionTable {
  private readonly table = new Map<string, ClientTransaction>();
  /** Timer K: completed transactions leave the table after T4 (one queue for all, delay-queue.ts). */
  private readonly timerK = new DelayQueue<ClientTransaction>(T4, (txn) => {
    if (this.table.get(txn.key) === txn) this.table.delete(txn.key);
  });

  get size(): number {
    return this.table.size;
  }

  /** Starts a transaction; resolves with the final response, rejects on timeout or transport error. */
  start(branch: string, method: string, _dest: Destination, opts: ClientTransactionOptions): Promise<SipResponse> {
    const key = clientKey(branch, method);
    return new Promise<SipResponse>((resolve, reject) => {
      const txn: ClientTransaction = { key, state: 'trying', resolve, reject, timerE: null, timerF: null, interval: T1, opts };
      this.table.set(key, txn);
      const fail = (err: SwitchboardError) => {
        if (this.table.get(key) !== txn || txn.state === 'completed') return;
        this.terminate(txn);
        reject(err);
      };
      txn.timerF = setTimeout(() => fail(sbError('SIP_ERR_TIMEOUT', `no final response to ${method} within 64*T1`)), 64 * T1);
      const send = () =>
        opts.transmit().catch((e: Error) => fail(sbError('SIP_ERR_TRANSPORT', `transport error sending ${method}: ${e.message}`)));
      send();
      if (!opts.reliable) {
        const retransmit = () => {
          if (this.table.get(key) !== txn || txn.state === 'completed') return;
          send();
          // In Proceeding the interval stays at T2 (§17.1.2.2).
          txn.interval = txn.state === 'proceeding' ? T2 : Math.min(txn.interval * 2, T2);
          txn.timerE = setTimeout(retransmit, txn.interval);
        };
        txn.timerE = setTimeout(retransmit, txn.interval);
      }
    });
  }

  /** Delivers a response; returns false when no transaction matches (the caller drops it, §18.1.2). */
  receive(branch: string, method: string, res: SipResponse): boolean {
    const txn = this.table.get(clientKey(branch, method));
    if (!txn) return false;
    if (txn.state === 'completed') return true; // retransmission absorbed during Timer K
    if (res.status < 200) {
      txn.state = 'proceeding';
      txn.opts.onProvisional?.(res);
      return true;
    }
    txn.state = 'completed';
    this.clearTimers(txn);
    const reliable = txn.opts.reliable;
    txn.resolve(res);
    // Timer K keeps the transaction (to absorb retransmitted finals), not its settled promise, response or request
    // bytes: held for T4 each, they were a parsed 200 and a serialized BYE per call in bench/calls-hotpath's heap.
    txn.resolve = txn.reject = settled;
    txn.opts = COMPLETED;
    if (reliable) this.table.delete(txn.key);
    else this.timerK.add(txn);
    return true;
  }

  private clearTimers(txn: ClientTransaction): void {
    if (txn.timerE) clearTimeout(txn.timerE);
    if (txn.timerF) clearTimeout(txn.timerF);
    txn.timerE = txn.timerF = null;
  }

  private terminate(txn: ClientTransaction): void {
    this.clearTimers(txn);
    this.table.delete(txn.key);
  }

  close(): void {
    this.timerK.clear();
    for (const txn of this.table.values()) {
      this.clearTimers(txn);
      if (txn.state !== 'completed') txn.reject(sbError('SIP_ERR_TRANSPORT', 'endpoint shutting down'));
    }
    this.table.clear();
  }
}
