// The shared location index on the machine's Redis: filling it from the durable store (many AORs at once, over
// whatever it holds already) and the priming lease that keeps two nodes from filling it together, held as long as
// the filling node lives.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { openRedis } from '../../src/storage/redis/client.ts';
import { RedisLocationIndex } from '../../src/storage/redis/location-index.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { binding } from '../helpers/bindings.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const at = (user: string, host: string, now: number) =>
  binding(`${user}@example.test`, `sip:${user}@${host}:5060`, { contact: `sip:${user}@${host}:5060`, callId: `call-${user}-${host}`, expiresAt: now + 3_600_000 });

describe('Redis location index', { skip: await redisMissing() }, () => {
  const prefix = freshPrefix();
  let a: Redis;
  let b: Redis;
  const indexes: RedisLocationIndex[] = [];
  const index = (r: Redis, leaseMs?: number) => {
    const i = new RedisLocationIndex(r, prefix, leaseMs);
    indexes.push(i);
    return i;
  };
  before(() => {
    a = openRedis({ url: REDIS_URL, prefix });
    b = openRedis({ url: REDIS_URL, prefix });
  });
  after(async () => {
    for (const i of indexes) i.close();
    a.disconnect();
    b.disconnect();
    await dropPrefix(prefix);
  });

  it('loads many AORs at once over what the index holds, leaving each as loaded and the counts right', async () => {
    const ia = index(a);
    const ib = index(b);
    const now = Date.now();
    // Already there: 50 AORs with a stale binding, some of them written twice (version 2).
    for (let i = 0; i < 50; i++) {
      assert.ok(await ib.write(`u${i}@example.test`, 0, [at(`u${i}`, '10.9.9.9', now)]));
      if (i % 2) assert.ok(await ib.write(`u${i}@example.test`, 1, [at(`u${i}`, '10.9.9.8', now)]));
    }
    const rows: BindingRecord[] = [];
    for (let i = 0; i < 1000; i++) {
      rows.push(at(`u${i}`, '10.0.0.1', now));
      if (i % 10 === 0) rows.push(at(`u${i}`, '10.0.0.2', now));
    }
    await ia.load(rows);
    for (const i of [0, 1, 10, 49, 50, 999]) {
      const s = await ib.read(`u${i}@example.test`);
      const want = rows.filter((r) => r.aor === `u${i}@example.test`).map((r) => r.contact);
      assert.deepEqual(s.bindings.map((x) => x.contact).sort(), want.sort(), `u${i}`);
    }
    await ia.load([], 'u10@example.test'); // one AOR, emptied
    assert.deepEqual((await ib.read('u10@example.test')).bindings, []);
    const c = await a.hmget('loc:count', 'bindings', 'aors');
    assert.deepEqual(c.map(Number), [1000 + 100 - 2, 999]);
  });

  it('keeps the priming lease past its length while the holder lives, and lets it lapse when the holder is gone', async () => {
    await a.del('loc:primed', 'loc:priming');
    const first = index(a, 300);
    const second = index(b, 300);
    assert.equal(await first.beginPriming(), 'mine');
    await sleep(900); // three leases: renewed, not lapsed
    assert.equal(await second.beginPriming(), 'busy');
    first.close(); // the holder dies without finishing
    await sleep(450);
    assert.equal(await second.beginPriming(), 'mine');
    await second.endPriming();
    assert.equal(await first.beginPriming(), 'primed');
    assert.equal(await second.isPrimed(), true);
  });
});
