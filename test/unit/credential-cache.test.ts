// The credential cache in front of the store: concurrent misses share one lookup, a lookup that an invalidation
// overtook is not cached, and an invalidation made on one node reaches every node's cache over the bus.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { CachedCredentialStore, shareInvalidations } from '../../src/identity/credential-cache.ts';
import { createLogger } from '../../src/log.ts';
import type { CredentialStore, FoundCredential } from '../../src/storage/ports.ts';

/** A store whose answers are released by hand, counting lookups. */
class SlowStore implements CredentialStore {
  ha1 = 'a'.repeat(32);
  lookups = 0;
  private waiting: Array<() => void> = [];
  findSipCredential(authUser: string, realm: string): Promise<FoundCredential | null> {
    this.lookups++;
    const ha1 = this.ha1;
    return new Promise((resolve) =>
      this.waiting.push(() => resolve({ credential: { accountId: 'acc', authUser, realm, algorithm: 'MD5', ha1 }, aors: [`${authUser}@${realm}`] })),
    );
  }
  release(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

async function lookup(cache: CachedCredentialStore, store: SlowStore, user = 'alice'): Promise<string | undefined> {
  const r = cache.findSipCredential(user, 'd.test', 'MD5');
  if (r instanceof Promise) {
    await tick();
    store.release();
  }
  return (await r)?.credential.ha1;
}

describe('CachedCredentialStore', () => {
  it('evicts the least recently used: a hit entry outlives older unhit ones (second chance)', async () => {
    const store = new SlowStore();
    // Budget for three known entries and a half (466 estimated bytes each; known users get 7/8 of the total).
    const cache = new CachedCredentialStore(store, 60, { maxBytes: Math.ceil((3.5 * 466 * 8) / 7), sweepSeconds: 0 });
    for (const u of ['u1', 'u2', 'u3']) await lookup(cache, store, u);
    assert.equal(cache.size, 3);
    assert.ok(!(cache.findSipCredential('u1', 'd.test', 'MD5') instanceof Promise), 'u1 hit');
    await lookup(cache, store, 'u4'); // u1 (hit) moves to the end unmarked; u2, the oldest not hit, goes
    const cached = (u: string) => cache.peekSipCredential(u, 'd.test', 'MD5') !== undefined;
    assert.deepEqual(['u1', 'u2', 'u3', 'u4'].map(cached), [true, false, true, true]);
    await lookup(cache, store, 'u5'); // u3 is the oldest now
    assert.deepEqual(['u1', 'u3', 'u4', 'u5'].map(cached), [true, false, true, true]);
  });

  it('shares one lookup between concurrent misses for one key', async () => {
    const store = new SlowStore();
    const cache = new CachedCredentialStore(store, 60);
    const a = cache.findSipCredential('alice', 'd.test', 'MD5');
    const b = cache.findSipCredential('alice', 'd.test', 'MD5');
    const c = cache.findSipCredential('bob', 'd.test', 'MD5');
    store.release();
    await Promise.all([a, b, c]);
    assert.equal(store.lookups, 2);
    assert.ok(!(cache.findSipCredential('alice', 'd.test', 'MD5') instanceof Promise), 'then a synchronous hit');
  });

  it('does not cache what a lookup read before an invalidation overtook it', async () => {
    const store = new SlowStore();
    const cache = new CachedCredentialStore(store, 60);
    const pending = cache.findSipCredential('alice', 'd.test', 'MD5');
    store.ha1 = 'b'.repeat(32); // the password changes while the old row is on its way
    cache.invalidateUser('alice');
    store.release();
    await pending;
    assert.equal(await lookup(cache, store), 'b'.repeat(32));
  });

  it('invalidates on every node: a change on one node reaches the others over the bus', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    const storeA = new SlowStore();
    const storeB = new SlowStore();
    const a = new CachedCredentialStore(storeA, 3600);
    const b = new CachedCredentialStore(storeB, 3600);
    const onA = shareInvalidations(a, bus, 'node-a');
    const onB = shareInvalidations(b, bus, 'node-b');
    assert.equal(await lookup(b, storeB), 'a'.repeat(32));
    assert.equal(await lookup(b, storeB, 'carol'), 'a'.repeat(32));
    storeA.ha1 = storeB.ha1 = 'c'.repeat(32);
    onA.users(['alice']);
    await tick();
    assert.equal(await lookup(b, storeB), 'c'.repeat(32), 'node B forgot alice');
    assert.equal(b.findSipCredential('carol', 'd.test', 'MD5') instanceof Promise, false, 'but not carol');
    onA.all();
    await tick();
    assert.equal(b.findSipCredential('carol', 'd.test', 'MD5') instanceof Promise, true, 'an account removal clears everything');
    storeB.release();
    onA.stop();
    onB.stop();
  });
});
