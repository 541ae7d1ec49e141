// Framing and parsing of one SIP message (RFC 3261 §7, §18.3, §25).
//
// Hot path: a REGISTER is parsed on every request, so this file avoids regular expressions and per-header
// allocations beyond the name and value slices. Only the start line and the header *names* are examined here;
// values are parsed on first use (message.ts). Semantic checks of the mandatory headers live in validate.ts.
//
// Measured with bench/parse.bench.ts (a SIPp REGISTER with Digest credentials, parse / + validate / + serialize on
// one core); the target is at least 250,000 REGISTER parses per second.

import { Errors, SwitchboardError } from '../../errors.ts';
import { headerKey, H } from './header-names.ts';
import { equalsAt, isLws, isTokenChar, METHODS, Spellings, trimLws } from './grammar.ts';
import { SipRequest, SipResponse, EMPTY_BODY, type SipMessage } from './message.ts';

export class SipParseError extends SwitchboardError {
  /** What could be read before the failure: enough, perhaps, to answer 400 (see validate.ts). */
  readonly partial: SipMessage | null;
  constructor(code: keyof typeof Errors, message: string, partial: SipMessage | null) {
    super(Errors[code], message);
    this.partial = partial;
  }
}

/**
 * The canonical spellings nearly every client sends, with their keys. A header named so is matched in place and
 * takes the constant as its name, so neither the name's slice nor a toLowerCase is made (ten to fourteen strings
 * fewer per request), and its characters need no token check.
 */
const CANONICAL = new Spellings<readonly [string, string]>(
  (
    [
      ['To', H.to], ['Via', H.via], ['From', H.from], ['CSeq', H.cseq], ['Call-ID', H.callId], ['Contact', H.contact],
      ['Expires', H.expires], ['User-Agent', H.userAgent], ['Max-Forwards', H.maxForwards], ['Content-Type', H.contentType],
      ['Authorization', H.authorization], ['Content-Length', H.contentLength], ['Supported', H.supported],
      ['Allow', H.allow], ['Route', H.route], ['Record-Route', H.recordRoute], ['Event', H.event], ['Accept', H.accept],
      ['Path', H.path], ['Require', H.require], ['Allow-Events', H.allowEvents],
    ] as const
  ).map(([spelling, key]): [string, readonly [string, string]] => [spelling, [spelling, key]]),
);

const SIP_2_0 = 'SIP/2.0';

/** The largest message decoded whole (see parseMessage): a REGISTER, a SUBSCRIBE, an INVITE with its SDP. */
const WHOLE_MESSAGE = 2048;

/** Exact spelling → key for the names CANONICAL does not know, so a repeated one skips toLowerCase. Bounded against floods. */
const keyBySpelling = new Map<string, string>();
function keyFor(name: string): string {
  let key = keyBySpelling.get(name);
  if (key === undefined) {
    key = headerKey(name);
    if (keyBySpelling.size < 512) keyBySpelling.set(name, key);
  }
  return key;
}

// The blank line's two spellings as buffers: a string needle is encoded into a new Buffer on every indexOf
// (0.37 -> 0.26 us for the two searches over a 590-byte REGISTER).
const LF_CRLF = Buffer.from('\n\r\n', 'latin1');
const LF_LF = Buffer.from('\n\n', 'latin1');

/**
 * Where the header section ends (just past the last header line's text, before its line end) and the body
 * starts, or null when the blank line has not arrived. Lines may end in CRLF or a bare LF, in any mix, so the blank
 * line is "\n\r\n" or "\n\n" after the last header line's LF.
 */
export function findHeaderEnd(buf: Buffer, from = 0): { headerEnd: number; bodyStart: number } | null {
  const crlf = buf.indexOf(LF_CRLF, from);
  const lf = buf.indexOf(LF_LF, from);
  let nl: number;
  let bodyStart: number;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) {
    nl = crlf;
    bodyStart = crlf + 3;
  } else if (lf >= 0) {
    nl = lf;
    bodyStart = lf + 2;
  } else return null;
  return { headerEnd: nl > from && buf[nl - 1] === 13 ? nl - 1 : nl, bodyStart };
}

