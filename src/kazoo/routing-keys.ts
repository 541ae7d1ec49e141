// Kazoo's routing keys (kz_amqp_util:encode/1 and the kapi_* key builders). A realm or user becomes one word of an
// AMQP topic key, so every byte that could end or widen a word is escaped:
//   [A-Za-z0-9-~_] stay; '.' → %2E; ' ' → '+'; every other byte (of the UTF-8 encoding) → %XX, upper-case hex;
//   a lone '*' or '#' passes through (a wildcard in a binding or query key); '' stays ''.

import { topicWord } from '../bus/event-bus.ts';

/** Encodes one routing-key word exactly as Kazoo does (the bus's own topic words use the same encoding). */
export const encodeKeyWord = topicWord;

/** The inverse of encodeKeyWord, for logs and tests ('+' is a space; %XX a byte). */
export function decodeKeyWord(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

export const KEY = {
  /** callmgr exchange: `authn.req.<realm>` (kapi_authn). */
  authnReq: (realm: string) => `authn.req.${encodeKeyWord(realm)}`,
  /** registrar exchange: newer kazoo-configs-kamailio send authn requests as `authn.endpoint.req.<realm>`. */
  authnEndpointReq: (realm: string) => `authn.endpoint.req.${encodeKeyWord(realm)}`,
  /** registrar exchange: `registration.success.<realm>.<user>`. */
  regSuccess: (realm: string, user: string) => `registration.success.${encodeKeyWord(realm)}.${encodeKeyWord(user)}`,
  /** registrar exchange: `registration.query.<realm>.<user>`, or `.*` when the query names no user. */
  regQuery: (realm: string, user?: string | null) => `registration.query.${encodeKeyWord(realm)}.${user ? encodeKeyWord(user) : '*'}`,
  /** registrar exchange: `registration.flush.<realm>`. */
  regFlush: (realm: string) => `registration.flush.${encodeKeyWord(realm)}`,
  /** registrar exchange: `registration.sync`. */
  regSync: 'registration.sync',
} as const;

/** The bindings a registrar makes (every realm, every user). */
export const BINDING = {
  authnReq: 'authn.req.*',
  authnEndpointReq: 'authn.endpoint.req.*',
  regSuccess: 'registration.success.*.*',
  regQuery: 'registration.query.*.*',
  regFlush: 'registration.flush.*',
  regSync: 'registration.sync',
} as const;
