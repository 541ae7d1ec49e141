// AMQP 0-9-1 EventBus adapter (RabbitMQ, amqplib): a drop-in for the in-process bus that carries events between
// nodes and speaks on other systems' exchanges (Kazoo's).
//
// Publishing: every publication goes into a bounded outbox and stays there until the broker confirms it (publisher
// confirms). After a lost connection or a broker restart the adapter reconnects with backoff, declares its exchanges,
// queues and bindings again, and replays every unconfirmed message in publication order. Delivery is therefore
// at-least-once: a message whose confirm was lost with the connection is sent again (consumers de-duplicate by
// messageId, or by Kazoo's Msg-ID). When the outbox is full the oldest message is dropped and counted.
//
// Consuming: plain subscriptions share this process's queue (`nodeQueue`; Kazoo: the Server-ID), group subscriptions
// share a queue named after the group across nodes. A message is acknowledged once its handlers have finished; one
// that is not a JSON object, or that a handler fails, is logged and rejected (not requeued). Nothing a broker or a
// peer sends can throw out of this adapter. Unsubscribing unbinds the node queue's pattern; a group queue's bindings
// are every member's, so they stay: the node cancels its consumer when its last subscription to the group goes (a
// group message that finds no handler here is requeued once, for another member), and the queue expires
// (`groupQueueExpiresMs`) once no node consumes it.
//
// Topology: Switchboard's own events go to `events` (durable topic exchange, persistent messages; routing key = the
// topic). Other exchanges (`exchanges`) are declared with the flags given; an exchange that already exists with other
// flags is used as it is. The node queue is not durable and expires a minute after its consumer is gone.
//
// Inter-node messages (internal-auth.ts): with `authenticator`, publications on Switchboard's exchange whose topic it
// covers carry a MAC in a header, and with `requireAuthentication` deliveries on those topics without a valid one are
// logged and rejected before any handler sees them.
//
// Why one file over 400 lines: publishing (outbox, confirms, replay), consuming (queues, bindings, deliveries) and
// the connection (establish, declare, backoff) all turn on one connection generation and its channels; every
// reconnect re-declares the consumers' queues and replays the publisher's outbox on the same generation, so split
// along those lines each part would reach into the others' private state.

import { randomBytes } from 'node:crypto';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { redactUrl, ThrottledLog, type Logger } from '../log.ts';
import { Errors } from '../errors.ts';
import type { BusHandler, BusMessage, EventBus, PublishOptions, SubscribeOptions } from './event-bus.ts';
import { MAC_HEADER, type BusAuthenticator } from './internal-auth.ts';
import { TopicIndex } from './topic-index.ts';

export interface AmqpExchange {
  name: string;
  type: 'topic' | 'direct' | 'fanout';
  /** Durable exchange; messages published to it are persistent. */
  durable: boolean;
}

export interface AmqpBusOptions {
  /** amqp://user:pass@host:port/vhost (the password is never logged). */
  url: string;
  log: Logger;
  /** Switchboard's own events: publications and subscriptions that name no exchange. */
  events: AmqpExchange;
  /** Other exchanges publications and subscriptions may name. */
  exchanges?: readonly AmqpExchange[];
  /** This process's queue, unique per process. */
  nodeQueue: string;
  /** Most unconfirmed messages kept; beyond it the oldest is dropped. */
  outboxLimit?: number;
  /** Unacknowledged deliveries per consumer. */
  prefetch?: number;
  heartbeatSeconds?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** x-expires of the node queue: how long it outlives its consumer. */
  nodeQueueExpiresMs?: number;
  /** x-expires and x-message-ttl of group queues (requests that waited longer are not worth answering). */
  groupQueueExpiresMs?: number;
  groupMessageTtlMs?: number;
  /** Signs inter-node messages (internal-auth.ts); absent: nothing is signed or checked. */
  authenticator?: BusAuthenticator;
  /** Drop inter-node messages without a valid MAC (default true with an authenticator). */
  requireAuthentication?: boolean;
}

