// detach (src/sip/message/detach.ts): a string kept from a message must not keep the message's text alive. V8's
// representation is not part of the language, so this checks the behaviour the REGISTER path relies on (a binding's
// Call-ID held for an hour) on the V8 this project runs: if a later V8 made the copy a view again, this fails.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { detach, keep } from '../../src/sip/message/detach.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap bytes still held after `keepOf` cut 2,000 strings of 40 characters from 2,000 texts of 64 KiB and they went. */
function heldBy(keepOf: (s: string) => string): number {
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const text = `Call-ID: ${i}-${'x'.repeat(30)}\r\n` + 'y'.repeat(64 * 1024) + String(i);
    kept.push(keepOf(text.slice(9, 49)));
  }
  gc();
  const held = process.memoryUsage().heapUsed - before;
  assert.equal(kept.length, 2000);
  return held;
}

test('a detached string is equal to its source and holds no reference to the text it was cut from', () => {
  const text = 'Call-ID: 1234567890abcdef@host.example\r\nUser-Agent: x';
  const id = text.slice(9, 38);
  assert.equal(detach(id), id);
  assert.equal(detach('short'), 'short');
  const viewsHold = heldBy((s) => s);
  const copiesHold = heldBy(detach);
  assert.ok(viewsHold > 100 * 1024 * 1024, `slices keep their texts (${viewsHold} bytes)`);
  assert.ok(copiesHold < 5 * 1024 * 1024, `detached copies do not (${copiesHold} bytes)`);
});

test('keep returns the string already held when equal, else a detached copy', () => {
  const held = 'abcdefghijklmnopqrstuvwxyz';
  assert.equal(keep(held, 'abcdefghijklmnopqrstuvwxyz'.slice(0)), held);
  assert.equal(keep(undefined, 'x'), 'x');
  assert.equal(keep('a', 'b'), 'b');
});