/** Content-Length value: digits only, at most 10 of them; -1 when malformed. */
export function parseContentLength(v: string): number {
  if (v.length === 0 || v.length > 10) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n;
}

/**
 * Parses one message from `buf`. On a datagram (`stream` false) the datagram is the message: a missing
 * Content-Length means the body runs to the end, a larger one is an error, a smaller one truncates (§18.3).
 * On a stream the framer has already cut exactly one message, so the body is what follows the headers.
 * Throws SipParseError; never anything else.
 */
export function parseMessage(buf: Buffer, stream = false): SipMessage {
  let start = 0;
  // §7.5: CRLFs before the start line are ignored.
  while (start < buf.length && (buf[start] === 13 || buf[start] === 10)) start++;
  if (start >= buf.length) throw new SipParseError('SIP_ERR_START_LINE', 'empty message', null);

  // RFC 3261 §25.1: header values are TEXT-UTF8 and LWS; a bare CR, a NUL or another control character (HTAB
  // aside) in the start line or a header is malformed, and echoed or stored it could split lines downstream (a
  // 400's copy of Via/From/To, the User-Agent and Path exported to Kazoo). One pass over the bytes keeps a clean
  // message on its fast path; only a message that has such a byte pays for finding where (hasCtl below).
  //
  // A small clean message (every line ending in LF or CRLF, no other control byte, body included) is decoded whole,
  // and its header section ends at the first empty line the line loop below meets: searching the buffer for the
  // blank line first (findHeaderEnd, two scans of the whole message) was 0.5 us of each REGISTER's parse in
  // bench:hotpath's profile. Any other message takes the exact route, header range first and the check over the
  // header bytes alone: one with a stray control byte (a binary body's included), and one beyond WHOLE_MESSAGE
  // bytes, whose body would cost more to check byte by byte than the search saves and would be held, as text, by
  // every header value sliced from it.
  let tainted = buf.length - start > WHOLE_MESSAGE || mayHaveCtl(buf, start, buf.length);
  const whole = !tainted;
  let s: string;
  /** Where the body starts: found by the line loop on a clean message (the buffer's end when no empty line comes). */
  let bodyStart = buf.length;
  if (whole) s = buf.toString('latin1', start);
  else {
    const end = findHeaderEnd(buf, start);
    const headerEnd = end ? end.headerEnd : buf.length;
    if (end) bodyStart = end.bodyStart;
    s = buf.toString('latin1', start, headerEnd);
    tainted = start < headerEnd && mayHaveCtl(buf, start, headerEnd + (end && buf[headerEnd] === 13 ? 1 : 0));
  }

  let eol = s.indexOf('\n');
  if (eol < 0) eol = s.length;
  const startLine = s.charCodeAt(eol - 1) === 13 ? s.slice(0, eol - 1) : s.slice(0, eol);
  let msg: SipMessage;
  let startError: SipParseError | null = null;
  if (startLine.startsWith('SIP/')) {
    const sp1 = startLine.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : startLine.indexOf(' ', sp1 + 1);
    const version = sp1 < 0 ? startLine : startLine.slice(0, sp1);
    const codeText = sp1 < 0 ? '' : sp2 < 0 ? startLine.slice(sp1 + 1) : startLine.slice(sp1 + 1, sp2);
    const status = codeText.length === 3 ? parseContentLength(codeText) : -1;
    if (status < 100 || status > 699) {
      throw new SipParseError('SIP_ERR_START_LINE', 'malformed status line', null);
    }
    msg = new SipResponse(status, sp2 < 0 ? '' : startLine.slice(sp2 + 1), version);
    if (version !== 'SIP/2.0') {
      throw new SipParseError(isVersion(version) ? 'SIP_ERR_VERSION' : 'SIP_ERR_START_LINE', 'bad SIP version in response', null);
    }
  } else {
    const sp1 = startLine.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : startLine.indexOf(' ', sp1 + 1);
    const method = sp1 < 0 ? startLine : (METHODS.lookup(startLine, 0, sp1) ?? startLine.slice(0, sp1));
    const uri = sp2 < 0 ? '' : startLine.slice(sp1 + 1, sp2);
    const version = sp2 < 0 ? '' : startLine.length - sp2 - 1 === 7 && equalsAt(startLine, sp2 + 1, SIP_2_0) ? SIP_2_0 : startLine.slice(sp2 + 1);
    const req = new SipRequest(method, uri, version);
    msg = req;
    if (!isMethod(method)) {
      // Not even a method: nothing here is SIP we can answer.
      throw new SipParseError('SIP_ERR_START_LINE', 'malformed request line', null);
    }
    if (sp2 < 0 || uri.length === 0 || hasLws(uri) || (tainted && hasCtl(startLine, 0, startLine.length))) {
      startError = new SipParseError('SIP_ERR_START_LINE', 'malformed Request-Line', msg);
    } else if (version.toUpperCase() !== 'SIP/2.0') {
      startError = isVersion(version)
        ? new SipParseError('SIP_ERR_VERSION', `SIP version ${version} not supported`, msg)
        : new SipParseError('SIP_ERR_START_LINE', 'malformed SIP-Version', msg);
    }
  }

  // Header lines; a line starting with SP or HT continues the previous one (§7.3.1 folding).
  const headers = msg.headers;
  let contentLengths = 0;
  /** The first header refused for a control character: left out of the message, so a 400 cannot echo it. */
  let ctlHeader: string | null = null;
  /** Whether the last header line was left out (its continuation lines go with it). */
  let dropped = false;
  let pos = eol + 1;
  while (pos < s.length) {
    let next = s.indexOf('\n', pos);
    if (next < 0) next = s.length;
    const lineEnd = s.charCodeAt(next - 1) === 13 ? next - 1 : next;
    if (lineEnd === pos && whole) {
      // The empty line: the body follows it. (Text cut at the header's end has none.)
      bodyStart = start + next + 1;
      break;
    }
    const first = s.charCodeAt(pos);
    if (first === 32 || first === 9) {
      const last = headers[headers.length - 1];
      if (!last && !dropped) throw new SipParseError('SIP_ERR_HEADER_SYNTAX', 'continuation line before any header', msg);
      if (dropped) {
        pos = next + 1;
        continue;
      }
      if (tainted && hasCtl(s, pos, lineEnd)) {
        ctlHeader ??= last.name;
        headers.pop();
        dropped = true;
        pos = next + 1;
        continue;
      }
      const more = trimLws(s.slice(pos, lineEnd));
      if (more) last.value = last.value ? last.value + ' ' + more : more;
    } else if (lineEnd > pos) {
      const colon = s.indexOf(':', pos);
      if (colon < 0 || colon >= lineEnd) {
        throw new SipParseError('SIP_ERR_HEADER_SYNTAX', 'header line without a colon', msg);
      }
      let nameEnd = colon;
      while (nameEnd > pos && (s.charCodeAt(nameEnd - 1) === 32 || s.charCodeAt(nameEnd - 1) === 9)) nameEnd--;
      if (nameEnd === pos) throw new SipParseError('SIP_ERR_HEADER_SYNTAX', 'empty header name', msg);
      const canonical = CANONICAL.lookup(s, pos, nameEnd);
      if (canonical === undefined) {
        for (let i = pos; i < nameEnd; i++) {
          if (!isTokenChar(s.charCodeAt(i))) throw new SipParseError('SIP_ERR_HEADER_SYNTAX', 'invalid header name', msg);
        }
      }
      const name = canonical === undefined ? s.slice(pos, nameEnd) : canonical[0];
      if (tainted && hasCtl(s, colon + 1, lineEnd)) {
        ctlHeader ??= name;
        dropped = true;
        pos = next + 1;
        continue;
      }
      dropped = false;
      const key = canonical === undefined ? keyFor(name) : canonical[1];
      if (key === H.contentLength) contentLengths++;
      // The value without surrounding LWS, sliced once.
      let vs = colon + 1;
      let ve = lineEnd;
      while (vs < ve && isLws(s.charCodeAt(vs))) vs++;
      while (ve > vs && isLws(s.charCodeAt(ve - 1))) ve--;
      headers.push({ key, name, value: s.slice(vs, ve) });
    }
    pos = next + 1;
  }

  // Body framing.
  const available = buf.length - bodyStart;
  const clText = contentLengths === 0 ? undefined : msg.get(H.contentLength);
  if (clText !== undefined) {
    const cl = parseContentLength(clText);
    if (cl < 0) throw new SipParseError('SIP_ERR_CONTENT_LENGTH', 'malformed Content-Length', msg);
    // Content-Length appears once; repeated with another value, the framing is undefined (RFC 4475 §3.3.9).
    if (contentLengths > 1) {
      for (const v of msg.getAll(H.contentLength)) {
        if (parseContentLength(v) !== cl) throw new SipParseError('SIP_ERR_CONTENT_LENGTH', 'conflicting Content-Length values', msg);
      }
    }
    if (cl > available) {
      throw new SipParseError('SIP_ERR_CONTENT_LENGTH', 'Content-Length larger than the message', msg);
    }
    msg.body = cl === 0 ? EMPTY_BODY : buf.subarray(bodyStart, bodyStart + cl);
  } else if (available > 0) {
    if (stream) throw new SipParseError('SIP_ERR_CONTENT_LENGTH', 'Content-Length required on a stream', msg);
    msg.body = buf.subarray(bodyStart);
  }
  if (startError) throw startError;
  if (ctlHeader !== null) throw new SipParseError('SIP_ERR_HEADER_SYNTAX', `control character in ${ctlHeader.slice(0, 64)}`, msg);
  return msg;
}

