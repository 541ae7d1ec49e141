// Completed non-INVITE server transactions over UDP (RFC 3261 §17.2.2, the Completed state): what a retransmitted
// request is answered with until Timer J. Kept as records in one ring of bytes outside the JavaScript heap, with an
// index in a typed array, so that holding them costs the garbage collector nothing.
//
// Why: each one used to be a transaction object, its destination, its key string (with the parts it was built
// from) and the response's Buffer, ~560 B in ~7 objects (heap-snapshot diff, bench/RESULTS.md), every one alive
// for 33 s. At 3,400 REGISTERs a second that is what each young-generation collection found alive and copied:
// scavenges of 9–18 ms every ~0.4 s, the p99 of a phone's REGISTER. Here a completion copies ~500 bytes into the
// ring and sets one slot of a typed array: nothing on the heap.
//
// A record is written when the transaction completes, so records are in expiry order (Timer J is the same for all):
// the oldest are dropped from the tail, the newest appended at the head. The index's bucket for a hash of the
// transaction key holds the newest record in that bucket; older ones in the same bucket are chained from it. A
// lookup compares the whole key, so a shared bucket costs a comparison, never a wrong answer.

import type { Destination } from '../transport/types.ts';

/** Record header: length u32, expiresAt f64, offset of the previous record in the same bucket u32 (NONE: none),
 * hash u32, port u16, address length u8, (unused) u8, key length u16, (unused) u16, response length u32. */
const HEADER = 32;
const NONE = 0xffffffff;
const INITIAL_CAPACITY = 4 * 1024 * 1024;
/** Ring bytes per index bucket: a REGISTER's record is ~500 bytes, so chains stay under one record on average. */
const BYTES_PER_BUCKET = 128;

/** The newest ring stops growing here (a flood of requests, each answered): past it, the oldest records go before
 * their Timer J. */
export const MAX_CAPACITY = 512 * 1024 * 1024;

export interface CompletedResponse {
  data: Buffer;
  destination: Destination;
}

/**
 * The rings: records are written to the newest; when it is full and may still grow, it is retired and a ring twice
 * its size takes the new records, while the retired one answers for its own until their Timer J (it is dropped when
 * its last record expires, at most 32 s later). Nothing is copied: copying the live records into a larger ring was
 * one event-loop turn of 24–125 ms (a 32 → 64 MiB ring at 6,400 REGISTERs a second, CPU profile under load in
 * bench/tools/cpuprofile-stalls.ts), the largest stall a REGISTER met while the load rose. The price is memory: for
 * those 32 s the retired ring and the new one are both held (up to 1.5 times the limit).
 */
export class CompletedTransactions {
  private current: Ring;
  /** Retired rings, oldest first, each holding records until their Timer J. */
  private retired: Ring[] = [];
  private readonly maxCapacity: number;

  constructor(initialCapacity = INITIAL_CAPACITY, maxCapacity = MAX_CAPACITY) {
    this.maxCapacity = Math.max(maxCapacity, initialCapacity);
    this.current = new Ring(initialCapacity);
  }

  get size(): number {
    let n = this.current.records;
    for (const r of this.retired) n += r.records;
    return n;
  }

  /** Bytes held by the rings. */
  get bytes(): number {
    let n = this.current.capacity;
    for (const r of this.retired) n += r.capacity;
    return n;
  }

  /** Rings retired and still answering (for tests and metrics). */
  get retiredRings(): number {
    return this.retired.length;
  }

  /**
   * Keeps the final response of a completed transaction until `expiresAt`. A key with characters beyond Latin-1
   * (a branch no compliant client sends) is stored but never matches: its retransmissions are answered anew.
   */
  add(key: string, data: Buffer, to: Destination, expiresAt: number, now: number): void {
    if (key.length > 0xffff || to.address.length > 0xff) return;
    const length = align(HEADER + to.address.length + key.length + data.length);
    if (length > this.maxCapacity / 4) return;
    this.sweep(now);
    if (!this.current.fits(length) && this.current.capacity < this.maxCapacity) {
      this.retired.push(this.current);
      this.current = new Ring(Math.min(this.current.capacity * 2, this.maxCapacity));
    }
    this.current.add(key, data, to, expiresAt, length);
  }

  /** The response to re-send for a retransmission of `key`'s request, if its transaction is still completed. */
  get(key: string, now: number): CompletedResponse | null {
    const hash = hashKey(key);
    const found = this.current.get(key, hash, now);
    if (found !== undefined) return found;
    for (let i = this.retired.length - 1; i >= 0; i--) {
      const r = this.retired[i]!.get(key, hash, now);
      if (r !== undefined) return r;
    }
    return null;
  }

  /** Drops the records whose Timer J has fired, and the retired rings left empty. */
  sweep(now: number): void {
    this.current.sweep(now);
    if (this.retired.length === 0) return;
    for (const r of this.retired) r.sweep(now);
    while (this.retired.length > 0 && this.retired[0]!.records === 0) this.retired.shift();
  }

  clear(): void {
    this.current.clear();
    this.retired = [];
  }
}

