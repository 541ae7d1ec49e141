// SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; IPv6 references per RFC 5118).
// Parsing keeps the user part as written (with its escapes) so that serialization is exact; comparison and
// address-of-record keys use the unescaped form, as §19.1.4 requires.

import { isTokenChar, unescapePercent, type Params } from './grammar.ts';

export interface SipUri {
  readonly scheme: 'sip' | 'sips';
  user: string | null;
  password: string | null;
  /** Host as written; IPv6 references keep their brackets. */
  host: string;
  port: number | null;
  params: Params;
  headers: Array<[string, string]>;
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
    while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    if (i === pStart || i - pStart > 5) return null;
    port = Number(s.slice(pStart, i));
    if (port > 65535) return null;
  }
  const params: Params = new Map();
  while (i < s.length && s.charCodeAt(i) === 59 /* ; */) {
    const pStart = ++i;
    while (i < s.length && s.charCodeAt(i) !== 59 && s.charCodeAt(i) !== 63) i++;
    const part = s.slice(pStart, i);
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!name || !allIn(name, PARAMCHAR)) return null;
    const value = eq < 0 ? null : part.slice(eq + 1);
    if (value !== null && (!value || !allIn(value, PARAMCHAR))) return null;
    params.set(name.toLowerCase(), value);
  }
  const headers: Array<[string, string]> = [];
  if (i < s.length) {
    if (s.charCodeAt(i) !== 63 /* ? */) return null;
    for (const pair of s.slice(i + 1).split('&')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) return null;
      const hname = pair.slice(0, eq);
      const hvalue = pair.slice(eq + 1);
      if (!allIn(hname, HNV) || !allIn(hvalue, HNV)) return null;
      headers.push([hname, hvalue]);
    }
  }
  return { scheme, user, password, host, port, params, headers };
}

function parseTelUri(s: string, start: number): TelUri | null {
  const semi = s.indexOf(';', start);
  const number = semi < 0 ? s.slice(start) : s.slice(start, semi);
  // global-number "+" digits with visual separators, or local-number with hex digits, "*", "#".
  if (!/^\+?[0-9A-Fa-f*#().-]+$/.test(number) || !/[0-9A-Fa-f*#]/.test(number)) return null;
  const params: Params = new Map();
  if (semi >= 0) {
    for (const part of s.slice(semi + 1).split(';')) {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      if (!name || !allIn(name, PARAMCHAR)) return null;
      const value = eq < 0 ? null : part.slice(eq + 1);
      if (value !== null && !allIn(value, PARAMCHAR)) return null;
      params.set(name.toLowerCase(), value);
    }
  }
  return { scheme: 'tel', number, params };
}

export function isIPv4(h: string): boolean {
  const parts = h.split('.');
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (p.length === 0 || p.length > 3) return false;
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (c < 48 || c > 57) return false;
    }
    if (Number(p) > 255) return false;
  }
  return true;
}

/** hostname = *( domainlabel "." ) toplabel [ "." ]; the top label starts with a letter. */
export function isHostname(h: string): boolean {
  const name = h.endsWith('.') ? h.slice(0, -1) : h;
  if (!name) return false;
  const labels = name.split('.');
  for (const label of labels) {
    if (!label || label.length > 63) return false;
    if (label.charCodeAt(0) === 45 || label.charCodeAt(label.length - 1) === 45) return false;
    for (let i = 0; i < label.length; i++) if (!isTokenChar(label.charCodeAt(i))) return false;
  }
  const top = labels[labels.length - 1];
  const c = top.charCodeAt(0);
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

export function isIPv6(h: string): boolean {
  if (!h || h.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(h)) return false;
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
    for (const [k, v] of u.params) out += v === null ? ';' + k : ';' + k + '=' + v;
    if (u.headers.length) out += '?' + u.headers.map(([k, v]) => k + '=' + v).join('&');
    return out;
  }
  if (isTelUri(u)) {
    let out = 'tel:' + u.number;
    for (const [k, v] of u.params) out += v === null ? ';' + k : ';' + k + '=' + v;
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

/** URI equality per RFC 3261 §19.1.4 for the parts registrar contact matching uses. */
export function sipUriEquals(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if ((a.user === null) !== (b.user === null)) return false;
  if (a.user !== null && unescapePercent(a.user) !== unescapePercent(b.user!)) return false;
  if ((a.password ?? '') !== (b.password ?? '')) return false;
  if (normalizeHost(a.host) !== normalizeHost(b.host)) return false;
  if (a.port !== b.port) return false;
  // transport, user, ttl, method, maddr must match when present in either; other params only when in both.
  for (const key of ['transport', 'user', 'ttl', 'method', 'maddr']) {
    const va = a.params.get(key);
    const vb = b.params.get(key);
    if ((va === undefined) !== (vb === undefined)) return false;
    if (va !== undefined && (va ?? '').toLowerCase() !== (vb ?? '').toLowerCase()) return false;
  }
  for (const [k, va] of a.params) {
    if (!b.params.has(k)) continue;
    const vb = b.params.get(k);
    if ((va ?? '').toLowerCase() !== (vb ?? '').toLowerCase()) return false;
  }
  if (a.headers.length !== b.headers.length) return false;
  return true;
}
