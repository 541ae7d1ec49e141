// In-process EventBus: the embedded default. Delivery is asynchronous (after the current turn), in publication
// order, so a publisher never runs subscriber code inside its own critical section, and a failing subscriber
// is logged without touching the publisher or other subscribers. An exchange is a separate namespace of topics;
// subscribers sharing a group take turns (one of them gets each message).

import type { Logger } from '../log.ts';
import type { BusHandler, BusMessage, EventBus, PublishOptions, SubscribeOptions } from './event-bus.ts';
import { TopicIndex } from './topic-index.ts';

interface Sub {
  handler: BusHandler;
  group: string | undefined;
  /** Subscription order: handlers of one message run in it. */
  seq: number;
}

const bySeq = (a: Sub, b: Sub) => a.seq - b.seq;

export class InProcessBus implements EventBus {
  /** Subscriptions by exchange ('' for the events exchange), indexed by pattern. */
  private readonly subs = new Map<string, TopicIndex<Sub>>();
  private count = 0;
  private seq = 0;
  private queue: BusMessage[] = [];
  private scheduled = false;
  private readonly log: Logger;
  private readonly turns = new Map<string, number>();

  constructor(log: Logger) {
    this.log = log;
  }

  /** Subscriptions held. */
  get size(): number {
    return this.count;
  }

  publish(topic: string, payload: Record<string, unknown>, opts?: PublishOptions): void {
    if (this.count === 0) return;
    const msg: BusMessage = { topic, payload, at: Date.now() };
    if (opts?.exchange !== undefined) msg.exchange = opts.exchange;
    this.queue.push(msg);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  subscribe(pattern: string, handler: BusHandler, opts?: SubscribeOptions): () => void {
    const sub: Sub = { handler, group: opts?.group, seq: ++this.seq };
    const ex = opts?.exchange ?? '';
    let index = this.subs.get(ex);
    if (!index) this.subs.set(ex, (index = new TopicIndex()));
    index.add(pattern, sub);
    this.count++;
    let live = true;
    return () => {
      if (!live) return;
      live = false;
      if (index.remove(pattern, sub)) this.count--;
    };
  }

  /** In-process subscriptions take effect at once. */
  subscribed(): Promise<void> {
    return Promise.resolve();
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    for (const msg of q) {
      const index = this.subs.get(msg.exchange ?? '');
      if (!index) continue;
      const found = index.match(msg.topic);
      if (found.length > 1) found.sort(bySeq);
      let groups: Map<string, Sub[]> | null = null;
      for (const sub of found) {
        if (sub.group !== undefined) {
          groups ??= new Map();
          const members = groups.get(sub.group);
          if (members) members.push(sub);
          else groups.set(sub.group, [sub]);
          continue;
        }
        this.deliver(sub, msg);
      }
      if (groups) {
        for (const [group, members] of groups) {
          const turn = this.turns.get(group) ?? 0;
          this.turns.set(group, turn + 1);
          this.deliver(members[turn % members.length], msg);
        }
      }
    }
  };

  private deliver(sub: Sub, msg: BusMessage): void {
    try {
      const r = sub.handler(msg);
      if (r && typeof (r as Promise<void>).catch === 'function') {
        (r as Promise<void>).catch((err: unknown) => this.log.error({ err, topic: msg.topic }, 'bus subscriber failed'));
      }
    } catch (err) {
      this.log.error({ err, topic: msg.topic }, 'bus subscriber failed');
    }
  }

  async close(): Promise<void> {
    if (this.queue.length) this.drain();
  }
}
