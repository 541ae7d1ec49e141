// The durable inbox: every message for an account (an app's send, a SIP MESSAGE nobody took) is stored first and
// delivered from the store, Signal-Server's semantics: delivered in order, removed only when the recipient acks it,
// redelivered (in order) until then, stored once per (sender, client id) however often the sender retries.
//
// Nodes meet through the store and the bus: storing a message publishes `message.stored` (ids only, never the body);
// every node hears it and wakes the sockets it holds for that account, which read what is new from the store. So a
// message stored through node A reaches an app connected to node B, and a lost or forged event costs at most a
// read (the store, not the event, says what there is).

import { sbError } from '../errors.ts';
import type { EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import type { MessageStore, StoredMessage } from '../storage/ports/messaging.ts';

export interface InboxOptions {
  store: MessageStore;
  bus: EventBus;
  /** Seconds a message waits before it expires unread (--message-ttl). */
  ttl: number;
  /** Undelivered messages an account may hold (--message-quota). */
  quota: number;
  /** Largest body, bytes (--message-max-body). */
  maxBody: number;
  node: string;
  now: () => number;
  log: Logger;
  /** Counters (metrics.ts): received, stored, duplicate, delivered, expired, refused. */
  count?: (event: 'received' | 'stored' | 'duplicate' | 'delivered' | 'expired' | 'refused') => void;
  /** After a message is stored (pushes): not awaited, must not throw. */
  onStored?: (m: StoredMessage) => void;
}

export interface Send {
  accountId: string;
  deviceId?: number | null;
  sender: string;
  contentType: string;
  body: Buffer;
  clientId?: string | null;
  /** Where it came from, for the event: 'app' (POST /v1/messages), 'sip' (MESSAGE), 'im' (the IM bridge). */
  via: 'app' | 'sip' | 'im';
}

export type SendResult = { id: string; status: 'stored' | 'duplicate'; delivered: boolean };

/** What a wake-up names: the account and the highest seq stored (a socket reads past what it has sent). */
export type Wake = (accountId: string) => void;

export class Inbox {
  private readonly o: InboxOptions;
  private readonly listeners = new Map<string, Set<Wake>>();
  private unsubscribe: (() => void) | null = null;

  constructor(o: InboxOptions) {
    this.o = o;
  }

  /** Follows `message.stored` from every node (this one's included) to wake local listeners. */
  async start(): Promise<void> {
    this.unsubscribe = this.o.bus.subscribe('message.stored', (m) => {
      const accountId = m.payload.accountId;
      if (typeof accountId !== 'string') return;
      for (const l of this.listeners.get(accountId) ?? []) l(accountId);
    });
    await this.o.bus.subscribed();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** Calls `wake` whenever a message for the account is stored anywhere; returns the unsubscribe. */
  listen(accountId: string, wake: Wake): () => void {
    let set = this.listeners.get(accountId);
    if (!set) this.listeners.set(accountId, (set = new Set()));
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0) this.listeners.delete(accountId);
    };
  }

  /** Stores a message for the account (once per sender and client id); 413 too large, 507 over the quota. */
  async send(s: Send): Promise<SendResult> {
    this.o.count?.('received');
    if (s.body.length > this.o.maxBody) {
      this.o.count?.('refused');
      throw sbError('MSG_ERR_TOO_LARGE', `message body over ${this.o.maxBody} bytes`);
    }
    const now = this.o.now();
    this.o.bus.publish('message.received', { accountId: s.accountId, via: s.via, bytes: s.body.length, node: this.o.node }, { batch: true });
    const r = await this.o.store.enqueue(
      {
        accountId: s.accountId,
        deviceId: s.deviceId ?? null,
        sender: s.sender,
        contentType: s.contentType,
        body: s.body,
        clientId: s.clientId ?? null,
        createdAt: now,
        expiresAt: now + this.o.ttl * 1000,
      },
      this.o.quota,
    );
    if (r.outcome === 'quota') {
      this.o.count?.('refused');
      throw sbError('MSG_ERR_QUOTA');
    }
    if (r.outcome === 'duplicate') {
      this.o.count?.('duplicate');
      return { id: r.id, status: 'duplicate', delivered: r.delivered };
    }
    this.o.count?.('stored');
    this.o.bus.publish('message.stored', { accountId: s.accountId, id: r.message.id, seq: r.message.seq, via: s.via, node: this.o.node });
    this.o.onStored?.(r.message);
    return { id: r.message.id, status: 'stored', delivered: false };
  }

  /** Undelivered messages, in order, after `afterSeq`. */
  pending(accountId: string, deviceId: number | null, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    return this.o.store.pending(accountId, deviceId, this.o.now(), limit, afterSeq);
  }

  /** Removes a delivered message; false when it is not the account's or was acked before. */
  async ack(accountId: string, id: string, via: 'app' | 'sip'): Promise<boolean> {
    const ok = await this.o.store.ack(accountId, id, this.o.now());
    if (ok) {
      this.o.count?.('delivered');
      this.o.bus.publish('message.delivered', { accountId, id, via, node: this.o.node }, { batch: true });
    }
    return ok;
  }

  /** Accounts with undelivered messages (at most `limit`). */
  accountsWaiting(limit: number): Promise<string[]> {
    return this.o.store.accountsWaiting(this.o.now(), limit);
  }

  count(accountId: string): Promise<number> {
    return this.o.store.count(accountId, this.o.now());
  }

  /** Removes expired messages (in batches); announces each unread one. */
  async sweep(batch = 500): Promise<number> {
    let total = 0;
    for (;;) {
      const gone = await this.o.store.expire(this.o.now(), batch);
      for (const m of gone) {
        this.o.count?.('expired');
        this.o.bus.publish('message.expired', { accountId: m.accountId, id: m.id, node: this.o.node }, { batch: true });
      }
      total += gone.length;
      if (gone.length < batch) break;
    }
    if (total) this.o.log.info({ expired: total }, 'expired unread messages removed');
    return total;
  }
}
