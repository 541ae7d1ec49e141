// Checks a user agent server makes before its own logic, shared by the registrar and presence (as Kamailio's
// registrar and presence modules share sl/rr helpers): the Request-URI names a domain we serve, a lifetime below
// the minimum gets 423 with Min-Expires, and our own Contact for the dialogs we accept.

import { Errors } from '../errors.ts';
import { isSipUri, type SipUri } from './message/uri.ts';
import type { SipRequest, SipResponse } from './message/message.ts';
import { sipError } from './message/response.ts';
import type { TransportName } from './transport/types.ts';

/**
 * RFC 3261 §10.3 step 1 (and §8.2.2.1 for other requests): the Request-URI is a SIP URI (416 otherwise) whose host
 * is a served domain or this server itself (404 otherwise). `realms` holds the served domains, lower-case.
 */
export function servedRequestUri(req: SipRequest, realms: ReadonlySet<string>, isLocalHost: (host: string) => boolean): SipUri | SipResponse {
  const ruri = req.requestUri();
  if (!ruri || !isSipUri(ruri)) return sipError(req, Errors.SIP_ERR_URI_SCHEME);
  const host = ruri.host.toLowerCase();
  if (!realms.has(host) && !isLocalHost(host)) return sipError(req, Errors.REG_ERR_NOT_OUR_DOMAIN, 'domain not served here');
  return ruri;
}

/** 423 Interval Too Brief with the Min-Expires the client should ask for instead (RFC 3261 §10.3 step 7, RFC 6665 §4.2.1.1). */
export function intervalTooBrief(req: SipRequest, minExpires: number): SipResponse {
  const res = sipError(req, Errors.SIP_ERR_INTERVAL_TOO_BRIEF);
  res.append('Min-Expires', String(minExpires));
  return res;
}

/** Our Contact for dialogs over `transport` at the listener's address (default port 5060 when none is bound). */
export function ownContact(transport: TransportName, address: { host: string; port: number } | null): string {
  const a = address ?? { host: '127.0.0.1', port: 5060 };
  const host = a.host.indexOf(':') >= 0 ? `[${a.host}]` : a.host;
  return `<sip:${host}:${a.port}${transport === 'UDP' ? '' : `;transport=${transport.toLowerCase()}`}>`;
}
