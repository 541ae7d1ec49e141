// The Redis adapters against the machine's server: cache values with TTL and atomic compare-and-set, failure
// counters and locks shared between two connections (two nodes), nonce counts refusing replays across nodes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { openRedis } from '../../src/storage/redis/client.ts';
import { RedisCache } from '../../src/storage/redis/cache.ts';
import { RedisFailureCounter } from '../../src/storage/redis/failure-counter.ts';
import { RedisNonceCounts } from '../../src/storage/redis/nonce-counts.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';

describe('Redis adapters', { skip: await redisMissing() }, () => {
  const prefix = freshPrefix();
  let a: Redis;
  let b: Redis;
  before(() => {
    a = openRedis({ url: REDIS_URL, prefix });
    b = openRedis({ url: REDIS_URL, prefix });
  });
  after(async () => {
    a.disconnect();
    b.disconnect();
    await dropPrefix(prefix);
  });

  it('cache: JSON values, expiry, SET NX, and compare-and-set that only one of two racing nodes wins', async () => {
    const ca = new RedisCache(a);
    const cb = new RedisCache(b);
    await ca.set('s', { n: 1, list: ['x'] }, 60);
    assert.deepEqual(await cb.get('s'), { n: 1, list: ['x'] });
    await ca.set('short', 1, 0.05);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(await cb.get('short'), null);
    assert.equal(await ca.setIfAbsent('nx', 'first', 60), true);
    assert.equal(await cb.setIfAbsent('nx', 'second', 60), false);
    const [wa, wb] = await Promise.all([ca.compareAndSet('s', { n: 1, list: ['x'] }, { n: 2, list: [] }, 60), cb.compareAndSet('s', { n: 1, list: ['x'] }, { n: 3, list: [] }, 60)]);
    assert.equal(Number(wa) + Number(wb), 1, 'exactly one compare-and-set wins');
    assert.equal(await ca.compareAndSet('absent', null, 'made', 60), true);
    assert.equal(await ca.compareAndSet('absent', null, 'again', 60), false);
    assert.equal(await ca.compareAndSet('absent', 'made', null, 60), true);
    assert.equal(await ca.get('absent'), null);
  });

  it('failure counters and locks are shared by every node', async () => {
    const fa = new RedisFailureCounter(a);
    const fb = new RedisFailureCounter(b);
    assert.equal(await fa.hit('acct:x', 60), 1);
    assert.equal(await fb.hit('acct:x', 60), 2);
    await fa.lock('acct:x', 30);
    const left = await fb.lockedFor('acct:x');
    assert.ok(left > 25 && left <= 30);
    await fb.reset('acct:x');
    assert.equal(await fa.hit('acct:x', 60), 1);
    assert.equal(await fa.lockedFor('acct:never'), 0);
  });

  it('nonce counts: an nc accepted on one node is a replay on another; a higher one passes', async () => {
    const na = new RedisNonceCounts(a, 300);
    const nb = new RedisNonceCounts(b, 300);
    const info = { boot: 42, index: 7, issuedAt: Date.now() };
    assert.equal(await na.claim(info, 1), 'ok');
    assert.equal(await nb.claim(info, 1), 'replay');
    assert.equal(await nb.claim(info, 2), 'ok');
    assert.equal(await na.claim(info, 2), 'replay');
    assert.equal(await na.claim({ ...info, index: 8 }, 1), 'ok', 'another nonce starts afresh');
  });
});
