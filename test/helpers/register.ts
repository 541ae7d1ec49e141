// Registering over real SIP from tests: REGISTER, answer the 401 with Digest, return the final response.

import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from './sip-client.ts';

export interface RegisterOptions {
  user: string;
  password: string;
  domain: string;
  contact?: string | string[];
  expires?: number;
  callId?: string;
  cseq?: number;
  headers?: Array<[string, string]>;
  authUser?: string;
  /** UDP: retransmit like a phone (sip-client.ts request) for up to this many ms, instead of one try of 3 s. */
  retransmitMs?: number;
}

export async function register(c: SipTestClient, o: RegisterOptions): Promise<SipResponseView> {
  const callId = o.callId ?? `reg-${o.user}-${Math.random().toString(36).slice(2)}@test`;
  const cseq = o.cseq ?? 1;
  const contact = o.contact ?? `<sip:${o.user}@127.0.0.1:${c.localPort};transport=${c.transport.toLowerCase()}>`;
  const headers: Array<[string, string]> = [...(o.headers ?? [])];
  if (o.expires !== undefined) headers.push(['Expires', String(o.expires)]);
  const spec = { method: 'REGISTER', uri: `sip:${o.domain}`, from: `<sip:${o.user}@${o.domain}>`, to: `<sip:${o.user}@${o.domain}>`, callId, contact };
  const send = (msg: string) => (o.retransmitMs ? c.request(msg, o.retransmitMs, { retransmit: true }) : c.request(msg));
  const first = await send(buildRequest(c, { ...spec, cseq, headers }));
  if (first.status !== 401) return first;
  const challenge = parseChallenge(first.header('WWW-Authenticate')!);
  const auth = digestAuthorization(challenge, { username: o.authUser ?? o.user, password: o.password, method: 'REGISTER', uri: `sip:${o.domain}` });
  return send(buildRequest(c, { ...spec, cseq: cseq + 1, headers: [...headers, ['Authorization', auth]] }));
}
