// Cuts SIP messages out of a byte stream (RFC 3261 §18.3): the header section ends at the first blank line and
// Content-Length says how many body bytes follow. Also recognises the RFC 5626 §4.4.1 keepalive "ping"
// (CRLF CRLF), which the transport answers with a "pong" (CRLF).
//
// Pipelined messages in one chunk and messages split over many chunks both work; chunks are only copied when a
// message spans them.

import { findHeaderEnd } from '../message/parse.ts';

export type FrameEvent =
  | { kind: 'message'; data: Buffer }
  | { kind: 'ping' }
  /** The stream cannot be framed any more: the connection must close after answering, if it can. */
  | { kind: 'error'; reason: 'too-large' | 'bad-length'; head: Buffer | null };

export class StreamFramer {
  private buf: Buffer | null = null;
  private readonly maxMessageSize: number;

  constructor(maxMessageSize: number) {
    this.maxMessageSize = maxMessageSize;
  }

  /** Bytes waiting for the rest of their message. */
  get pending(): number {
    return this.buf ? this.buf.length : 0;
  }

  push(chunk: Buffer, out: FrameEvent[]): void {
    const buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    this.buf = null;
    let pos = 0;
    while (pos < buf.length) {
      // Leading CRLFs: a double CRLF is a keepalive ping; a lone one is ignored (§7.5).
      if (buf[pos] === 13 || buf[pos] === 10) {
        if (buf[pos] === 13 && buf[pos + 1] === 10 && buf[pos + 2] === 13 && buf[pos + 3] === 10) {
          out.push({ kind: 'ping' });
          pos += 4;
          continue;
        }
        if (buf[pos] === 13 && pos + 3 >= buf.length) break; // could be the start of a ping; wait for more
        pos++;
        continue;
      }
      const end = findHeaderEnd(buf, pos);
      if (!end) {
        if (buf.length - pos > this.maxMessageSize) {
          out.push({ kind: 'error', reason: 'too-large', head: null });
          return;
        }
        break;
      }
      const cl = contentLengthOf(buf, pos, end.headerEnd);
      if (cl < 0) {
        out.push({ kind: 'error', reason: 'bad-length', head: buf.subarray(pos, end.bodyStart) });
        return;
      }
      const total = end.bodyStart - pos + cl;
      if (total > this.maxMessageSize) {
        out.push({ kind: 'error', reason: 'too-large', head: buf.subarray(pos, end.bodyStart) });
        return;
      }
      if (end.bodyStart + cl > buf.length) break;
      out.push({ kind: 'message', data: buf.subarray(pos, end.bodyStart + cl) });
      pos = end.bodyStart + cl;
    }
    if (pos < buf.length) {
      // Keep the tail; copy it out of the chunk so the chunk can be released.
      this.buf = pos === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(pos));
    }
  }
}

/**
 * Content-Length from the raw header section (full or compact name `l`), read from the bytes without building a
 * string; 0 when absent (a stream message without it cannot have a body), -1 when malformed or repeated with
 * different values.
 */
export function contentLengthOf(buf: Buffer, start: number, headerEnd: number): number {
  let found = -2;
  let nl = buf.indexOf(10, start);
  while (nl >= 0 && nl < headerEnd) {
    const line = nl + 1;
    const c = buf[line] | 0x20;
    let nameEnd = -1;
    if (c === 0x6c /* l */) nameEnd = line + 1;
    else if (c === 0x63 /* c */ && matchesLower(buf, line, CONTENT_LENGTH)) nameEnd = line + CONTENT_LENGTH.length;
    if (nameEnd > 0) {
      let i = nameEnd;
      while (buf[i] === 32 || buf[i] === 9) i++;
      if (buf[i] === 58 /* : */) {
        i++;
        while (buf[i] === 32 || buf[i] === 9) i++;
        let n = 0;
        let digits = 0;
        while (buf[i] >= 48 && buf[i] <= 57 && digits < 10) {
          n = n * 10 + (buf[i] - 48);
          i++;
          digits++;
        }
        while (buf[i] === 32 || buf[i] === 9) i++;
        if (digits === 0 || (buf[i] !== 13 && buf[i] !== 10)) return -1;
        if (found >= 0 && found !== n) return -1;
        found = n;
      }
    }
    nl = buf.indexOf(10, line);
  }
  return found === -2 ? 0 : found;
}

const CONTENT_LENGTH = Buffer.from('content-length', 'latin1');

function matchesLower(buf: Buffer, at: number, lower: Buffer): boolean {
  if (at + lower.length > buf.length) return false;
  // '-' already has the 0x20 bit, so OR-ing it in lower-cases letters and leaves the hyphen alone.
  for (let i = 0; i < lower.length; i++) if ((buf[at + i] | 0x20) !== lower[i]) return false;
  return true;
}
