import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DelayQueue } from '../../src/sip/transaction/delay-queue.ts';

test('DelayQueue fires each item once, in order, not before its delay', async () => {
  const fired: Array<{ item: number; after: number }> = [];
  const added = new Map<number, number>();
  const q = new DelayQueue<number>(30, (item) => fired.push({ item, after: performance.now() - added.get(item)! }));
  for (let i = 0; i < 3; i++) {
    added.set(i, performance.now());
    q.add(i);
    assert.equal(q.size, i + 1 - fired.length);
    await sleep(10);
  }
  await sleep(80);
  assert.deepEqual(fired.map((f) => f.item), [0, 1, 2]);
  for (const f of fired) assert.ok(f.after >= 29, `fired after ${f.after} ms`);
  assert.equal(q.size, 0);
});

test('DelayQueue: an item added while firing waits its own delay; clear drops what is pending', async () => {
  const fired: string[] = [];
  const q: DelayQueue<string> = new DelayQueue<string>(20, (item) => {
    fired.push(item);
    if (item === 'a') q.add('b');
  });
  q.add('a');
  await sleep(30);
  assert.deepEqual(fired, ['a']);
  await sleep(30);
  assert.deepEqual(fired, ['a', 'b']);
  q.add('c');
  q.clear();
  await sleep(40);
  assert.deepEqual(fired, ['a', 'b']);
  assert.equal(q.size, 0);
});

test('DelayQueue with slack: items due close together fire together, never early, at most the slack late', async () => {
  const fired: Array<{ item: number; at: number }> = [];
  const start = performance.now();
  const q = new DelayQueue<number>(20, (item) => fired.push({ item, at: performance.now() - start }), () => performance.now(), 60);
  q.add(0);
  await sleep(5);
  q.add(1);
  await sleep(5);
  q.add(2);
  await sleep(150);
  assert.deepEqual(fired.map((f) => f.item), [0, 1, 2]);
  // The first waits the slack (60 ms, longer than its 20), and the two due 5 and 10 ms after it come with it.
  for (const f of fired) assert.ok(f.at >= 59, `fired at ${f.at} ms`);
  assert.ok(fired[2].at - fired[0].at < 5, 'one wake-up for all three');
});
