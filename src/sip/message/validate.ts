// What a request must carry before any service sees it (RFC 3261 §8.1.1, §8.2; RFC 4475's invalid messages).
// The checks stop at the headers every request needs; headers only some methods use are checked by those
// methods' handlers when they read them.
//
// Hot path: every request passes here, so the single-instance headers are counted in one pass over the header
// list and the structured values read are the memoised ones the handlers use afterwards.

import { sbError, type SwitchboardError } from '../../errors.ts';
import { H } from './header-names.ts';
import type { SipMessage, SipRequest } from './message.ts';
import { isSipUri } from './uri.ts';
import { MAGIC_COOKIE } from './via.ts';

/** Methods of the IANA SIP method registry. A CSeq naming another method than one of these is not ours to judge. */
const REGISTERED_METHODS = new Set([
  'ACK', 'BYE', 'CANCEL', 'INFO', 'INVITE', 'MESSAGE', 'NOTIFY', 'OPTIONS', 'PRACK', 'PUBLISH', 'REFER', 'REGISTER',
  'SUBSCRIBE', 'UPDATE',
]);

/** Null when the request is fit to be handled; otherwise the error to answer with (see errors.ts for status). */
export function validateRequest(req: SipRequest): SwitchboardError | null {
  if (!canAnswer(req)) return sbError('SIP_ERR_MISSING_HEADER', 'no usable Via');
  // RFC 4475 §3.1.2.1: a malformed Via (at any position) makes the request malformed.
  if (!req.viasWellFormed()) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed Via');
  // RFC 4475 §3.2.1: a branch of just the magic cookie identifies no transaction; reject rather than guess.
  if (req.topVia()!.params.get('branch') === MAGIC_COOKIE) return sbError('SIP_ERR_HEADER_SYNTAX', 'Via branch is only the magic cookie');

  const uri = req.requestUri();
  if (!uri) return sbError('SIP_ERR_URI', 'malformed Request-URI');
  if (isSipUri(uri)) {
    // RFC 3261 §19.1.1 (table 1): a Request-URI carries no header components (RFC 4475 §3.1.2.11).
    if (uri.headers.length) return sbError('SIP_ERR_URI', 'header components in the Request-URI');
  } else if (uri.scheme !== 'tel') return sbError('SIP_ERR_URI_SCHEME', `URI scheme ${uri.scheme} not supported`);

  // From, To, Call-ID and CSeq exactly once; Max-Forwards at most once (RFC 4475 §3.3.8).
  let from = 0;
  let to = 0;
  let callIds = 0;
  let cseqs = 0;
  let maxForwards: string | undefined;
  let mfs = 0;
  let callId = '';
  const hs = req.headers;
  for (let i = 0; i < hs.length; i++) {
    const k = hs[i].key;
    if (k === H.from) from++;
    else if (k === H.to) to++;
    else if (k === H.callId) {
      callIds++;
      callId = hs[i].value;
    } else if (k === H.cseq) cseqs++;
    else if (k === H.maxForwards) {
      mfs++;
      maxForwards = hs[i].value;
    }
  }
  if (from !== 1 || !req.from()) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed or repeated From');
  if (to !== 1 || !req.to()) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed or repeated To');
  if (callIds !== 1 || !isCallId(callId)) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed or repeated Call-ID');
  if (cseqs !== 1) return sbError('SIP_ERR_HEADER_SYNTAX', 'repeated CSeq');
  const cseq = req.cseq();
  if (!cseq) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed CSeq');
  if (cseq.method !== req.method) {
    // RFC 4475 §3.1.2.18: for a method we do not know, "not implemented" is the more useful (and future-proof)
    // answer than judging its CSeq.
    return REGISTERED_METHODS.has(req.method) ? sbError('SIP_ERR_CSEQ_METHOD') : sbError('SIP_ERR_NOT_IMPLEMENTED', `method ${req.method} not implemented`);
  }
  if (mfs > 1) return sbError('SIP_ERR_HEADER_SYNTAX', 'repeated Max-Forwards');
  // Max-Forwards = 1*DIGIT, 0-255; leading zeros are fine (RFC 4475 §3.1.1.1 has "0068").
  if (maxForwards !== undefined && maxForwardsValue(maxForwards) < 0) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed Max-Forwards (0-255)');
  return null;
}

/** The Max-Forwards value, or -1 when it is not 1*DIGIT in 0-255. */
export function maxForwardsValue(v: string): number {
  if (v.length === 0) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
    if (n > 255) return -1;
  }
  return n;
}

/**
 * Whether a response can be sent at all: it needs a top Via with a usable sent-by to travel on (§18.2.2) and a
 * CSeq for the client to match it with (§17.1.3). From, To and Call-ID are copied when present; a request lacking
 * them is still told 400 (RFC 4475 §3.3.1). Without a Via or CSeq the request is dropped.
 */
export function canAnswer(msg: SipMessage): boolean {
  return msg.topVia() !== null && msg.get(H.cseq) !== undefined;
}

/** callid = word [ "@" word ]; word is a wide set of printable characters, no spaces. */
function isCallId(v: string): boolean {
  if (v.length === 0) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c <= 32 || c >= 127) return false;
  }
  return true;
}
