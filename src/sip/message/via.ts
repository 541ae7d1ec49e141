// Via (RFC 3261 §20.42, §25.1; RFC 3581 rport). One Via value; a header line may hold several, split first.

import { isTokenChar, parseParams, serializeParams, skipLws, type Params } from './grammar.ts';
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

function token(s: string, i: number): number {
  while (i < s.length && isTokenChar(s.charCodeAt(i))) i++;
  return i;
}

/** Parses one via-parm; null when malformed. Never throws. */
export function parseVia(s: string): Via | null {
  let i = skipLws(s, 0);
  let e = token(s, i);
  if (e === i) return null;
  const protocol = s.slice(i, e);
  i = skipLws(s, e);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipLws(s, i + 1);
  e = token(s, i);
  if (e === i) return null;
  const version = s.slice(i, e);
  i = skipLws(s, e);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipLws(s, i + 1);
  e = token(s, i);
  if (e === i) return null;
  const transport = s.slice(i, e).toUpperCase();
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
    if (!host || (!isIPv4(host) && !isHostname(host))) return null;
  }
  i = skipLws(s, i);
  let port: number | null = null;
  if (s.charCodeAt(i) === 58) {
    i = skipLws(s, i + 1);
    const ps = i;
    while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    if (i === ps || i - ps > 5) return null;
    port = Number(s.slice(ps, i));
    if (port > 65535) return null;
  }
  const params = parseParams(s, i);
  if (!params) return null;
  // RFC 3261 §25.1: ttl 0-255, received an IP address, rport empty or a port.
  const rport = params.get('rport');
  if (rport != null && !/^[0-9]{1,5}$/.test(rport)) return null;
  return { protocol, version, transport, host, port, params };
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
