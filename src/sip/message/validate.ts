// What a request must carry before any service sees it (RFC 3261 §8.1.1, §8.2; RFC 4475's invalid messages).
// The checks stop at the headers every request needs; headers only some methods use are checked by those
// methods' handlers when they read them.

import { sbError, type SwitchboardError } from '../../errors.ts';
import { H } from './header-names.ts';
import type { SipMessage, SipRequest } from './message.ts';
import { isSipUri } from './uri.ts';

/** Null when the request is fit to be handled; otherwise the error to answer with (see errors.ts for status). */
export function validateRequest(req: SipRequest): SwitchboardError | null {
  if (!canAnswer(req)) return sbError('SIP_ERR_MISSING_HEADER', 'no usable Via');
  const uri = req.requestUri();
  if (!uri) return sbError('SIP_ERR_URI', 'malformed Request-URI');
  if (!isSipUri(uri) && uri.scheme !== 'tel') return sbError('SIP_ERR_URI_SCHEME', `URI scheme ${uri.scheme} not supported`);
  if (req.getAll(H.from).length !== 1 || !req.from()) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed or repeated From');
  if (req.getAll(H.to).length !== 1 || !req.to()) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed or repeated To');
  const callIds = req.getAll(H.callId);
  if (callIds.length !== 1 || !isCallId(callIds[0])) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed or repeated Call-ID');
  if (req.getAll(H.cseq).length !== 1) return sbError('SIP_ERR_HEADER_SYNTAX', 'repeated CSeq');
  const cseq = req.cseq();
  if (!cseq) return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed CSeq');
  if (cseq.method !== req.method) return sbError('SIP_ERR_CSEQ_METHOD');
  const mfs = req.getAll(H.maxForwards);
  if (mfs.length > 1 || (mfs.length === 1 && !/^[0-9]{1,3}$/.test(mfs[0]))) {
    return sbError('SIP_ERR_HEADER_SYNTAX', 'malformed Max-Forwards');
  }
  if (mfs.length === 1 && Number(mfs[0]) > 255) return sbError('SIP_ERR_HEADER_SYNTAX', 'Max-Forwards above 255');
  return null;
}

/**
 * Whether a response can be formed at all: it needs a Via to travel on (§18.2.2) and the headers a response
 * must copy (§8.2.6.2). Without them the request is dropped.
 */
export function canAnswer(msg: SipMessage): boolean {
  if (msg.topVia() === null) return false;
  // A response with a Via that failed to parse further down could still be routed (only the top one is used).
  return msg.get(H.callId) !== undefined && msg.get(H.cseq) !== undefined && msg.get(H.from) !== undefined && msg.get(H.to) !== undefined;
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
