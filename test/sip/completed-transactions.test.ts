// The ring of completed UDP transactions (src/sip/transaction/completed.ts): what a retransmission is answered with,
// until Timer J and not after, through wraps, growth, hash collisions and the size limit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompletedTransactions, hashKey } from '../../src/sip/transaction/completed.ts';
import type { Destination } from '../../src/sip/transport/types.ts';

const to = (port: number): Destination => ({ transport: 'UDP', address: '192.0.2.7', port, connectionId: null });
const key = (i: number): string => `z9hG4bK-${i}\u0000192.0.2.7:5060\u0000REGISTER`;
const response = (i: number, size = 40): Buffer => Buffer.from(`SIP/2.0 200 OK ${i} `.padEnd(size, 'x'));

/** Keys with the same hash, found by brute force (FNV-1a's 30 bits: a pair within ~40,000 tries). */
function collidingKeys(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const k = key(i);
    const h = hashKey(k);
    const other = seen.get(h);
    if (other !== undefined) return [other, k];
    seen.set(h, k);
  }
}

test('a completed transaction answers with its response and destination until Timer J', () => {
  const c = new CompletedTransactions(4096, 4096);
  c.add(key(1), response(1), to(5061), 1000 + 32_000, 1000);
  const got = c.get(key(1), 2000);
  assert.ok(got);
  assert.equal(got.data.toString(), response(1).toString());
  assert.deepEqual(got.destination, to(5061));
  assert.equal(c.get(key(2), 2000), null, 'another key');
  assert.equal(c.get(key(1), 33_000), null, 'Timer J fired');
  c.sweep(33_000);
  assert.equal(c.size, 0);
});

test('the response handed out is a copy: later records do not change it', () => {
  const c = new CompletedTransactions(1024, 1024);
  c.add(key(1), response(1), to(1), 10_000, 0);
  const got = c.get(key(1), 1)!;
  for (let i = 2; i < 200; i++) c.add(key(i), response(i), to(i), 10_000 + i, i);
  assert.equal(got.data.toString(), response(1).toString());
});

test('records wrap around the ring and expire in order; every live one is found', () => {
  const c = new CompletedTransactions(4096, 4096);
  // Each record 144–176 bytes; 1.3 s of life, one added every 100 ms: 13 alive, ~2,200 of 4,096 bytes.
  for (let i = 0; i < 5000; i++) {
    const now = i * 100;
    c.add(key(i), response(i, 60 + (i % 7) * 5), to(i % 65536), now + 1300, now);
    for (let j = Math.max(0, i - 12); j <= i; j++) {
      const got = c.get(key(j), now);
      assert.ok(got, `record ${j} alive at step ${i}`);
      assert.equal(got.data.toString(), response(j, 60 + (j % 7) * 5).toString());
      assert.equal(got.destination.port, j % 65536);
    }
  }
  assert.ok(c.size <= 14, `size ${c.size}`);
  assert.equal(c.bytes, 4096);
});

test('the ring grows while records are alive, and keeps them', () => {
  const c = new CompletedTransactions(1024, 1 << 20);
  for (let i = 0; i < 500; i++) c.add(key(i), response(i, 100), to(i), 1_000_000, i);
  assert.ok(c.bytes >= 500 * 100);
  for (let i = 0; i < 500; i++) assert.equal(c.get(key(i), 1000)?.data.toString(), response(i, 100).toString());
  assert.equal(c.size, 500);
});

test('at its size limit the oldest records go before Timer J, the newest stay', () => {
  const c = new CompletedTransactions(4096, 4096);
  for (let i = 0; i < 1000; i++) c.add(key(i), response(i, 100), to(i), 1_000_000, i);
  assert.equal(c.bytes, 4096);
  assert.equal(c.get(key(0), 1000), null);
  assert.ok(c.get(key(999), 1000));
  assert.ok(c.size > 10 && c.size < 4096 / 100);
});

