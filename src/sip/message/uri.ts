// SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; IPv6 references per RFC 5118).
// Parsing keeps the user part as written (with its escapes) so that serialization is exact; comparison and
// address-of-record keys use the unescaped form, as §19.1.4 requires.

import { addParam, EMPTY_PARAMS, ParamList, paramName, serializeParams, unescapePercent, type Params } from './grammar.ts';

/** URI header components, in order. Read-only: most URIs have none and share NO_HEADERS. */
export type UriHeaders = ReadonlyArray<readonly [string, string]>;

/** The header components of every URI without any. */
export const NO_HEADERS: UriHeaders = Object.freeze([]);

export interface SipUri {
  readonly scheme: 'sip' | 'sips';
  user: string | null;
  password: string | null;
  /** Host as written; IPv6 references keep their brackets. */
  host: string;
  port: number | null;
  params: Params;
  headers: UriHeaders;
}

export interface TelUri {
  readonly scheme: 'tel';
  number: string;
  params: Params;
}

/** Any other absolute URI (for example `http:` in Call-Info): kept whole, never interpreted. */
export interface OtherUri {
  readonly scheme: string;
  readonly raw: string;
}

export type Uri = SipUri | TelUri | OtherUri;

export function isSipUri(u: Uri): u is SipUri {
  return u.scheme === 'sip' || u.scheme === 'sips';
}

export function isTelUri(u: Uri): u is TelUri {
  return u.scheme === 'tel';
}

// unreserved / escaped / user-unreserved ("&" "=" "+" "$" "," ";" "?" "/")
const USER = charset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()%&=+$,;?/");
// unreserved / escaped / "&" "=" "+" "$" ","
const PASSWORD = charset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()%&=+$,");
// paramchar = param-unreserved / unreserved / escaped; param-unreserved = "[" "]" "/" ":" "&" "+" "$"
const PARAMCHAR = charset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()%[]/:&+$");
// hnv-unreserved = "[" "]" "/" "?" ":" "+" "$", plus unreserved / escaped
const HNV = charset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()%[]/?:+$");
const HOSTNAME = charset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.');

function charset(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

function allIn(s: string, table: Uint8Array, from = 0, to = s.length): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || table[c] !== 1) return false;
    // An escape must be "%" HEXDIG HEXDIG.
    if (c === 37 && !(isHexAt(s, i + 1) && isHexAt(s, i + 2) && i + 2 < to)) return false;
  }
  return true;
}

function isHexAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Parses a URI; returns null when it is not well-formed. Never throws. */
export function parseUri(s: string): Uri | null {
  // The scheme nearly every URI has, written in lower case, without a slice and a toLowerCase.
  if (s.startsWith('sip:')) return parseSipUri(s, 4, 'sip');
  const colon = s.indexOf(':');
  if (colon <= 0) return null;
  const scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSipUri(s, colon + 1, scheme);
  if (scheme === 'tel') return parseTelUri(s, colon + 1);
  // absoluteURI: scheme must be ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) and the rest printable, no spaces.
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) return null;
  for (let i = colon + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c >= 127 || c === 60 || c === 62 || c === 34) return null;
  }
  return { scheme, raw: s };
}

function parseSipUri(s: string, start: number, scheme: 'sip' | 'sips'): SipUri | null {
  let user: string | null = null;
  let password: string | null = null;
  let i = start;
  const at = s.indexOf('@', start);
  if (at >= 0) {
    const pw = s.indexOf(':', start);
    const userEnd = pw >= 0 && pw < at ? pw : at;
    if (userEnd === start) return null;
    if (!allIn(s, USER, start, userEnd)) return null;
    user = s.slice(start, userEnd);
    if (userEnd < at) {
      if (!allIn(s, PASSWORD, userEnd + 1, at)) return null;
      password = s.slice(userEnd + 1, at);
    }
    i = at + 1;
  }
  // host
  let host: string;
  if (s.charCodeAt(i) === 91 /* [ */) {
    const close = s.indexOf(']', i);
    if (close < 0) return null;
    host = s.slice(i, close + 1);
    if (!isIPv6(host.slice(1, -1))) return null;
    i = close + 1;
  } else {
    const hStart = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c < 128 && HOSTNAME[c] === 1) i++;
      else break;
    }
    if (i === hStart) return null;
    host = s.slice(hStart, i);
    if (!isHostname(host) && !isIPv4(host)) return null;
  }
  let port: number | null = null;
  if (s.charCodeAt(i) === 58 /* : */) {
    const pStart = ++i;
    let n = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
    }
    if (i === pStart || i - pStart > 5 || n > 65535) return null;
    port = n;
  }
  let params: Array<string | null> | null = null;
  while (i < s.length && s.charCodeAt(i) === 59 /* ; */) {
    const pStart = ++i;
    let eq = -1;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === 63) break;
      if (c === 61 && eq < 0) eq = i;
    }
    // uri-parameter = pname [ "=" pvalue ], both of paramchar: checked in place, each sliced once.
    const nameEnd = eq < 0 ? i : eq;
    if (nameEnd === pStart || !allIn(s, PARAMCHAR, pStart, nameEnd)) return null;
    if (eq >= 0 && (eq + 1 === i || !allIn(s, PARAMCHAR, eq + 1, i))) return null;
    params = addParam(params, paramName(s, pStart, nameEnd), eq < 0 ? null : s.slice(eq + 1, i));
  }
  let headers: UriHeaders = NO_HEADERS;
  if (i < s.length) {
    if (s.charCodeAt(i) !== 63 /* ? */) return null;
    const list: Array<[string, string]> = [];
    for (const pair of s.slice(i + 1).split('&')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) return null;
      const hname = pair.slice(0, eq);
      const hvalue = pair.slice(eq + 1);
      if (!allIn(hname, HNV) || !allIn(hvalue, HNV)) return null;
      list.push([hname, hvalue]);
    }
    headers = list;
  }
  return { scheme, user, password, host, port, params: params === null ? EMPTY_PARAMS : new ParamList(params), headers };
}

