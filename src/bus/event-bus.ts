// The EventBus port: services publish what happened; adapters carry it (in-process, AMQP). Topics are
// dot-separated words and subscriptions use AMQP topic patterns (`*` one word, `#` zero or more), so a
// subscription means the same on every adapter.

export interface BusMessage {
  topic: string;
  payload: Record<string, unknown>;
  /** Epoch ms at publication. */
  at: number;
}

export type BusHandler = (msg: BusMessage) => void | Promise<void>;

export interface EventBus {
  /** Publishes without waiting; the adapter owns delivery (and, for AMQP, confirms and retries). */
  publish(topic: string, payload: Record<string, unknown>): void;
  /** Subscribes to a topic pattern; returns the unsubscribe function. */
  subscribe(pattern: string, handler: BusHandler): () => void;
  close(): Promise<void>;
}

/** AMQP topic matching: `*` matches exactly one word, `#` zero or more. */
export function topicMatches(pattern: string, topic: string): boolean {
  return matchWords(pattern.split('.'), 0, topic.split('.'), 0);
}

function matchWords(p: string[], pi: number, t: string[], ti: number): boolean {
  if (pi === p.length) return ti === t.length;
  if (p[pi] === '#') {
    for (let k = ti; k <= t.length; k++) if (matchWords(p, pi + 1, t, k)) return true;
    return false;
  }
  if (ti === t.length) return false;
  if (p[pi] !== '*' && p[pi] !== t[ti]) return false;
  return matchWords(p, pi + 1, t, ti + 1);
}
