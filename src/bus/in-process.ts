// In-process EventBus: the embedded default. Delivery is asynchronous (after the current turn), in publication
// order, so a publisher never runs subscriber code inside its own critical section, and a failing subscriber
// is logged without touching the publisher or other subscribers. An exchange is a separate namespace of topics;
// subscribers sharing a group take turns (one of them gets each message).

import type { Logger } from '../log.ts';
import { topicMatches, type BusHandler, type BusMessage, type EventBus, type PublishOptions, type SubscribeOptions } from './event-bus.ts';

interface Sub {
  pattern: string;
  handler: BusHandler;
  exchange: string | undefined;
  group: string | undefined;
  /** Match results by topic: topics are a small set, and matching splits strings (a REGISTER publishes one). */
  matches: Map<string, boolean>;
}

export class InProcessBus implements EventBus {
  private readonly subs: Sub[] = [];
  private queue: BusMessage[] = [];
  private scheduled = false;
  private readonly log: Logger;
  private readonly turns = new Map<string, number>();

  constructor(log: Logger) {
    this.log = log;
  }

  publish(topic: string, payload: Record<string, unknown>, opts?: PublishOptions): void {
    if (this.subs.length === 0) return;
    const msg: BusMessage = { topic, payload, at: Date.now() };
    if (opts?.exchange !== undefined) msg.exchange = opts.exchange;
    this.queue.push(msg);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  subscribe(pattern: string, handler: BusHandler, opts?: SubscribeOptions): () => void {
    const sub: Sub = { pattern, handler, exchange: opts?.exchange, group: opts?.group, matches: new Map() };
    this.subs.push(sub);
    return () => {
      const i = this.subs.indexOf(sub);
      if (i >= 0) this.subs.splice(i, 1);
    };
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    for (const msg of q) {
      let groups: Map<string, Sub[]> | null = null;
      for (const sub of this.subs) {
        if (sub.exchange !== msg.exchange || !matches(sub, msg.topic)) continue;
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

function matches(sub: Sub, topic: string): boolean {
  let m = sub.matches.get(topic);
  if (m === undefined) {
    m = topicMatches(sub.pattern, topic);
    // Topics carry no user data here, but bound the cache anyway.
    if (sub.matches.size < 1024) sub.matches.set(topic, m);
  }
  return m;
}
