// In-process EventBus: the embedded default. Delivery is asynchronous (after the current turn), in publication
// order, so a publisher never runs subscriber code inside its own critical section, and a failing subscriber
// is logged without touching the publisher or other subscribers.

import type { Logger } from '../log.ts';
import { topicMatches, type BusHandler, type BusMessage, type EventBus } from './event-bus.ts';

export class InProcessBus implements EventBus {
  private readonly subs: Array<{ pattern: string; handler: BusHandler }> = [];
  private queue: BusMessage[] = [];
  private scheduled = false;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  publish(topic: string, payload: Record<string, unknown>): void {
    if (this.subs.length === 0) return;
    this.queue.push({ topic, payload, at: Date.now() });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  subscribe(pattern: string, handler: BusHandler): () => void {
    const sub = { pattern, handler };
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
      for (const sub of this.subs) {
        if (!topicMatches(sub.pattern, msg.topic)) continue;
        try {
          const r = sub.handler(msg);
          if (r && typeof (r as Promise<void>).catch === 'function') {
            (r as Promise<void>).catch((err: unknown) => this.log.error({ err, topic: msg.topic }, 'bus subscriber failed'));
          }
        } catch (err) {
          this.log.error({ err, topic: msg.topic }, 'bus subscriber failed');
        }
      }
    }
  };

  async close(): Promise<void> {
    if (this.queue.length) this.drain();
  }
}