/** One ring of records with its index (see the top of the file). */
class Ring {
  private readonly ring: Buffer;
  readonly capacity: number;
  /**
   * Absolute positions of the newest record's end and the oldest record: they only grow, and a record lives at
   * offset position % capacity (a record never straddles the ring's end). The index and the chains hold offsets,
   * which fit the index's 32-bit slots.
   */
  private head = 0;
  private tail = 0;
  /** Per bucket, the offset of its newest record (NONE: empty). */
  private readonly index: Uint32Array;
  records = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.ring = Buffer.allocUnsafeSlow(capacity);
    this.index = newIndex(capacity);
  }

  /** Whether `length` bytes (and the padding a wrap may need) fit without dropping a live record. */
  fits(length: number): boolean {
    return this.head - this.tail + 2 * length <= this.capacity;
  }

  /** Writes a record of `length` (aligned) bytes, dropping the oldest records early if it does not fit. */
  add(key: string, data: Buffer, to: Destination, expiresAt: number, length: number): void {
    this.reserve(length);
    let offset = this.head % this.capacity;
    if (offset + length > this.capacity) {
      // Pad to the ring's end: a record is contiguous, so its fields are read in place.
      if (this.capacity - offset >= 4) this.ring.writeUInt32LE(0, offset);
      this.head += this.capacity - offset;
      offset = 0;
    }
    const ring = this.ring;
    const hash = hashKey(key);
    const bucket = hash & (this.index.length - 1);
    ring.writeUInt32LE(length, offset);
    ring.writeDoubleLE(expiresAt, offset + 4);
    ring.writeUInt32LE(this.index[bucket]!, offset + 12);
    ring.writeUInt32LE(hash, offset + 16);
    ring.writeUInt16LE(to.port, offset + 20);
    ring[offset + 22] = to.address.length;
    ring.writeUInt16LE(key.length, offset + 24);
    ring.writeUInt32LE(data.length, offset + 28);
    let p = offset + HEADER;
    p += ring.write(to.address, p, 'latin1');
    p += ring.write(key, p, 'latin1');
    data.copy(ring, p);
    this.index[bucket] = offset;
    this.head += length;
    this.records++;
  }

  /** The record of `key`: its response (null once its Timer J has fired), or undefined when this ring has none. */
  get(key: string, hash: number, now: number): CompletedResponse | null | undefined {
    const ring = this.ring;
    let o = this.index[hash & (this.index.length - 1)]!;
    while (o !== NONE) {
      const addressLength = ring[o + 22]!;
      const keyLength = ring.readUInt16LE(o + 24);
      const k = o + HEADER + addressLength;
      // The whole hash first: a new request's lookup meets another key in its bucket one time in five at 3,400
      // REGISTERs a second, and reading that key out as a string cost more than the rest of the lookup.
      if (ring.readUInt32LE(o + 16) === hash && keyLength === key.length && ring.toString('latin1', k, k + keyLength) === key) {
        if (ring.readDoubleLE(o + 4) <= now) return null;
        const d = k + keyLength;
        return {
          // A copy: the ring's bytes may be overwritten before an asynchronous send reads them.
          data: Buffer.from(ring.subarray(d, d + ring.readUInt32LE(o + 28))),
          destination: { transport: 'UDP', address: ring.toString('latin1', o + HEADER, o + HEADER + addressLength), port: ring.readUInt16LE(o + 20), connectionId: null },
        };
      }
      // An older record in the bucket, if it is still there: its offset then maps to a position before this one's;
      // once dropped, the same offset maps a whole ring further on, past this one (both were in the ring together
      // when this one was written, so they are less than a capacity apart).
      const previous = ring.readUInt32LE(o + 12);
      o = previous !== NONE && this.position(previous) < this.position(o) ? previous : NONE;
    }
    return undefined;
  }

  /** Drops the records whose Timer J has fired. */
  sweep(now: number): void {
    while (this.tail < this.head) {
      if (this.skipPadding()) continue;
      if (this.ring.readDoubleLE((this.tail % this.capacity) + 4) > now) break;
      this.drop();
    }
  }

  clear(): void {
    this.index.fill(NONE);
    this.head = this.tail = 0;
    this.records = 0;
  }

  /** The position of the live record at `offset`, or where a record written there next would be. */
  private position(offset: number): number {
    const at = this.tail - (this.tail % this.capacity) + offset;
    return at < this.tail ? at + this.capacity : at;
  }

  /** Removes the oldest record (and empties its bucket when it was the bucket's newest). */
  private drop(): void {
    const o = this.tail % this.capacity;
    const bucket = this.ring.readUInt32LE(o + 16) & (this.index.length - 1);
    if (this.index[bucket] === o) this.index[bucket] = NONE;
    this.tail += this.ring.readUInt32LE(o);
    this.records--;
  }

  /** Steps the tail over the padding at the ring's end, if it is there. */
  private skipPadding(): boolean {
    const o = this.tail % this.capacity;
    if (this.capacity - o >= HEADER && this.ring.readUInt32LE(o) !== 0) return false;
    this.tail += this.capacity - o;
    return true;
  }

  /** Makes room for `length` bytes (and the padding a wrap may need) by dropping the oldest records before Timer J. */
  private reserve(length: number): void {
    while (!this.fits(length)) {
      if (this.tail >= this.head) break;
      if (!this.skipPadding()) this.drop();
    }
  }
}

function newIndex(capacity: number): Uint32Array {
  let buckets = 1024;
  while (buckets * BYTES_PER_BUCKET < capacity) buckets *= 2;
  return new Uint32Array(buckets).fill(NONE);
}

function align(n: number): number {
  return (n + 7) & ~7;
}

/** FNV-1a over the key's UTF-16 units (30 bits; the index uses the low ones). */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) & 0x3fffffff;
}
