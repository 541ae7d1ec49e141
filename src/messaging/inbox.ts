// The durable inbox: every message for an account (an app's send, a SIP MESSAGE nobody took) is stored first and
// delivered from the store, Signal-Server's semantics: delivered in order, removed only when the recipient acks it,
// redelivered (in order) until then, stored once per (sender, client id) however often the sender retries.
//
// Nodes meet through the store and the bus: storing a message publishes `message.stored` (ids only, never the body);
// every node hears it and wakes the sockets it holds for that account, which read what is new from the store. So a
// message stored through node A reaches an app connected to node B, and a lost or forged event costs at most a
// read (the store, not the event, says what there is).
//
// Receipts: an ack publishes `message.delivered` with the message's sender (a SIP URI, no body); every node hears it
// and hands it to the sender's open streams (listenReceipts), so an app sending through node A hears of the
// delivery acked on node B. A sender without a socket asks status(); a SIP sender that got 202 is not told.

import { sbError } from '../errors.ts';
import type { EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import type { MessageStatus, MessageStore, StoredMessage } from '../storage/ports/messaging.ts';

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
  /** After a message is stored (pushes, SIP delivery of an app's message): not awaited, must not throw. */
  onStored?: (m: StoredMessage, via: Send['via']) => void;
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

/** A delivery receipt for the sender: the message id, how it was taken (an app's ack, a SIP device's 2xx) and when. */
export interface Receipt {
  id: string;
  status: 'delivered';
  via: 'app' | 'sip';
  at: number;
}

export class Inbox {
  private readonly o: InboxOptions;
  private readonly listeners = new Map<string, Set<Wake>>();
  /** Sender URI → the sender's open streams. */
  private readonly receiptListeners = new Map<string, Set<(r: Receipt) => void>>();
  private unsubscribe: (() => void) | null = null;
  private unsubscribeReceipts: (() => void) | null = null;

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
    this.unsubscribeReceipts = this.o.bus.subscribe('message.delivered', (m) => {
      const { sender, id, via } = m.payload;
      if (typeof sender !== 'string' || typeof id !== 'string') return;
      const receipt: Receipt = { id, status: 'delivered', via: via === 'sip' ? 'sip' : 'app', at: m.at };
      for (const l of this.receiptListeners.get(sender) ?? []) l(receipt);
    });
    await this.o.bus.subscribed();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribeReceipts?.();
    this.unsubscribe = this.unsubscribeReceipts = null;
  }

  /** Calls `on` with each receipt for a message `sender` (a SIP URI) sent, acked on any node; returns the unsubscribe. */
  listenReceipts(sender: string, on: (r: Receipt) => void): () => void {
    let set = this.receiptListeners.get(sender);
    if (!set) this.receiptListeners.set(sender, (set = new Set()));
    set.add(on);
    return () => {
      set.delete(on);
      if (set.size === 0) this.receiptListeners.delete(sender);
    };
  }

  /** A message's status for its sender (null: no such message, or not sent by `sender`: the same answer). */
  async status(sender: string, id: string): Promise<(MessageStatus & { id: string }) | null> {
    const s = await this.o.store.status(id);
    return s && s.sender === sender ? { ...s, id } : null;
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
    this.o.onStored?.(r.message, s.via);
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
      // The sender, for its receipt (one indexed read by id; the ack itself stays one conditional UPDATE).
      const sender = (await this.o.store.status(id).catch(() => null))?.sender ?? null;
      this.o.bus.publish('message.delivered', { accountId, id, via, sender, node: this.o.node }, { batch: true });
    }
    return ok;
  }

  /** Accounts with undelivered messages (at most `limit`). */
  accountsWaiting(limit: number): Promise<string[]> {
    return this.o.store.accountsWaiting(this.o.now(), limit);
  }

  /** Queued (stored, undelivered) messages per account, fullest first: counts only (the admin console). */
  queuedByAccount(limit: number): Promise<Array<{ accountId: string; queued: number }>> {
    return this.o.store.queuedByAccount(this.o.now(), limit);
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