export interface AmqpBusStats {
  connected: boolean;
  connections: number;
  published: number;
  confirmed: number;
  /** Unconfirmed messages held (sent and awaiting a confirm, or waiting for a connection). */
  pending: number;
  /** Dropped because the outbox was full. */
  dropped: number;
  nacked: number;
  delivered: number;
  /** Rejected: not a JSON object, or a handler failed. */
  rejected: number;
  /** Inter-node messages rejected for a missing or wrong MAC (counted in `rejected` too). */
  forged: number;
}

interface Outgoing {
  id: number;
  exchange: string;
  key: string;
  body: Buffer;
  persistent: boolean;
  at: number;
  done: boolean;
  /** MAC of an inter-node message, else undefined. */
  mac?: string;
}

interface Sub {
  handler: BusHandler;
  /** Subscription order: handlers of one message run in it. */
  seq: number;
}

const bySeq = (a: Sub, b: Sub) => a.seq - b.seq;

interface QueueState {
  name: string;
  group: boolean;
  /** "exchange\0pattern" → number of subscriptions needing it. */
  bindings: Map<string, number>;
  /** The subscriptions fed by this queue, by exchange, indexed by pattern (direct exchanges: a pattern is a key). */
  subs: Map<string, TopicIndex<Sub>>;
  /** Connection generation of the setup below (-1: none yet). */
  setupGen: number;
  setup: Promise<void> | null;
  /** This process's consumer on the queue (group queues: cancelled when its last subscription here goes). */
  consumerTag: string | null;
}


/** How long a batched publication may wait for company. */
const LINGER_MS = 5;

/** Longest wait in `subscribed()`. */
const SUBSCRIBED_WAIT_MS = 2000;

