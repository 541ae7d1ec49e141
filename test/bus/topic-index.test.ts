// The subscription trie agrees with pattern-by-pattern AMQP topic matching on every pattern and topic, and keeps
// nothing behind once its entries are removed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topicMatches, topicWord } from '../../src/bus/event-bus.ts';
import { TopicIndex } from '../../src/bus/topic-index.ts';

/** A small deterministic generator, so that a failure names its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const WORDS = ['a', 'b', 'binding', 'added', 'x%2Ey', ''];

function randomKey(r: () => number, wildcards: boolean): string {
  const n = 1 + Math.floor(r() * 4);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = r();
    if (wildcards && p < 0.2) out.push('*');
    else if (wildcards && p < 0.35) out.push('#');
    else out.push(WORDS[Math.floor(r() * WORDS.length)]);
  }
  return out.join('.');
}

describe('TopicIndex', () => {
  it('matches exactly what topicMatches matches, on random patterns and topics', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const index = new TopicIndex<number>();
      const patterns = Array.from({ length: 30 }, () => randomKey(r, true));
      patterns.forEach((p, i) => index.add(p, i));
      for (let k = 0; k < 200; k++) {
        const topic = randomKey(r, false);
        const want = patterns.map((p, i) => (topicMatches(p, topic) ? i : -1)).filter((i) => i >= 0);
        assert.deepEqual(index.match(topic).sort((a, b) => a - b), want, `seed ${seed}, topic "${topic}"`);
      }
    }
  });

  it('gives a value once per entry, even when `#` could match several ways', () => {
    const index = new TopicIndex<string>();
    index.add('#.#', 'x');
    index.add('a.#.b.#', 'y');
    assert.deepEqual(index.match('a.b.b.b').sort(), ['x', 'y']);
    index.add('a.#.b.#', 'y');
    assert.deepEqual(index.match('a.b').sort(), ['x', 'y', 'y'], 'two subscriptions, two entries');
  });

  it('removes one entry at a time and prunes emptied branches', () => {
    const index = new TopicIndex<string>();
    index.add('binding.*.d.alice', 'w1');
    index.add('binding.*.d.alice', 'w2');
    index.add('binding.#', 'all');
    assert.equal(index.size, 3);
    assert.equal(index.remove('binding.*.d.alice', 'w1'), true);
    assert.equal(index.remove('binding.*.d.alice', 'w1'), false, 'already gone');
    assert.deepEqual(index.match('binding.added.d.alice').sort(), ['all', 'w2']);
    assert.equal(index.remove('binding.*.d.alice', 'w2'), true);
    assert.equal(index.remove('binding.#', 'all'), true);
    assert.equal(index.size, 0);
    assert.deepEqual(index.match('binding.added.d.alice'), []);
    const root = (index as unknown as { root: { words: unknown; star: unknown; hash: unknown } }).root;
    assert.deepEqual([root.words, root.star, root.hash], [null, null, null], 'no empty branches left behind');
  });

  it('holds tens of thousands of per-presentity patterns and matches in a few microseconds', () => {
    const index = new TopicIndex<number>();
    for (let i = 0; i < 50_000; i++) index.add(`binding.*.example%2Etest.user${i}`, i);
    index.add('binding.#', -1);
    assert.deepEqual(index.match('binding.added.example%2Etest.user4242').sort((a, b) => a - b), [-1, 4242]);
    assert.deepEqual(index.match('binding.added.example%2Etest.nobody'), [-1]);
  });
});

describe('topicWord', () => {
  it('encodes as Kazoo encodes routing-key words', () => {
    assert.equal(topicWord('example.test'), 'example%2Etest');
    assert.equal(topicWord('a b'), 'a+b');
    assert.equal(topicWord('ü'), '%C3%BC');
    assert.equal(topicWord('plain-_~09'), 'plain-_~09');
    assert.equal(topicWord('*'), '*');
    assert.equal(topicWord('a*'), 'a%2A');
  });
});
