// Cuts SIP messages out of a byte stream (RFC 3261 §18.3): the header section ends at the first blank line and
// Content-Length says how many body bytes follow. Also recognises the RFC 5626 §4.4.1 keepalive "ping"
// (CRLF CRLF), which the transport answers with a "pong" (CRLF).
//
// Pipelined messages in one chunk and messages split over many chunks both work. Bytes are copied only when a
// message spans chunks, and then into a buffer that grows geometrically, with the search for the blank line
// resuming where it stopped: the work is linear in the bytes received however they are split (a peer sending a
// large message a byte at a time must not cost quadratic time).

import { findHeaderEnd } from '../message/parse.ts';

export type FrameEvent =
  | { kind: 'message'; data: Buffer }
  | { kind: 'ping' }
  /** The stream cannot be framed any more: the connection must close after answering, if it can. */
  | { kind: 'error'; reason: 'too-large' | 'bad-length'; head: Buffer | null };

export class StreamFramer {
  private readonly maxMessageSize: number;
  /**
   * The bytes of an incomplete message at [0, len), with room to grow. Never handed out: a message cut from it
   * takes the buffer with it (store becomes null), so emitted messages are never overwritten.
   */
  private store: Buffer | null = null;
  private len = 0;
  /** How many pending bytes were searched for the blank line already, without finding it. */
  private scanned = 0;
  /** The pending message's total length once its header section has been read, else -1. */
  private need = -1;

  constructor(maxMessageSize: number) {
    this.maxMessageSize = maxMessageSize;
  }

  /** Bytes waiting for the rest of their message. */
  get pending(): number {
    return this.len;
  }

  push(chunk: Buffer, out: FrameEvent[]): void {
    let buf: Buffer;
    let owned: boolean;
    if (this.len === 0) {
      buf = chunk;
      owned = false;
    } else {
      this.append(chunk);
      buf = this.store!.subarray(0, this.len);
      owned = true;
    }
    // The resume state describes the message at offset 0 of the pending bytes.
    let scanned = this.scanned;
    let need = this.need;
    this.scanned = 0;
    this.need = -1;
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      if (need < 0) {
        // Leading CRLFs: a double CRLF is a keepalive ping; a lone one is ignored (§7.5).
        const c = buf[pos];
        if (c === 13 || c === 10) {
          if (c === 13 && buf[pos + 1] === 10 && buf[pos + 2] === 13 && buf[pos + 3] === 10) {
            out.push({ kind: 'ping' });
            pos += 4;
            continue;
          }
          if (c === 13 && pos + 3 >= end) break; // could be the start of a ping; wait for more
          pos++;
          continue;
        }
        // The blank line may straddle the end of what was searched before: back up by its length.
        const head = findHeaderEnd(buf, scanned > 3 ? pos + scanned - 3 : pos);
        if (!head) {
          if (end - pos > this.maxMessageSize) return this.fail(out, 'too-large', null);
          scanned = end - pos;
          break;
        }
        const cl = contentLengthOf(buf, pos, head.headerEnd);
        if (cl < 0) return this.fail(out, 'bad-length', buf.subarray(pos, head.bodyStart));
        need = head.bodyStart - pos + cl;
        if (need > this.maxMessageSize) return this.fail(out, 'too-large', buf.subarray(pos, head.bodyStart));
      }
      if (end - pos < need) break;
      out.push({ kind: 'message', data: buf.subarray(pos, pos + need) });
      if (owned) this.store = null; // the message holds on to that memory now
      pos += need;
      need = -1;
      scanned = 0;
    }
    if (pos >= end) {
      this.len = 0;
      return;
    }
    this.keep(buf, pos, end, owned);
    this.scanned = scanned;
    this.need = need;
  }

  /** Appends a chunk to the pending bytes, growing the store geometrically. */
  private append(chunk: Buffer): void {
    const total = this.len + chunk.length;
    let store = this.store!;
    if (store.length < total) {
      const grown = Buffer.allocUnsafe(Math.max(total, store.length * 2));
      store.copy(grown, 0, 0, this.len);
      this.store = store = grown;
    }
    chunk.copy(store, this.len);
    this.len = total;
  }

  /** Keeps buf[pos, end) as the pending bytes, at the start of a store no emitted message refers to. */
  private keep(buf: Buffer, pos: number, end: number, owned: boolean): void {
    const rest = end - pos;
    if (owned && this.store !== null) {
      // Nothing was cut from the store this time: move the tail to its start.
      if (pos > 0) this.store.copyWithin(0, pos, end);
    } else {
      // The tail is in the caller's chunk, or in a store a message now holds: copy it out.
      if (this.store === null || this.store.length < rest) this.store = Buffer.allocUnsafe(Math.max(rest * 2, 1024));
      buf.copy(this.store, 0, pos, end);
    }
    this.len = rest;
  }

  private fail(out: FrameEvent[], reason: 'too-large' | 'bad-length', head: Buffer | null): void {
    out.push({ kind: 'error', reason, head: head && Buffer.from(head) });
    this.store = null;
    this.len = 0;
    this.scanned = 0;
    this.need = -1;
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
