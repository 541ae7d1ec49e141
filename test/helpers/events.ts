// Bus events as tests see them, on either test stack. The in-process bus runs a handler within the publishing turn;
// over AMQP a message arrives after a broker round trip, and a new subscription is bound a moment after subscribe()
// returns. collectEvents therefore returns only once its subscription is bound, and tests wait for what they expect
// (waitFor) or for everything published so far to be delivered (settle) rather than for a turn of the event loop.

import { randomBytes } from 'node:crypto';
import type { BusMessage, EventBus } from '../../src/bus/event-bus.ts';

export interface EventLog {
  /** The matching events delivered so far, in order; a test may empty it. */
  events: BusMessage[];
  /** Resolves once `pred` holds on the events (checked as they arrive); rejects after `ms`. */
  waitFor(pred: (events: BusMessage[]) => boolean, what: string, ms?: number): Promise<void>;
  /** Resolves once every event this bus published before the call has been delivered here. */
  settle(): Promise<void>;
  stop(): void;
}

const PROBE = 'sbtest.probe';

/** Subscribes to `pattern` on `bus` and resolves once the subscription is live (over AMQP: bound on the broker). */
export async function collectEvents(bus: EventBus, pattern: string): Promise<EventLog> {
  const events: BusMessage[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const unsubscribe = bus.subscribe(pattern, (m) => {
    if (m.topic.startsWith(PROBE + '.')) return;
    events.push(m);
    notify();
  });
  // Probes: a topic of our own on the same subscriber queue. Bindings of one queue are made in order, so once a
  // probe arrives the subscription above is bound; and one publisher's messages reach a queue in order, so a probe
  // published after some events arrives after them.
  const id = randomBytes(6).toString('hex');
  const seen = new Set<number>();
  const unprobe = bus.subscribe(`${PROBE}.${id}.*`, (m) => {
    seen.add(Number(m.topic.slice(m.topic.lastIndexOf('.') + 1)));
    notify();
  });
  let seq = 0;
  const until = (pred: () => boolean, what: string, ms: number, onWait?: () => void): Promise<void> =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const done = () => {
        if (!pred()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; events: ${events.map((e) => e.topic).join(', ') || 'none'}`));
      }, ms);
      const again = onWait ? setInterval(onWait, 50) : null;
      const cleanup = () => {
        clearTimeout(timer);
        if (again) clearInterval(again);
        waiters.delete(done);
      };
      waiters.add(done);
    });
  const probe = async (what: string, retry: boolean): Promise<void> => {
    const n = ++seq;
    const send = () => bus.publish(`${PROBE}.${id}.${n}`, {});
    send();
    // Until the probe's own binding is in place a probe is routed nowhere: send again until one arrives.
    await until(() => seen.has(n), what, 10_000, retry ? send : undefined);
  };
  await probe(`the subscription to ${pattern} to be bound`, true);
  return {
    events,
    waitFor: (pred, what, ms = 10_000) => until(() => pred(events), what, ms),
    settle: () => probe('the events published so far', false),
    stop() {
      unsubscribe();
      unprobe();
    },
  };
}
