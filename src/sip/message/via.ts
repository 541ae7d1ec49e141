// Via (RFC 3261 §20.42, §25.1; RFC 3581 rport). One Via value; a header line may hold several, split first.

import { isTokenChar, parseParams, serializeParams, skipLws, Spellings, type Params } from './grammar.ts';
import { isHostname, isIPv4, isIPv6 } from './uri.ts';

export const MAGIC_COOKIE = 'z9hG4bK';

export interface Via {
  protocol: string;
  version: string;
  /** Upper-case transport: UDP, TCP, TLS, SCTP, WS, WSS or another token. */
  transport: string;
  host: string;
  port: number | null;
  params: Params;
}

/**
 * s[from, to) as one of `spellings` when it is written so, else `fallback` of its slice: "SIP", "2.0" and the
 * transport of every Via without a slice each (and a toUpperCase for the transport).
 */
function spelt(s: string, from: number, to: number, spellings: Spellings<string>, fallback: (t: string) => string): string {
  return spellings.lookup(s, from, to) ?? fallback(s.slice(from, to));
}

const PROTOCOLS = Spellings.of(['SIP']);
const VERSIONS = Spellings.of(['2.0']);
const TRANSPORTS = Spellings.of(['UDP', 'TCP', 'TLS', 'WS', 'WSS', 'SCTP']);
const asIs = (t: string): string => t;
const upper = (t: string): string => t.toUpperCase();

function token(s: string, i: number): number {
  while (i < s.length && isTokenChar(s.charCodeAt(i))) i++;
  return i;
}

/**
 * Parses one via-parm; null when malformed. Never throws.
 *
 * With `lenient`, a value whose sent-protocol and sent-by are well formed but whose parameters are not still
 * gives a Via, holding the parameters that could be read: enough to send a 400 back to where the request came
 * from (RFC 4475 §3.1.2.1). Callers must treat such a Via as malformed; SipMessage.viasWellFormed() tells.
 */
export function parseVia(s: string, lenient = false): Via | null {
  let i = skipLws(s, 0);
  let e = token(s, i);
  if (e === i) return null;
  const protocol = spelt(s, i, e, PROTOCOLS, asIs);
  i = skipLws(s, e);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipLws(s, i + 1);
  e = token(s, i);
  if (e === i) return null;
  const version = spelt(s, i, e, VERSIONS, asIs);
  i = skipLws(s, e);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipLws(s, i + 1);
  e = token(s, i);
  if (e === i) return null;
  const transport = spelt(s, i, e, TRANSPORTS, upper);
  i = skipLws(s, e);
  if (i === e && i < s.length) return null; // LWS required before sent-by
  let host: string;
  if (s.charCodeAt(i) === 91) {
    const close = s.indexOf(']', i);
    if (close < 0 || !isIPv6(s.slice(i + 1, close))) return null;
    host = s.slice(i, close + 1);
    i = close + 1;
  } else {
    const hs = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46) i++;
      else break;
    }
    host = s.slice(hs, i);
    if (!host || (!isHostname(host) && !isIPv4(host))) return null;
  }
  i = skipLws(s, i);
  let port: number | null = null;
  if (s.charCodeAt(i) === 58) {
    i = skipLws(s, i + 1);
    const ps = i;
    let n = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
    }
    if (i === ps || i - ps > 5) return null;
    port = n;
    // Port 0 is grammatical but names no port: a response cannot be sent there (and the socket API throws).
    if (port === 0 || port > 65535) return null;
  }
  const params = parseParams(s, i);
  if (params && viaParamsValid(params)) return { protocol, version, transport, host, port, params };
  if (!lenient) return null;
  return { protocol, version, transport, host, port, params: salvageParams(s, i) };
}

/**
 * RFC 3261 §25.1 (with RFC 3581 and RFC 5118 §4.5): ttl 0-255; maddr a host; received an IP address (an IPv6
 * one with or without brackets); rport empty or a port (1-65535: responses are sent to it).
 */
function viaParamsValid(params: Params): boolean {
  if (params.size === 0) return true;
  const rport = params.get('rport');
  if (rport != null && !isPort(rport)) return false;
  const ttl = params.get('ttl');
  if (ttl !== undefined && (ttl === null || !/^[0-9]{1,3}$/.test(ttl) || Number(ttl) > 255)) return false;
  const received = params.get('received');
  if (received !== undefined && (received === null || !isIpAddress(received))) return false;
  const maddr = params.get('maddr');
  if (maddr !== undefined && (maddr === null || !isHost(maddr))) return false;
  return true;
}

/** A port a response can be sent to: 1-65535. */
function isPort(v: string): boolean {
  if (v.length === 0 || v.length > 5) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  const n = Number(v);
  return n >= 1 && n <= 65535;
}

function isIpAddress(v: string): boolean {
  if (v.charCodeAt(0) === 91) return v.charCodeAt(v.length - 1) === 93 && isIPv6(v.slice(1, -1));
  return isIPv4(v) || isIPv6(v);
}

function isHost(v: string): boolean {
  if (v.charCodeAt(0) === 91) return v.charCodeAt(v.length - 1) === 93 && isIPv6(v.slice(1, -1));
  return isIPv4(v) || isHostname(v);
}

/** The well-formed `;name[=value]` parameters of a malformed list, skipping what cannot be read. */
function salvageParams(s: string, i: number): Params {
  const out = new Map<string, string | null>();
  for (const part of s.slice(i).split(';')) {
    const one = parseParams(';' + part, 0);
    if (one && one.size === 1) {
      const [k, v] = one.entries().next().value!;
      if (!out.has(k)) out.set(k, v);
    }
  }
  for (const [k] of out) if (!viaParamsValid(new Map([[k, out.get(k)!]]))) out.delete(k);
  return out;
}

export function formatVia(v: Via): string {
  return `${v.protocol}/${v.version}/${v.transport} ${v.host}${v.port !== null ? ':' + v.port : ''}${serializeParams(v.params)}`;
}

/** The branch parameter, or null. */
export function branchOf(v: Via): string | null {
  return v.params.get('branch') ?? null;
}

export function defaultPort(transport: string): number {
  return transport === 'TLS' || transport === 'WSS' ? 5061 : 5060;
}