function parseTelUri(s: string, start: number): TelUri | null {
  const semi = s.indexOf(';', start);
  const number = semi < 0 ? s.slice(start) : s.slice(start, semi);
  // global-number "+" digits with visual separators, or local-number with hex digits, "*", "#".
  if (!/^\+?[0-9A-Fa-f*#().-]+$/.test(number) || !/[0-9A-Fa-f*#]/.test(number)) return null;
  if (semi < 0) return { scheme: 'tel', number, params: EMPTY_PARAMS };
  const params = new Map<string, string | null>();
  for (const part of s.slice(semi + 1).split(';')) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!name || !allIn(name, PARAMCHAR)) return null;
    const value = eq < 0 ? null : part.slice(eq + 1);
    if (value !== null && !allIn(value, PARAMCHAR)) return null;
    params.set(name.toLowerCase(), value);
  }
  return { scheme: 'tel', number, params };
}

/** IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each at most 255. Scans without allocating. */
export function isIPv4(h: string): boolean {
  const n = h.length;
  if (n < 7 || n > 15) return false;
  let dots = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const c = h.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return false;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits > 3) return false;
      value = value * 10 + (c - 48);
      if (value > 255) return false;
    } else return false;
  }
  return dots === 3 && digits > 0;
}

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/**
 * hostname = *( domainlabel "." ) toplabel [ "." ]; labels are alphanumerics and inner hyphens, at most 63 long,
 * and the top label starts with a letter. Scans without allocating.
 */
export function isHostname(h: string): boolean {
  let n = h.length;
  if (n > 0 && h.charCodeAt(n - 1) === 46) n--; // a fully qualified name's trailing dot
  if (n === 0) return false;
  let labelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = h.charCodeAt(i);
    if (c === 46) {
      // A label ends: not empty, not ending in '-', not too long.
      if (i === labelStart || h.charCodeAt(i - 1) === 45 || i - labelStart > 63) return false;
      labelStart = i + 1;
    } else if (c === 45 /* - */) {
      if (i === labelStart) return false;
    } else if (!isAlnum(c)) return false;
  }
  if (n === labelStart || h.charCodeAt(n - 1) === 45 || n - labelStart > 63) return false;
  const top = h.charCodeAt(labelStart);
  return (top >= 65 && top <= 90) || (top >= 97 && top <= 122);
}

/**
 * An IPv6 address (RFC 4291 text form, with an optional embedded IPv4 tail), without brackets. The RFC 3261 ABNF
 * also admits a "::" directly followed by ":" IPv4address ("2001:db8:::192.0.2.1"); RFC 5118 §4.10 asks
 * implementations to tolerate that bug, so it is read as "::".
 */
