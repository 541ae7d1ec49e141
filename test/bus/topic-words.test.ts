// Topic words for values (event-bus.ts valueWord, domainWord): Kazoo's routing-key encoding, a lone `*` or `#`
// encoded too (an address's name, never a wildcard), and a domain's word remembered, bounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { domainWord, topicWord, valueWord } from '../../src/bus/event-bus.ts';

test('a value word encodes what topicWord passes through as a wildcard', () => {
  assert.equal(topicWord('*'), '*');
  assert.equal(valueWord('*'), '%2A');
  assert.equal(valueWord('#'), '%23');
  assert.equal(valueWord('alice smith'), 'alice+smith');
  assert.equal(valueWord('a.b'), 'a%2Eb');
});

test('a domain word is the value word, remembered, and the table starts over past its bound', () => {
  assert.equal(domainWord('bench.test'), 'bench%2Etest');
  assert.equal(domainWord('*'), '%2A');
  // Past the bound (256 domains) every answer is still right.
  for (let i = 0; i < 600; i++) assert.equal(domainWord(`d${i}.example`), `d${i}%2Eexample`);
  assert.equal(domainWord('bench.test'), 'bench%2Etest');
});
