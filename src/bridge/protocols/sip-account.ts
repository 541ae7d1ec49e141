// The SIP link's account and addresses, checked before anything goes on the wire: the server (`host[:port]`), the
// user part, the Digest user name and password, the options, and the `to` of an outgoing MESSAGE. Every value here
// ends up in a header line, so each is held to the RFC 3261 grammar of the place it goes (§19.1.1, §25.1).

import { isIP } from 'node:net';
import { isHostname } from '../../sip/message/uri.ts';
import type { LinkCredential } from '../protocol.ts';
import { splitServer } from '../server-policy.ts';

export type SipTransport = 'udp' | 'tcp' | 'tls';

export interface SipAccount {
  transport: SipTransport;
  /** The name to verify the server's certificate against (and send as SNI), as written in `server`. */
  host: string;
  port: number;
  tlsVerify: boolean;
  /** The provider's domain: REGISTER's Request-URI `sip:<domain>`, and the host of our address of record. */
  domain: string;
  /** `sip:<user>@<domain>`: From and To of our REGISTER and From of our MESSAGEs. */
  aor: string;
  /** The Digest user name (RFC 7616 `username`), as text. */
  authUsername: string;
  /** Requested registration lifetime, seconds (RFC 3261 §10.2.1.1). */
  expires: number;
}

const KNOWN = new Set(['transport', 'tls_verify', 'domain', 'expires', 'auth_username']);
/** user = 1*( unreserved / escaped / user-unreserved ) (RFC 3261 §25.1), bounded. */
const USER = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2}){1,64}$/;
/** A control character (C0, DEL): never in a header line. */
const CTL = /[\0-\x1f\x7f]/;

/** A host as it goes into a SIP URI: a host name, an IPv4 address, or an IPv6 reference in brackets. */
function uriHost(host: string): string | null {
  if (isIP(host) === 4) return host;
  if (isIP(host) === 6) return `[${host}]`;
  return host.length <= 253 && isHostname(host) ? host.replace(/\.$/, '').toLowerCase() : null;
}

/** The account's server, user and options, checked; throws a RangeError saying what is wrong. */
export function parseSipCredential(c: LinkCredential): SipAccount {
  const o = c.options ?? {};
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new RangeError(`unknown SIP option ${JSON.stringify(k).slice(0, 40)}`);
  const transport = o.transport ?? 'udp';
  if (transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') throw new RangeError('option transport: udp, tcp or tls');
  const s = splitServer(c.server);
  const serverHost = s ? uriHost(s.host) : null;
  if (!s || serverHost === null) throw new RangeError('server: host or host:port');
  const port = s.port ?? (transport === 'tls' ? 5061 : 5060);
  if (port < 1) throw new RangeError('server: port 1..65535');
  if (o.tls_verify !== undefined && typeof o.tls_verify !== 'boolean') throw new RangeError('option tls_verify: true or false');
  if (o.domain !== undefined && typeof o.domain !== 'string') throw new RangeError('option domain: a host name');
  const domain = o.domain === undefined ? serverHost : uriHost(o.domain.replace(/^\[(.*)\]$/, '$1'));
  if (domain === null) throw new RangeError('option domain: a host name or address');
  const expires = o.expires ?? 600;
  if (typeof expires !== 'number' || !Number.isInteger(expires) || expires < 60 || expires > 3600) throw new RangeError('option expires: an integer 60..3600 (seconds)');
  if (!USER.test(c.username)) throw new RangeError('username: the user part of a SIP URI (RFC 3261 §25.1, at most 64 characters; the domain goes in option domain)');
  const authUsername = o.auth_username ?? c.username;
  if (typeof authUsername !== 'string' || authUsername.length === 0 || Buffer.byteLength(authUsername) > 128 || CTL.test(authUsername)) {
    throw new RangeError('option auth_username: 1..128 bytes, no control characters');
  }
  if (!c.password || Buffer.byteLength(c.password) > 300 || CTL.test(c.password)) throw new RangeError('password: 1..300 bytes, no control characters');
  return {
    transport,
    host: s.host,
    port,
    tlsVerify: o.tls_verify ?? true,
    domain,
    aor: `sip:${c.username}@${domain}`,
    authUsername,
    expires,
  };
}

/**
 * A remote address as the API takes it, `user@host` or `sip:user@host`, as the SIP URI it names; null for anything
 * else (no port, parameters, headers or password: a `to` cannot steer the request anywhere but the provider).
 */
export function parseSipAddress(to: string): string | null {
  if (to.length > 300) return null;
  const m = /^(?:sip:)?([^@]+)@(.+)$/i.exec(to);
  if (!m || !USER.test(m[1])) return null;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\]$/.exec(m[2]);
  const host = bracketed ? (isIP(bracketed[1]) === 6 ? `[${bracketed[1]}]` : null) : isIP(m[2]) === 6 ? null : uriHost(m[2]);
  return host === null ? null : `sip:${m[1]}@${host}`;
}
