// Authenticating a request we handle as a proxy (MESSAGE and INVITE): RFC 3261 §22.3 — the challenge
// is 407 with Proxy-Authenticate and the answer comes in Proxy-Authorization. SipAuthenticator speaks the registrar's
// 401/Authorization; this runs it on a view of the request whose Authorization is the Proxy-Authorization (the Digest
// response covers method, digest-uri and, with auth-int, the body: all unchanged) and turns its 401 into a 407. A
// UA's own Authorization (meant for the next hop) is not ours to read and is left out of the view.

import { H } from '../sip/message/header-names.ts';
import { SipRequest } from '../sip/message/message.ts';
import type { AuthOutcome, SipAuthenticator } from './sip-authenticator.ts';

export async function authenticateAsProxy(
  authenticator: Pick<SipAuthenticator, 'authenticate'>,
  req: SipRequest,
  source: Parameters<SipAuthenticator['authenticate']>[1],
  realm: string,
  scope: string,
): Promise<AuthOutcome> {
  const view = new SipRequest(req.method, req.uri, req.version);
  for (const h of req.headers) {
    if (h.key === H.authorization) continue;
    view.headers.push(h.key === H.proxyAuthorization ? { key: H.authorization, name: 'Authorization', value: h.value } : h);
  }
  view.body = req.body;
  const outcome = await authenticator.authenticate(view, source, realm, scope);
  if (outcome.ok || outcome.response.status !== 401) return outcome;
  const res = outcome.response;
  res.status = 407;
  res.reason = 'Proxy Authentication Required';
  for (let i = 0; i < res.headers.length; i++) {
    const h = res.headers[i];
    if (h.key === H.wwwAuthenticate) res.headers[i] = { key: H.proxyAuthenticate, name: 'Proxy-Authenticate', value: h.value };
  }
  return outcome;
}