/**
 * A control character other than HTAB, or a CR not starting a line end (a bare CR), indexed by a byte and the
 * next (first | second << 8). Bytes 0x80-0xff are UTF-8's, so only C0 and DEL count. One table load per byte
 * pair: measured on this (shared, loaded) 2-core machine at ~350 ns for bench:parse's 590-byte REGISTER, against
 * ~800 ns for a regular expression with the same classes and ~1 µs for a charCodeAt loop over the string.
 */
const CTL_PAIR = (() => {
  const t = new Uint8Array(65536);
  for (let a = 0; a < 256; a++) {
    const ctl = (a < 32 && a !== 9 && a !== 10 && a !== 13) || a === 127;
    for (let b = 0; b < 256; b++) t[a | (b << 8)] = ctl || (a === 13 && b !== 10) ? 1 : 0;
  }
  return t;
})();

/**
 * Whether buf[from, to) may hold a forbidden control byte: exact, except that a quoted-pair's escaped control
 * byte also counts (hasCtl tells those apart). The last byte of the range is only the second of a pair.
 */
function mayHaveCtl(buf: Buffer, from: number, to: number): boolean {
  let x = 0;
  let prev = buf[from];
  for (let i = from + 1; i < to; i++) {
    const c = buf[i];
    x |= CTL_PAIR[prev | (c << 8)];
    prev = c;
  }
  return x !== 0 || CTL_PAIR[prev | (10 << 8)] !== 0;
}

/**
 * A forbidden control byte in s[from, to) (one header line without its line end). A quoted-pair (a backslash and
 * any byte but CR and LF, §25.1) may escape one inside a quoted string or comment: RFC 4475's intmeth has NUL,
 * BEL and DEL so.
 */
function hasCtl(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 13 || c === 10) return true;
    if ((c < 32 && c !== 9) || c === 127) {
      if (i === 0 || s.charCodeAt(i - 1) !== 92) return true;
    }
  }
  return false;
}

/** Method = token, of any length (RFC 4475 intmeth's is 43 characters long). */
function isMethod(m: string): boolean {
  if (m.length === 0) return false;
  for (let i = 0; i < m.length; i++) if (!isTokenChar(m.charCodeAt(i))) return false;
  return true;
}

function isVersion(v: string): boolean {
  return /^SIP\/[0-9]+\.[0-9]+$/i.test(v);
}

function hasLws(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 9 || c === 13 || c === 10) return true;
  }
  return false;
}
