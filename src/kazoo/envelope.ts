// The Kazoo message envelope (kz_api): JSON objects whose every message carries, non-empty, App-Name, App-Version,
// Event-Category, Event-Name and Msg-ID. Replies go to the `targeted` exchange keyed by the request's Server-ID and
// echo its Msg-ID. Consumers tolerate keys they do not know; publishers send only the keys of the API.

export type KazooMessage = Record<string, unknown>;

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

export const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
export const bad = <T>(error: string): Checked<T> => ({ ok: false, error });

export const ENVELOPE_HEADERS = ['App-Name', 'App-Version', 'Event-Category', 'Event-Name', 'Msg-ID'] as const;

/** Who we are in the envelopes we send. */
export interface Sender {
  appName: string;
  appVersion: string;
  /** The Node header (Kazoo: the Erlang node, e.g. `switchboard@host`). */
  node: string;
  /** Our reply queue: where answers to our own requests go. */
  serverId: string;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** Checks the envelope, and that the message is the expected event (category and name). */
export function checkEnvelope(msg: unknown, category: string, name: string): Checked<KazooMessage> {
  if (!isObject(msg)) return bad('not a JSON object');
  for (const h of ENVELOPE_HEADERS) if (!nonEmptyString(msg[h])) return bad(`${h} missing or empty`);
  if (msg['Event-Category'] !== category) return bad(`Event-Category ${JSON.stringify(msg['Event-Category'])}, expected ${category}`);
  if (msg['Event-Name'] !== name) return bad(`Event-Name ${JSON.stringify(msg['Event-Name'])}, expected ${name}`);
  return ok(msg);
}

/** Checks that every required header is present and a non-empty string. */
export function requireStrings(msg: KazooMessage, keys: readonly string[]): string | null {
  for (const k of keys) if (!nonEmptyString(msg[k])) return `${k} missing or empty`;
  return null;
}

/** The envelope of a message we originate. */
export function envelope(from: Sender, category: string, name: string, msgId: string): KazooMessage {
  return {
    'App-Name': from.appName,
    'App-Version': from.appVersion,
    'Event-Category': category,
    'Event-Name': name,
    'Msg-ID': msgId,
    Node: from.node,
    'Server-ID': from.serverId,
  };
}

/** The envelope of a reply: the request's Msg-ID echoed, so the requester can match it. */
export function replyEnvelope(from: Sender, request: KazooMessage, category: string, name: string): KazooMessage {
  return envelope(from, category, name, request['Msg-ID'] as string);
}

/** Where a reply goes: the request's Server-ID (routing key on the targeted exchange), or null when it named none. */
export function replyTo(request: KazooMessage): string | null {
  return nonEmptyString(request['Server-ID']) ? request['Server-ID'] : null;
}

/** Kazoo's kz_term:is_true/to_boolean for header values: true, "true" (any case), 1 and "1" are true. */
export function isTrue(v: unknown): boolean {
  return v === true || v === 1 || (typeof v === 'string' && (v.toLowerCase() === 'true' || v === '1'));
}
