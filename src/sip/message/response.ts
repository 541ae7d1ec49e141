// Building responses to requests (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied, a To tag added when
// the request had none (except for 100), Content-Length from the body.

import { randomBytes } from 'node:crypto';
import { H } from './header-names.ts';
import { SipResponse, type SipRequest } from './message.ts';
import { parseNameAddr } from './name-addr.ts';
import { reasonPhrase } from './status.ts';

// To tags need only be unique, not secret: a random per-process prefix and a counter (cheaper than
// randomBytes per response on the REGISTER hot path).
const tagPrefix = randomBytes(4).toString('hex');
let tagCounter = 0;

export function newTag(): string {
  tagCounter = (tagCounter + 1) >>> 0;
  return tagPrefix + tagCounter.toString(36);
}

/**
 * A rejection from the error catalogue (src/errors.ts), the one way to answer a request with an error: the
 * catalogue's SIP status and its standard phrase, with `detail` in parentheses when given, so a phone's log says
 * what was wrong (RFC 3261 §21: phrases are free text). Headers the status needs (Min-Expires, Allow-Events,
 * WWW-Authenticate, Retry-After) are appended by the caller. test/unit/errors.test.ts keeps every status out of
 * createResponse but 1xx/2xx.
 */
export function sipError(req: SipRequest, err: { readonly code: string; readonly sip: number }, detail?: string): SipResponse {
  const status = err.sip;
  return createResponse(req, status, detail === undefined ? undefined : `${reasonPhrase(status)} (${detail})`);
}

/** A response to `req`: successes here; rejections through sipError. */
export function createResponse(req: SipRequest, status: number, reason?: string): SipResponse {
  const res = new SipResponse(status, reason ?? reasonPhrase(status));
  const hs = req.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key === H.via || h.key === H.from || h.key === H.callId || h.key === H.cseq) {
      res.headers.push({ key: h.key, name: h.name, value: h.value });
    } else if (h.key === H.to) {
      let value = h.value;
      if (status !== 100 && !toHasTag(req, value)) value += ';tag=' + newTag();
      res.headers.push({ key: h.key, name: h.name, value });
    }
  }
  // Timestamp is echoed in 100 Trying (§8.2.6.1).
  if (status === 100) {
    const ts = req.get(H.timestamp);
    if (ts !== undefined) res.append('Timestamp', ts);
  }
  return res;
}

/**
 * True when a To value carries a tag header parameter. The parsed To is used (the request's, memoised, for its
 * first To line), so a "tag" inside the URI's <> or inside a quoted parameter value does not count.
 */
function toHasTag(req: SipRequest, value: string): boolean {
  const to = value === req.get(H.to) ? req.to() : parseNameAddr(value);
  if (to) return to.params.has('tag');
  // Unparseable: answered with an error anyway; look for the parameter after the URI as best we can.
  const gt = value.lastIndexOf('>');
  const params = gt >= 0 ? value.slice(gt + 1) : value.slice(Math.max(0, value.indexOf(';')));
  return /;[ \t]*tag[ \t]*=/i.test(params);
}

// Responses sent statelessly carry a To tag of their own form, so the ACK for one is recognised without any state
// (Kamailio's sl module does the same with its sl tag): '-' never occurs in the other tags.
const statelessPrefix = tagPrefix + '-';

/** Gives a response the stateless To tag when the request had no To tag (a dialog-creating request). */
export function markStatelessTag(req: SipRequest, res: SipResponse): void {
  const to = req.get(H.to);
  if (to === undefined || toHasTag(req, to)) return;
  tagCounter = (tagCounter + 1) >>> 0;
  res.set('To', `${to};tag=${statelessPrefix}${tagCounter.toString(36)}`);
}

/** True for the To tag of a response this process sent statelessly. */
export function isStatelessTag(tag: string): boolean {
  return tag.startsWith(statelessPrefix);
}
