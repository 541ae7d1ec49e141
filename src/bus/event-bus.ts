// The EventBus port: services publish what happened; adapters carry it (in-process, AMQP). Topics are
// dot-separated words and subscriptions use AMQP topic patterns (`*` one word, `#` zero or more), so a
// subscription means the same on every adapter.
//
// Without options everything happens on Switchboard's own events exchange. A publication or subscription may name
// another exchange (the Kazoo directory speaks on `callmgr`, `registrar` and `targeted`); the in-process adapter
// treats an exchange as a separate namespace of topics. A subscription in a `group` competes with the group's other
// members for each message (AMQP: one queue named after the group, shared by every node), where a plain subscription
// sees every message (AMQP: the node's own queue).

export interface BusMessage {
  topic: string;
  payload: Record<string, unknown>;
  /** Epoch ms at publication. */
  at: number;
  /** The exchange it came through; absent for Switchboard's own events exchange. */
  exchange?: string;
}

/** A handler that throws or rejects marks the message failed: logged, and an AMQP adapter rejects it (no requeue). */
export type BusHandler = (msg: BusMessage) => void | Promise<void>;

export interface PublishOptions {
  /** Exchange to publish on (one the adapter was configured with); default: Switchboard's own events exchange. */
  exchange?: string;
}

export interface SubscribeOptions {
  /** Exchange to listen on; default: Switchboard's own events exchange. */
  exchange?: string;
  /** Competing consumers: each message goes to one subscriber of the group (across nodes, over AMQP). */
  group?: string;
}

export interface EventBus {
  /** Publishes without waiting; the adapter owns delivery (and, for AMQP, confirms and retries). */
  publish(topic: string, payload: Record<string, unknown>, opts?: PublishOptions): void;
  /** Subscribes to a topic pattern; returns the unsubscribe function. */
  subscribe(pattern: string, handler: BusHandler, opts?: SubscribeOptions): () => void;
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
