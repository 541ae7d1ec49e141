// Callers authenticate to the proxy with Proxy-Authorization and are challenged with 407 Proxy-Authenticate
// (RFC 3261 §22.3), under exactly the rules REGISTER meets: the same SipAuthenticator (algorithms, stateless nonces,
// nonce counts, lockouts, challenge rate limit, Bearer). It reads Authorization and answers 401, so it is given a
// view of the request whose Authorization lines are the Proxy-Authorization ones, and its 401 becomes a 407.

import type { SipAuthenticator, AuthOutcome } from '../identity/sip-authenticator.ts';
import { H } from '../sip/message/header-names.ts';
import { SipRequest } from '../sip/message/message.ts';
import type { Source } from '../sip/transport/types.ts';

export async function authenticateCaller(auth: SipAuthenticator, req: SipRequest, source: Source, realm: string): Promise<AuthOutcome> {
  const view = new SipRequest(req.method, req.uri, req.version);
  for (const h of req.headers) {
    if (h.key === H.authorization) continue;
    if (h.key === H.proxyAuthorization) view.append('Authorization', h.value);
    else view.headers.push(h);
  }
  view.body = req.body;
  const outcome = await auth.authenticate(view, source, realm, 'sip.register');
  if (outcome.ok || outcome.response.status !== 401) return outcome;
  const res = outcome.response;
  res.status = 407;
  res.reason = 'Proxy Authentication Required';
  const challenges = res.getAll(H.wwwAuthenticate);
  res.remove(H.wwwAuthenticate);
  for (const c of challenges) res.append('Proxy-Authenticate', c);
  return outcome;
}