/** A direct exchange's key as one topic word: its dots and wildcards mean nothing there. */
function escapeDirect(key: string): string {
  return key.replace(/[%.*#]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function replyCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class AmqpBus implements EventBus {
  private readonly o: Required<Omit<AmqpBusOptions, 'exchanges' | 'authenticator' | 'requireAuthentication'>>;
  private readonly auth: BusAuthenticator | null;
  private readonly requireAuth: boolean;
  private readonly log: Logger;
  private readonly badInput: ThrottledLog;
  private readonly exchanges = new Map<string, AmqpExchange>();
  private readonly instance = randomBytes(6).toString('hex');

  private conn: ChannelModel | null = null;
  /** Connected with every exchange, queue, binding and consumer in place. */
  private live = false;
  private pub: ConfirmChannel | null = null;
  private sub: Channel | null = null;
  /** Bumped on every connect and disconnect: work started on an older generation is void. */
  private gen = 0;
  private connecting = false;
  private closing = false;
  private started = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The connection's socket, when amqplib exposes it: writes of one turn are corked into one. */
  private socket: { cork(): void; uncork(): void } | null = null;
  private corked = false;

  /** Every unconfirmed message, in publication order. */
  private readonly pending = new Map<number, Outgoing>();
  /** Messages still to write on the current channel, from `head` on. */
  private toSend: Outgoing[] = [];
  private head = 0;
  private blocked = false;
  private seq = 0;

  private subSeq = 0;
  /** Queue bindings requested on the live connection and not yet confirmed by the broker. */
  private readonly binding = new Set<Promise<unknown>>();
  private readonly queues = new Map<string, QueueState>();

  private readonly readyWaiters: Array<() => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private readonly counters = { connections: 0, published: 0, confirmed: 0, dropped: 0, nacked: 0, delivered: 0, rejected: 0, forged: 0 };

  constructor(o: AmqpBusOptions) {
    this.o = {
      url: o.url,
      log: o.log,
      events: o.events,
      nodeQueue: o.nodeQueue,
      outboxLimit: o.outboxLimit ?? 100_000,
      prefetch: o.prefetch ?? 256,
      heartbeatSeconds: o.heartbeatSeconds ?? 10,
      reconnectMinMs: o.reconnectMinMs ?? 200,
      reconnectMaxMs: o.reconnectMaxMs ?? 5000,
      nodeQueueExpiresMs: o.nodeQueueExpiresMs ?? 60_000,
      groupQueueExpiresMs: o.groupQueueExpiresMs ?? 30 * 60_000,
      groupMessageTtlMs: o.groupMessageTtlMs ?? 60_000,
    };
    this.log = o.log;
    this.auth = o.authenticator ?? null;
    this.requireAuth = this.auth !== null && (o.requireAuthentication ?? true);
    this.badInput = new ThrottledLog(o.log, 10);
    this.exchanges.set(o.events.name, o.events);
    for (const ex of o.exchanges ?? []) this.exchanges.set(ex.name, ex);
  }

  /** Starts connecting (and keeps reconnecting until closed). */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    void this.establish();
  }

  /** Resolves true once connected with every queue and binding in place, false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.live) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.readyWaiters.indexOf(done);
        if (i >= 0) this.readyWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.readyWaiters.push(done);
    });
  }

  /** Connected, with every queue and binding in place. */
  get connected(): boolean {
    return this.live;
  }

  stats(): AmqpBusStats {
    return { connected: this.live, pending: this.pending.size, ...this.counters };
  }

  // Publishing ------------------------------------------------------------------------------------------------

  publish(topic: string, payload: Record<string, unknown>, opts?: PublishOptions): void {
    const ex = opts?.exchange === undefined ? this.o.events : this.exchanges.get(opts.exchange);
    if (!ex) {
      this.log.error({ exchange: opts?.exchange, topic }, 'publication to an exchange the AMQP bus was not configured with: dropped');
      return;
    }
    const o: Outgoing = { id: ++this.seq, exchange: ex.name, key: topic, body: Buffer.from(JSON.stringify(payload)), persistent: ex.durable, at: Date.now(), done: false };
    if (this.auth && ex === this.o.events && this.auth.covers(topic)) o.mac = this.auth.mac(topic, o.at, o.body);
    if (this.pending.size >= this.o.outboxLimit) {
      const oldest = this.pending.values().next().value!;
      oldest.done = true;
      this.pending.delete(oldest.id);
      this.counters.dropped++;
      this.badInput.warn({ limit: this.o.outboxLimit, dropped: this.counters.dropped }, 'AMQP outbox full: oldest unconfirmed event dropped');
    }
    this.pending.set(o.id, o);
    this.toSend.push(o);
    this.counters.published++;
    if (!opts?.batch) {
      this.pump();
      return;
    }
    // An announcement nobody waits on leaves with what the next few milliseconds publish: fewer, larger writes for
    // this process and for the broker (per-registration events from a worker that sees a handful per turn).
    this.lingering ??= setTimeout(this.pumpLingering, LINGER_MS);
  }

  private lingering: NodeJS.Timeout | null = null;
  private readonly pumpLingering = (): void => {
    this.lingering = null;
    this.pump();
  };

  /**
   * Corks the socket until amqplib's writer (which runs on setImmediate) has written what this turn produced, so
   * the publishes and acks of a batch of deliveries leave in one write instead of one syscall each (they were half of
   * the server's time in the authn_req benchmark). Without access to the socket this does nothing.
   */
  private batchWrites(): void {
    const sock = this.socket;
    if (!sock || this.corked) return;
    this.corked = true;
    sock.cork();
    setImmediate(() =>
      setImmediate(() => {
        this.corked = false;
        sock.uncork();
      }),
    );
  }

  private readonly pump = (): void => {
    const ch = this.pub;
    if (!ch) return;
    const gen = this.gen;
    if (this.head < this.toSend.length) this.batchWrites();
    while (this.head < this.toSend.length && !this.blocked) {
      const o = this.toSend[this.head];
      if (o.done) {
        this.head++;
        continue;
      }
      let more: boolean;
      try {
        more = ch.publish(
          o.exchange,
          o.key,
          o.body,
          {
            persistent: o.persistent,
            contentType: 'application/json',
            timestamp: Math.floor(o.at / 1000),
            messageId: `${this.instance}-${o.id}`,
            headers: o.mac === undefined ? { 'x-published-at': o.at } : { 'x-published-at': o.at, [MAC_HEADER]: o.mac },
          },
          (err: unknown) => this.confirmed(o, gen, err),
        );
      } catch (err) {
        // The channel is closing under us; the reconnect replays what is pending.
        this.log.debug({ err: errText(err) }, 'AMQP publish on a closing channel');
        return;
      }
      this.head++;
      if (!more) this.blocked = true;
    }
    if (this.head > 1024 && this.head * 2 > this.toSend.length) {
      this.toSend = this.toSend.slice(this.head);
      this.head = 0;
    }
  };

  private confirmed(o: Outgoing, gen: number, err: unknown): void {
    if (o.done) return;
    if (err) {
      // Nacked, or the channel closed before the confirm. On the live channel: send again shortly. Otherwise the
      // reconnect replays it.
      if (gen === this.gen && this.pub) {
        this.counters.nacked++;
        this.toSend.push(o);
        setTimeout(this.pump, 100).unref();
      }
      return;
    }
    o.done = true;
    this.pending.delete(o.id);
    this.counters.confirmed++;
    if (this.pending.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  // Subscribing -----------------------------------------------------------------------------------------------

  subscribe(pattern: string, handler: BusHandler, opts?: SubscribeOptions): () => void {
    const ex = opts?.exchange === undefined ? this.o.events : this.exchanges.get(opts.exchange);
    if (!ex) throw new Error(`AMQP bus: subscription to unknown exchange ${opts?.exchange}`);
    const queue = opts?.group ?? this.o.nodeQueue;
    const sub: Sub = { handler, seq: ++this.subSeq };
    let q = this.queues.get(queue);
    if (!q) {
      q = { name: queue, group: opts?.group !== undefined, bindings: new Map(), subs: new Map(), setupGen: -1, setup: null, consumerTag: null };
      this.queues.set(queue, q);
    }
    // A direct exchange routes by the whole key: index it as one word, whatever dots it holds.
    const indexed = ex.type === 'direct' ? escapeDirect(pattern) : ex.type === 'fanout' ? '#' : pattern;
    let index = q.subs.get(ex.name);
    if (!index) q.subs.set(ex.name, (index = new TopicIndex()));
    index.add(indexed, sub);
    const bkey = `${ex.name}\u0000${ex.type === 'fanout' ? '' : pattern}`;
    const fresh = !q.bindings.has(bkey);
    q.bindings.set(bkey, (q.bindings.get(bkey) ?? 0) + 1);
    const state = q;
    if (this.conn && (fresh || state.setupGen !== this.gen)) {
      const bound: Promise<unknown> = this.ensureQueue(state, this.gen, bkey).catch((err: unknown) => this.channelFailed(`setting up queue ${queue}: ${errText(err)}`));
      this.binding.add(bound);
      void bound.finally(() => this.binding.delete(bound));
    }
    let live = true;
    return () => {
      if (!live) return;
      live = false;
      index.remove(indexed, sub);
      const n = (state.bindings.get(bkey) ?? 1) - 1;
      if (n > 0) {
        state.bindings.set(bkey, n);
        return;
      }
      state.bindings.delete(bkey);
      // A group queue and its bindings are shared by every node of the group: unbinding here would unbind it for
      // all of them. This node only stops consuming once its last subscription to the group goes; the binding
      // stays, and the queue expires (x-expires) when no node consumes it any more.
      if (state.group) return void (state.bindings.size === 0 && this.stopConsuming(state));
      const ch = this.sub;
      if (ch) ch.unbindQueue(state.name, ex.name, ex.type === 'fanout' ? '' : pattern).catch(() => {});
    };
  }

  /** As the port says; a broker that takes over `SUBSCRIBED_WAIT_MS` to bind holds a caller up no longer. */
  async subscribed(): Promise<void> {
    const deadline = Date.now() + SUBSCRIBED_WAIT_MS;
    while (this.binding.size) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.badInput.warn({ pending: this.binding.size }, 'AMQP queue bindings not confirmed in time; going on without them');
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...this.binding]), new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  /**
   * Declares the queue, binds it and starts its consumer, once per connection; called again (a subscription added
   * while connected) it adds the bindings once that setup is done.
   */
  private ensureQueue(q: QueueState, gen: number, bkey?: string): Promise<void> {
    if (q.setupGen !== gen || !q.setup) {
      q.setupGen = gen;
      q.setup = this.setupQueue(q, gen);
      return q.setup;
    }
    if (bkey === undefined) return q.setup.then(() => this.bindAll(q, gen));
    // One more binding on a queue that is (being) set up: just that one, once the setup is done.
    return q.setup.then(async () => {
      const ch = this.sub;
      if (ch && gen === this.gen && q.bindings.has(bkey)) await this.bind(ch, q.name, bkey);
    });
  }

  /** Cancels this process's consumer on a group queue none of its subscriptions needs (the next one sets it up again). */
  private stopConsuming(q: QueueState): void {
    const gen = this.gen;
    const setup = q.setup;
    q.setupGen = -1;
    q.setup = null;
    void (setup ?? Promise.resolve())
      .then(async () => {
        const ch = this.sub;
        const tag = q.consumerTag;
        if (!ch || tag === null || gen !== this.gen || q.bindings.size > 0) return;
        q.consumerTag = null;
        await ch.cancel(tag);
      })
      .catch(() => {});
  }

  private async setupQueue(q: QueueState, gen: number): Promise<void> {
    const conn = this.conn;
    const ch = this.sub;
    if (!conn || !ch || gen !== this.gen) return;
    if (q.group && q.bindings.size === 0) return; // nothing here needs this group any more: no consumer
    q.consumerTag = null;
    const args = q.group
      ? { durable: false, autoDelete: false, expires: this.o.groupQueueExpiresMs, messageTtl: this.o.groupMessageTtlMs }
      : { durable: false, autoDelete: false, expires: this.o.nodeQueueExpiresMs };
    await this.declare(conn, `queue ${q.name}`, (c) => c.assertQueue(q.name, args), (c) => c.checkQueue(q.name));
    await this.bindAll(q, gen);
    if (gen !== this.gen) return;
    q.consumerTag = (await ch.consume(q.name, (m) => this.deliver(q, ch, m), { noAck: false })).consumerTag;
  }

  private async bindAll(q: QueueState, gen: number): Promise<void> {
    for (const b of [...q.bindings.keys()]) {
      const ch = this.sub;
      if (!ch || gen !== this.gen) return;
      await this.bind(ch, q.name, b);
    }
  }

  private bind(ch: Channel, queue: string, bkey: string): Promise<unknown> {
    const nul = bkey.indexOf('\u0000');
    return ch.bindQueue(queue, bkey.slice(0, nul), bkey.slice(nul + 1));
  }

  private deliver(q: QueueState, ch: Channel, m: ConsumeMessage | null): void {
    if (m === null) {
      // The broker cancelled the consumer (queue deleted): set everything up again.
      this.channelFailed(`consumer of ${q.name} cancelled by the broker`);
      return;
    }
    this.counters.delivered++;
    let payload: unknown;
    try {
      payload = JSON.parse(m.content.toString('utf8'));
    } catch {
      payload = undefined;
    }
    const exchange = m.fields.exchange;
    const topic = m.fields.routingKey;
    if (!isObject(payload)) {
      this.badInput.warn({ queue: q.name, exchange, topic, bytes: m.content.length }, 'AMQP message is not a JSON object: rejected');
      this.settle(ch, m, false);
      return;
    }
    const headers = m.properties.headers as Record<string, unknown> | undefined;
    const published = headers?.['x-published-at'];
    if (this.requireAuth && exchange === this.o.events.name && this.auth!.covers(topic) && !this.auth!.verify(topic, published, m.content, headers?.[MAC_HEADER])) {
      this.counters.forged++;
      this.badInput.warn({ queue: q.name, exchange, topic, code: Errors.BUS_ERR_UNAUTHENTICATED.code }, 'inter-node message without a valid MAC of this deployment: rejected');
      this.settle(ch, m, false);
      return;
    }
    const at = typeof published === 'number' ? published : typeof m.properties.timestamp === 'number' ? m.properties.timestamp * 1000 : Date.now();
    const msg: BusMessage = { topic, payload, at };
    if (exchange !== this.o.events.name) msg.exchange = exchange;
    let waits: Array<PromiseLike<unknown>> | null = null;
    let failed = false;
    const index = q.subs.get(exchange);
    const ex = this.exchanges.get(exchange);
    const found = index ? index.match(ex?.type === 'direct' ? escapeDirect(topic) : topic) : [];
    if (found.length > 1) found.sort(bySeq);
    if (found.length === 0 && q.group && !m.fields.redelivered) {
      // A group message for a pattern no subscription here follows any more (dropped while other nodes of the group
      // keep it, or in flight when this node stopped consuming): back to the queue once, for another member.
      if (ch === this.sub) {
        try {
          ch.reject(m, true);
        } catch {
          // channel closing: the broker requeues it anyway
        }
      }
      return;
    }
    for (const s of found) {
      try {
        const r = s.handler(msg);
        if (r && typeof (r as PromiseLike<void>).then === 'function') (waits ??= []).push(r);
      } catch (err) {
        failed = true;
        this.badInput.warn({ exchange, topic, err: errText(err) }, 'bus subscriber failed: message rejected');
      }
    }
    if (!waits) {
      this.settle(ch, m, !failed);
      return;
    }
    void Promise.allSettled(waits).then((results) => {
      for (const r of results) {
        if (r.status === 'rejected') {
          failed = true;
          this.badInput.warn({ exchange, topic, err: errText(r.reason) }, 'bus subscriber failed: message rejected');
        }
      }
      this.settle(ch, m, !failed);
    });
  }

  private settle(ch: Channel, m: ConsumeMessage, good: boolean): void {
    if (!good) this.counters.rejected++;
    if (ch !== this.sub) return; // that channel is gone; the broker redelivers (or has dropped) the message
    this.batchWrites();
    try {
      if (good) ch.ack(m);
      else ch.reject(m, false);
    } catch {
      // channel closing
    }
  }

  // Connection ------------------------------------------------------------------------------------------------

  private connectUrl(): string {
    const u = new URL(this.o.url);
    if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(this.o.heartbeatSeconds));
    return u.toString();
  }

  private async establish(): Promise<void> {
    if (this.closing || this.connecting || this.conn) return;
    this.connecting = true;
    let conn: ChannelModel | null = null;
    let dead = false;
    try {
      // noDelay: small request/reply frames must not wait for Nagle (a 40 ms stall against delayed ACKs).
      conn = await connect(this.connectUrl(), { timeout: 5000, noDelay: true, keepAlive: true, clientProperties: { connection_name: this.o.nodeQueue } });
      const c = conn;
      c.on('error', (err: unknown) => this.log.warn({ err: errText(err) }, 'AMQP connection error'));
      c.on('close', (err: unknown) => {
        dead = true;
        this.lost(c, err);
      });
      c.on('blocked', (reason: string) => this.log.warn({ reason }, 'AMQP broker blocks publishing (resource alarm); events wait in the outbox'));
      c.on('unblocked', () => this.log.info('AMQP broker unblocked publishing'));
      for (const ex of this.exchanges.values()) {
        await this.declare(c, `exchange ${ex.name}`, (ch) => ch.assertExchange(ex.name, ex.type, { durable: ex.durable, autoDelete: false }), (ch) => ch.checkExchange(ex.name));
      }
      const pub = await c.createConfirmChannel();
      const sub = await c.createChannel();
      for (const ch of [pub, sub]) {
        ch.on('error', (err: unknown) => this.log.warn({ err: errText(err) }, 'AMQP channel error'));
        // A channel closing with its connection is the connection's loss (handled there); give that event its turn.
        ch.on('close', () => {
          setImmediate(() => {
            if (this.conn === c) this.channelFailed('AMQP channel closed by the broker');
          });
        });
      }
      pub.on('drain', () => {
        this.blocked = false;
        this.pump();
      });
      await sub.prefetch(this.o.prefetch);
      if (dead || this.closing) throw new Error(this.closing ? 'closing' : 'connection closed while setting up');
      this.conn = c;
      this.pub = pub;
      this.sub = sub;
      const stream = (c as unknown as { connection?: { stream?: { cork?: unknown; uncork?: unknown } } }).connection?.stream;
      this.socket = stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function' ? (stream as { cork(): void; uncork(): void }) : null;
      const gen = ++this.gen;
      for (const q of this.queues.values()) await this.ensureQueue(q, gen);
      if (gen !== this.gen) throw new Error('connection lost while setting up');
      this.counters.connections++;
      this.attempt = 0;
      // Replay everything unconfirmed, in publication order.
      this.toSend = [...this.pending.values()];
      this.head = 0;
      this.blocked = false;
      this.log.info({ url: redactUrl(this.o.url), queue: this.o.nodeQueue, replaying: this.toSend.length, reconnect: this.counters.connections > 1 }, 'AMQP bus connected');
      this.live = true;
      this.pump();
      for (const w of this.readyWaiters.splice(0)) w();
    } catch (err) {
      if (conn && this.conn === conn) this.lost(conn, err);
      if (conn) conn.close().catch(() => {});
      if (!this.closing) {
        const delay = this.backoff();
        this.log.warn({ url: redactUrl(this.o.url), err: errText(err), retryInMs: delay }, 'AMQP connection failed');
        this.schedule(delay);
      }
    } finally {
      this.connecting = false;
    }
  }

  /** Declares on a channel of its own: a PRECONDITION_FAILED (exists with other flags) closes only that channel. */
  private async declare(conn: ChannelModel, what: string, assert: (ch: Channel) => Promise<unknown>, check: (ch: Channel) => Promise<unknown>): Promise<void> {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    try {
      await assert(ch);
      await ch.close();
    } catch (err) {
      if (replyCode(err) !== 406) throw err;
      this.log.warn({ what, err: errText(err) }, 'AMQP: exists with other properties; using it as it is');
      const c2 = await conn.createChannel();
      c2.on('error', () => {});
      await check(c2);
      await c2.close();
    }
  }

  private backoff(): number {
    const base = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** this.attempt++);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private schedule(delay: number): void {
    if (this.timer || this.closing) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.establish();
    }, delay);
  }

  /** The connection is gone: forget it, keep everything unconfirmed, reconnect. */
  private lost(conn: ChannelModel, err: unknown): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.live = false;
    this.pub = null;
    this.sub = null;
    this.socket = null;
    this.gen++;
    this.blocked = false;
    if (this.closing) return;
    const delay = this.backoff();
    this.log.warn({ err: err ? errText(err) : undefined, unconfirmed: this.pending.size, retryInMs: delay }, 'AMQP connection lost; reconnecting');
    this.schedule(delay);
  }

  /** A channel died while its connection lives (an operation the broker refused): start over on a new connection. */
  private channelFailed(why: string): void {
    const conn = this.conn;
    if (!conn) return;
    this.log.warn({ why }, 'AMQP channel failed; reconnecting');
    this.lost(conn, new Error(why));
    conn.close().catch(() => {});
  }

  /** Waits (up to `drainMs`) for every pending message to be confirmed, then disconnects. */
  async close(drainMs = 2000): Promise<void> {
    if (this.closing) return;
    if (this.lingering) {
      clearTimeout(this.lingering);
      this.pumpLingering();
    }
    if (this.conn && this.pending.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, drainMs);
        this.drainWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // The node queue is this process's alone (its name is the Server-ID): nobody will consume it again. Left to
    // expire it would go on taking in every message bound to it for a minute, at the broker's expense.
    await this.sub?.deleteQueue(this.o.nodeQueue).catch(() => {});
    const conn = this.conn;
    this.conn = null;
    this.live = false;
    this.pub = null;
    this.sub = null;
    this.gen++;
    if (conn) await conn.close().catch(() => {});
    if (this.pending.size) this.log.warn({ unconfirmed: this.pending.size }, 'AMQP bus closed with unconfirmed events');
  }
}
