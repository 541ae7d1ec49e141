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
  /**
   * An announcement nobody waits on (a binding event, a reg_success): an adapter may hold it a few milliseconds to
   * send it with others. Requests and replies leave at once.
   */
  batch?: boolean;
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
  /**
   * Resolves once every subscription made so far receives what is published from then on (AMQP: its queue binding
   * is in place). A caller that subscribes and then reads state awaits this in between, so that no change falls
   * between its read and its first message. While the broker is unreachable it resolves at once: nothing can be
   * promised then, and the subscriptions are bound again on reconnect.
   */
  subscribed(): Promise<void>;
  close(): Promise<void>;
}

/**
 * One word of a topic made from data (a realm, a user): Kazoo's routing-key encoding (kz_amqp_util:encode/1), so
 * that no value can end a word or act as a wildcard. [A-Za-z0-9-~_] stay; '.' → %2E; ' ' → '+'; every other byte
 * of the UTF-8 encoding → %XX, upper-case hex; a lone '*' or '#' passes through (a wildcard in a pattern); '' stays ''.
 */
export function topicWord(s: string): string {
  if (s === '' || s === '*' || s === '#') return s;
  let plain = true;
  for (let i = 0; i < s.length && plain; i++) plain = keySafe(s.charCodeAt(i));
  if (plain) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    if (keySafe(b)) out += String.fromCharCode(b);
    else if (b === 0x20) out += '+';
    else out += '%' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/** topicWord for a value (a user, a domain) rather than a pattern: a lone `*` or `#` in an address is a name, not a
 * wildcard, so it is encoded too. */
export function valueWord(s: string): string {
  return s === '*' ? '%2A' : s === '#' ? '%23' : topicWord(s);
}

/**
 * valueWord of a domain, remembered: a deployment has a handful of domains, and a dotted one is escaped byte by byte
 * through a Buffer (408 bytes of garbage a REGISTER for `bench.test`, for the binding event's topic, and the same
 * for each of a call's three events). At most DOMAIN_WORDS are kept, the table starting over when full; a key may
 * hold the text it was cut from (a binding's AOR, a call's callee), no more than that many.
 */
export function domainWord(domain: string): string {
  let w = domainWords.get(domain);
  if (w === undefined) {
    if (domainWords.size >= DOMAIN_WORDS) domainWords.clear();
    w = valueWord(domain);
    domainWords.set(domain, w);
  }
  return w;
}

const DOMAIN_WORDS = 256;
const domainWords = new Map<string, string>();

const HEX = '0123456789ABCDEF';

function keySafe(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x7e || b === 0x5f;
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
