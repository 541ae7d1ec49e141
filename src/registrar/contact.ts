// Contacts of a REGISTER as the registrar sees them (RFC 3261 §10.3 steps 6–7, RFC 5626 §6): the binding key,
// the requested lifetime, the q-value, and the Contact header value for the 200 OK.

import { formatUri, isSipUri, unquote, unescapePercent, type NameAddr, type Params, type SipUri } from '../sip/message/index.ts';
import type { BindingRecord } from '../storage/ports.ts';

/** Expires values above 2^32-1 are treated as 2^32-1 (RFC 3261 §20.19); malformed ones as absent. */
const MAX_DELTA = 2 ** 32 - 1;

export function parseDeltaSeconds(v: string | null | undefined): number | null {
  if (v == null) return null;
  const t = v.trim();
  // 1*20DIGIT, checked in a loop: a regular expression ran on every REGISTER's Expires.
  if (t.length === 0 || t.length > 20) return null;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57) return null;
  }
  return Math.min(Number(t), MAX_DELTA);
}

/** q = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
export function parseQ(v: string | null | undefined): number | null | 'invalid' {
  if (v === undefined) return null;
  if (v === null || !/^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/.test(v)) return 'invalid';
  return Number(v);
}

/**
 * The key identifying a binding within its AOR: `+sip.instance` and `reg-id` for an RFC 5626 flow (several
 * flows of one device coexist), otherwise the contact URI compared per RFC 3261 §19.1.4 (case-insensitive
 * scheme and host, unescaped user, significant parameters).
 */
export function bindingKey(contact: NameAddr): string {
  const instance = instanceOf(contact);
  const regId = regIdOf(contact);
  if (instance !== null && regId !== null) return `instance:${instance}|${regId}`;
  return 'uri:' + normalizedUri(contact);
}

export function instanceOf(contact: NameAddr): string | null {
  const v = contact.params.get('+sip.instance');
  if (v == null) return null;
  return unquote(v);
}

export function regIdOf(contact: NameAddr): number | null {
  const v = contact.params.get('reg-id');
  if (v == null || !/^[0-9]{1,10}$/.test(v)) return null;
  return Number(v);
}

/** The URI parameters that take part in comparison whenever either URI has them (RFC 3261 §19.1.4). */
const SIGNIFICANT = ['transport', 'user', 'ttl', 'method', 'maddr'] as const;

function normalizedUri(contact: NameAddr): string {
  const u = contact.uri;
  if (!isSipUri(u)) return formatUri(u).toLowerCase();
  const s = u as SipUri;
  let out = s.scheme + ':';
  if (s.user !== null) out += unescapePercent(s.user) + (s.password !== null ? ':' + s.password : '') + '@';
  out += s.host.toLowerCase();
  if (s.port !== null) out += ':' + s.port;
  for (const k of SIGNIFICANT) {
    const v = s.params.get(k);
    if (v !== undefined) out += ';' + k + (v === null ? '' : '=' + v.toLowerCase());
  }
  return out;
}

/** Contact header parameters kept with the binding: everything but expires and q (those are recomputed). */
export function keptParams(params: Params): string {
  let out = '';
  params.forEach((v, k) => {
    if (k !== 'expires' && k !== 'q') out += v === null ? ';' + k : ';' + k + '=' + v;
  });
  return out;
}

/** The Contact value listing a binding in a 200 OK (RFC 3261 §10.3 step 8). */
export function contactValue(b: BindingRecord, nowMs: number, extra = ''): string {
  const remaining = Math.max(0, Math.round((b.expiresAt - nowMs) / 1000));
  let out = '<' + b.contact + '>' + b.params + extra;
  if (b.q !== null) out += ';q=' + formatQ(b.q);
  return out + ';expires=' + remaining;
}

function formatQ(q: number): string {
  return q === 1 ? '1' : q === 0 ? '0' : String(q);
}