test('keys with the same hash are told apart by the whole key, before and after the older one leaves', () => {
  const [a, b] = collidingKeys();
  assert.equal(hashKey(a), hashKey(b));
  const c = new CompletedTransactions(1024, 1024);
  c.add(a, Buffer.from('for a'), to(1), 1000, 0);
  c.add(b, Buffer.from('for b'), to(2), 2000, 500);
  assert.equal(c.get(a, 600)?.data.toString(), 'for a');
  assert.equal(c.get(b, 600)?.data.toString(), 'for b');
  c.sweep(1500); // a expires; b (newest of the hash) stays indexed
  assert.equal(c.get(a, 1500), null);
  assert.equal(c.get(b, 1500)?.data.toString(), 'for b');
  // Small records (48 bytes) until the ring wraps and a's old offset (0) holds one of them: b's chain must not
  // follow it there. a and b take 88 bytes each; 17 fillers reach the end, the 18th is written at offset 0.
  for (let i = 0; i < 18; i++) c.add(`f${i}`, Buffer.from('.'), to(3), 1900, 1500 + i);
  assert.equal(c.bytes, 1024);
  assert.equal(c.get('f17', 1600)?.data.toString(), '.');
  assert.equal(c.get(a, 1600), null);
  assert.equal(c.get(b, 1600)?.data.toString(), 'for b');
});

test('positions keep growing past a long run (many times the ring) without losing records', () => {
  const c = new CompletedTransactions(1024, 1024);
  for (let i = 0; i < 200_000; i++) {
    c.add(key(i), response(i, 20), to(1), i + 5, i);
    if (i % 997 === 0) assert.equal(c.get(key(i), i)?.data.toString(), response(i, 20).toString());
  }
  assert.ok(c.size <= 6);
});

test('growing after the ring has wrapped keeps every live record, in order, across the padding', () => {
  const c = new CompletedTransactions(2048, 1 << 20);
  // Short-lived records until the ring has wrapped a few times (with padding at its end), then a burst that lives.
  for (let i = 0; i < 200; i++) c.add(key(i), response(i, 50 + (i % 5) * 10), to(i), i * 10 + 100, i * 10);
  const now = 2000;
  for (let i = 200; i < 400; i++) c.add(key(i), response(i, 90), to(i), 1_000_000, now);
  assert.ok(c.bytes > 2048, 'grew');
  for (let i = 200; i < 400; i++) assert.equal(c.get(key(i), now)?.data.toString(), response(i, 90).toString(), `record ${i}`);
  for (let i = 180; i <= 190; i++) assert.equal(c.get(key(i), now), null, `record ${i} expired (Timer J at ${i * 10 + 100})`);
  for (let i = 191; i < 200; i++) assert.ok(c.get(key(i), now), `record ${i} alive until ${i * 10 + 100}`);
  c.sweep(now);
  assert.equal(c.size, 209);
});

test('growing retires the full ring instead of copying it: it answers for its records until their Timer J, then goes', () => {
  const c = new CompletedTransactions(2048, 1 << 20);
  // Records until the first ring is full: the one that does not fit starts a ring twice the size.
  let n = 0;
  for (; c.retiredRings === 0; n++) c.add(key(n), response(n, 90), to(n), 10_000, n);
  assert.ok(n > 5 && n < 2048 / 90, `${n} records`);
  assert.equal(c.bytes, 2048 + 4096, 'the full ring is kept, not copied');
  // A few with a later Timer J, in the new ring.
  for (let i = n; i < n + 5; i++) c.add(key(i), response(i, 90), to(i), 20_000, 1000 + i);
  assert.equal(c.retiredRings, 1);
  for (let i = 0; i < n + 5; i++) assert.equal(c.get(key(i), 5000)?.data.toString(), response(i, 90).toString(), `record ${i}`);
  assert.equal(c.size, n + 5);
  // The retired ring's records leave with their Timer J, and the ring with its last one.
  c.sweep(15_000);
  assert.equal(c.retiredRings, 0);
  assert.equal(c.bytes, 4096);
  for (let i = 0; i < n; i++) assert.equal(c.get(key(i), 15_000), null, `record ${i} expired`);
  for (let i = n; i < n + 5; i++) assert.ok(c.get(key(i), 15_000), `record ${i} alive`);
  assert.equal(c.size, 5);
});

test('at the limit the newest ring stops growing: it drops its oldest records early instead', () => {
  const c = new CompletedTransactions(1024, 4096);
  for (let i = 0; i < 2000; i++) c.add(key(i), response(i, 100), to(i), 1_000_000, i);
  assert.equal(c.bytes, 1024 + 2048 + 4096, 'rings of 1 and 2 KiB retired, the 4 KiB one at the limit');
  assert.equal(c.retiredRings, 2);
  assert.ok(c.get(key(1999), 2000));
  assert.equal(c.get(key(100), 2000), null, 'dropped early from the ring at the limit');
  c.sweep(1_000_000);
  assert.equal(c.bytes, 4096);
  assert.equal(c.size, 0);
});