export function isIPv6(h: string): boolean {
  if (!h || h.length > 46 || !/^[0-9A-Fa-f:.]+$/.test(h)) return false;
  const triple = h.indexOf(':::');
  if (triple >= 0) {
    if (h.indexOf(':::', triple + 1) >= 0 || h.indexOf('.') < 0 || !isIPv4(h.slice(triple + 3))) return false;
    h = h.slice(0, triple) + '::' + h.slice(triple + 3);
  }
  if (h.length > 45) return false;
  const dbl = h.indexOf('::');
  if (dbl >= 0 && h.indexOf('::', dbl + 1) >= 0) return false;
  let groups = h.split(':');
  let v4 = false;
  const last = groups[groups.length - 1];
  if (last.includes('.')) {
    if (!isIPv4(last)) return false;
    v4 = true;
    groups = groups.slice(0, -1);
  }
  const want = v4 ? 6 : 8;
  if (dbl >= 0) {
    const nonEmpty = groups.filter((g) => g !== '');
    if (nonEmpty.length > want - 1) return false;
    if (!nonEmpty.every((g) => g.length <= 4)) return false;
    // Empty groups are only allowed as part of the single '::'.
    const s = h.startsWith('::') ? 1 : 0;
    const e = h.endsWith('::') ? 1 : 0;
    return groups.filter((g) => g === '').length <= 1 + s + e;
  }
  return groups.length === want && groups.every((g) => g.length >= 1 && g.length <= 4);
}

export function formatUri(u: Uri): string {
  if (isSipUri(u)) {
    let out = u.scheme + ':';
    if (u.user !== null) out += u.user + (u.password !== null ? ':' + u.password : '') + '@';
    out += u.host;
    if (u.port !== null) out += ':' + u.port;
    out += serializeParams(u.params);
    if (u.headers.length) out += '?' + u.headers.map(([k, v]) => k + '=' + v).join('&');
    return out;
  }
  if (isTelUri(u)) {
    let out = 'tel:' + u.number;
    out += serializeParams(u.params);
    return out;
  }
  return (u as OtherUri).raw;
}

/** Host compared case-insensitively, without brackets for IPv6. */
export function normalizeHost(host: string): string {
  return host.toLowerCase();
}

/**
 * The address-of-record key of a SIP URI: unescaped user "@" lower-case host (RFC 3261 §10.3 step 5: the AOR
 * is the To URI without parameters and port; users compare case-sensitively, hosts not).
 */
export function aorOf(u: SipUri): string {
  const user = u.user === null ? '' : unescapePercent(u.user);
  return (user ? user + '@' : '') + normalizeHost(u.host);
}

// reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / "," (RFC 2396), and "%" itself.
const KEEP_ESCAPED = charset(';/?:@&=+$,%');

/**
 * A component in the form URI comparison uses (RFC 3261 §19.1.4): "characters other than those in the reserved
 * set are equivalent to their '%' HEX HEX encoding", so those escapes are decoded; escapes of reserved
 * characters (and of "%") stay escaped, with upper-case hex.
 */
export function canonicalEscapes(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) === 37 && i + 2 < s.length && isHexAt(s, i + 1) && isHexAt(s, i + 2)) {
      const hex = s.slice(i + 1, i + 3);
      const code = parseInt(hex, 16);
      out += code < 128 && KEEP_ESCAPED[code] === 1 ? '%' + hex.toUpperCase() : String.fromCharCode(code);
      i += 2;
    } else out += s[i];
  }
  return out;
}

/** uri-parameters with names and values in comparable form (case-insensitive, escapes canonical). */
function comparableParams(p: Params): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const [k, v] of p) out.set(canonicalEscapes(k).toLowerCase(), v === null ? null : canonicalEscapes(v).toLowerCase());
  return out;
}

/** The header components as a sorted list of "name=value" (names case-insensitive, escapes canonical). */
function comparableHeaders(h: UriHeaders): string[] {
  return h.map(([k, v]) => canonicalEscapes(k).toLowerCase() + '=' + canonicalEscapes(v)).sort();
}

/**
 * SIP and SIPS URI equality per RFC 3261 §19.1.4: scheme; userinfo case-sensitively (a missing user or password
 * never matches a present one); host case-insensitively; port, and transport, user, ttl, method and maddr
 * parameters, present in both or neither; other parameters only where both have them; header components always.
 * Escapes of unreserved characters equal the characters, everywhere.
 */
export function sipUriEquals(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if ((a.user === null) !== (b.user === null)) return false;
  if (a.user !== null && canonicalEscapes(a.user) !== canonicalEscapes(b.user!)) return false;
  if ((a.password === null) !== (b.password === null)) return false;
  if (a.password !== null && canonicalEscapes(a.password) !== canonicalEscapes(b.password!)) return false;
  if (normalizeHost(a.host) !== normalizeHost(b.host)) return false;
  if (a.port !== b.port) return false;
  const pa = comparableParams(a.params);
  const pb = comparableParams(b.params);
  for (const key of ['transport', 'user', 'ttl', 'method', 'maddr']) {
    if (pa.has(key) !== pb.has(key)) return false;
  }
  for (const [k, va] of pa) {
    if (pb.has(k) && pb.get(k) !== va) return false;
  }
  const ha = comparableHeaders(a.headers);
  const hb = comparableHeaders(b.headers);
  return ha.length === hb.length && ha.every((x, i) => x === hb[i]);
}
