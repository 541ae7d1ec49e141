// The location service over the test stack's store and index (SQLite and the in-process index, or PostgreSQL and
// the shared Redis index) with the in-process bus: priming (expired-while-down bindings removed and announced),
// expiry, events after durability, and recovery from a failed write.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/in-process.ts';
import type { BusMessage } from '../../src/bus/event-bus.ts';
import { openCache, openDurable } from '../../src/adapters.ts';
import { createLogger } from '../../src/log.ts';
import { LocationService } from '../../src/registrar/location-service.ts';
import type { BindingRecord, LocationStore } from '../../src/storage/ports.ts';
import { tempDir, testConfig } from '../helpers/server.ts';
import { binding } from '../helpers/bindings.ts';

const log = createLogger('silent');
const tick = () => new Promise((r) => setImmediate(r));

/** The data directory's durable store and location index, as the server opens them. */
async function openStack(dir: string, clock: { now: number }) {
  const config = testConfig(dir);
  const durable = await openDurable(config);
  const cache = openCache(config, () => clock.now, log);
  return {
    store: durable.location,
    index: cache.locationIndex,
    cluster: cache.locationCluster,
    async close() {
      await cache.close();
      await durable.close();
    },
  };
}

/** A location service on the stack (its store wrapped by `wrap`, if given), and the events it publishes. */
async function setup(dir: string, clock: { now: number }, wrap?: (real: LocationStore) => LocationStore) {
  const stack = await openStack(dir, clock);
  const bus = new InProcessBus(log);
  const events: BusMessage[] = [];
  bus.subscribe('binding.#', (m) => {
    events.push(m);
  });
  const location = new LocationService({ index: stack.index, cluster: stack.cluster, store: wrap ? wrap(stack.store) : stack.store, bus, log, now: () => clock.now });
  return {
    store: stack.store,
    bus,
    events,
    location,
    async close() {
      location.close();
      await stack.close();
    },
  };
}

describe('LocationService', () => {
  it('primes from the store, dropping and announcing bindings that expired while it was down', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const a = await setup(dir, clock);
    await a.location.prime();
    await a.location.replace('alice@d', [binding('alice@d', 'k1', { expiresAt: clock.now + 60_000 })], [{ event: 'added', binding: binding('alice@d', 'k1', { expiresAt: clock.now + 60_000 }) }]);
    const bob = binding('bob@d', 'k1', { expiresAt: clock.now + 3_600_000 });
    await a.location.replace('bob@d', [bob], [{ event: 'added', binding: bob }]);
    await a.close();

    clock.now += 120_000; // down for two minutes: alice's binding lapsed
    const b = await setup(dir, clock);
    try {
      const primed = await b.location.prime();
      assert.deepEqual(primed, { loaded: 1, expired: 1, orphaned: 0 });
      assert.deepEqual((await b.location.lookup('alice@d')), []);
      assert.equal((await b.location.lookup('bob@d')).length, 1);
      await tick();
      assert.deepEqual(b.events.map((e) => `${e.topic} ${e.payload.aor}`), ['binding.expired.d.alice alice@d']);
      // The removal is durable: a third start does not see alice either.
      const rows = await b.store.loadAll();
      assert.deepEqual(rows.map((r) => r.aor), ['bob@d']);
    } finally {
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('expires bindings on time, from memory and store, and announces each', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const s = await setup(dir, clock);
    try {
      await s.location.prime();
      const short = binding('a@d', 'k1', { expiresAt: clock.now + 5_000 });
      const long = binding('a@d', 'k2', { expiresAt: clock.now + 60_000 });
      await s.location.replace('a@d', [short, long], [{ event: 'added', binding: short }, { event: 'added', binding: long }]);
      await tick();
      s.events.length = 0;
      clock.now += 4_000;
      await s.location.expire();
      assert.equal((await s.location.lookup('a@d')).length, 2);
      clock.now += 2_000; // expiry works in whole seconds: a binding goes within a second after it lapsed
      await s.location.expire();
      assert.deepEqual((await s.location.lookup('a@d')).map((b) => b.key), ['k2']);
      assert.equal(s.location.size, 1);
      await tick();
      assert.deepEqual(s.events.map((e) => [e.topic, e.payload.expires]), [['binding.expired.d.a', 0]]);
      const rows = await s.store.list('a@d');
      assert.deepEqual(rows.map((r) => r.key), ['k2']);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not expire a binding that was refreshed since it was scheduled', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const s = await setup(dir, clock);
    try {
      await s.location.prime();
      const first = binding('a@d', 'k1', { expiresAt: clock.now + 5_000 });
      await s.location.replace('a@d', [first], [{ event: 'added', binding: first }]);
      const refreshed = { ...first, expiresAt: clock.now + 60_000, cseq: 2 };
      await s.location.replace('a@d', [refreshed], [{ event: 'refreshed', binding: refreshed }]);
      clock.now += 10_000;
      await s.location.expire();
      assert.equal((await s.location.lookup('a@d'))[0].cseq, 2);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a binding registered again after it lapsed, before the sweep: expired then added, and stored', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const s = await setup(dir, clock);
    try {
      await s.location.prime();
      const first = binding('a@d', 'k1', { expiresAt: clock.now + 5_000 });
      await s.location.replace('a@d', [first], [{ event: 'added', binding: first }]);
      await tick();
      s.events.length = 0;
      clock.now += 5_500; // lapsed; the sweep has not run
      // As the registrar plans it: the live bindings (none) plus the new one, under the same key.
      const again = binding('a@d', 'k1', { expiresAt: clock.now + 60_000, cseq: 2 });
      await s.location.update('a@d', (live) => ({ next: [...live, again], changes: [{ event: 'added', binding: again }] }));
      await tick();
      assert.deepEqual(s.events.map((e) => e.topic), ['binding.expired.d.a', 'binding.added.d.a'], 'in the order they happened');
      assert.deepEqual((await s.store.list('a@d')).map((r) => [r.key, r.cseq]), [['k1', 2]], 'the journal ends with the new binding, not its predecessor\'s removal');
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('announces only after the change is durable, and restores memory from the store when a write fails', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    let failNext = false;
    const flaky = (real: LocationStore): LocationStore => ({
      loadAll: () => real.loadAll(),
      list: (aor) => real.list(aor),
      write: (ops) => (failNext ? Promise.reject(new Error('disk full')) : real.write(ops)),
    });
    const s = await setup(dir, clock, flaky);
    try {
      await s.location.prime();
      const b1 = binding('a@d', 'k1');
      await s.location.replace('a@d', [b1], [{ event: 'added', binding: b1 }]);
      await tick();
      assert.equal(s.events.length, 1);
      failNext = true;
      const b2 = binding('a@d', 'k2');
      await assert.rejects(s.location.replace('a@d', [b1, b2], [{ event: 'added', binding: b2 }]), /disk full/);
      await tick();
      assert.equal(s.events.length, 1, 'nothing announced for a change that was not stored');
      assert.deepEqual((await s.location.lookup('a@d')).map((b: BindingRecord) => b.key), ['k1'], 'memory agrees with the store again');
      assert.equal(s.location.size, 1);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LocationService expiry with several bindings per AOR', () => {
  it('expires only the due bindings of an AOR and keeps the others exactly once', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const s = await setup(dir, clock);
    try {
      await s.location.prime();
      const bs = [
        binding('a@d', 'k1', { expiresAt: clock.now + 60_000 }),
        binding('a@d', 'k2', { expiresAt: clock.now + 5_000 }),
        binding('a@d', 'k3', { expiresAt: clock.now + 60_000 }),
        binding('a@d', 'k4', { expiresAt: clock.now + 5_000 }),
      ];
      await s.location.replace('a@d', bs, bs.map((binding) => ({ event: 'added' as const, binding })));
      clock.now += 6_000;
      await s.location.expire();
      assert.deepEqual((await s.location.lookup('a@d')).map((b) => b.key), ['k1', 'k3']);
      assert.equal(s.location.size, 2);
      clock.now += 60_000;
      await s.location.expire();
      assert.deepEqual((await s.location.lookup('a@d')), []);
      assert.equal(s.location.size, 0);
      assert.equal(s.location.aorCount, 0);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LocationService after a restart', () => {
  it('drops bindings that needed a connection of this node’s previous incarnation, and keeps the rest', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const { store, index, cluster, close } = await openStack(dir, clock);
    const ws = binding('a@d', 'ws', { transport: 'WS', connectionId: 7, node: 'n1' });
    const flow = binding('a@d', 'flow', { transport: 'TCP', connectionId: 8, regId: 1, node: 'n1' });
    const tcp = binding('a@d', 'tcp', { transport: 'TCP', connectionId: 9, node: 'n1' });
    const elsewhere = binding('b@d', 'ws', { transport: 'WS', connectionId: 7, node: 'n2' });
    await store.write([ws, flow, tcp, elsewhere].map((b) => ({ op: 'put' as const, binding: b })));
    const bus = new InProcessBus(log);
    const location = new LocationService({ index, cluster, store, bus, log, node: 'n1', now: () => clock.now });
    try {
      const primed = await location.prime();
      assert.deepEqual(primed, { loaded: 2, expired: 0, orphaned: 2 });
      assert.deepEqual((await location.lookup('a@d')).map((b) => b.key), ['tcp']);
      assert.equal((await location.lookup('b@d')).length, 1, 'another node’s connections are its own business');
      assert.deepEqual((await store.list('a@d')).map((b) => b.key), ['tcp']);
    } finally {
      location.close();
      await close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parks, instead of dropping, those of them with push parameters (RFC 8599): kept until they expire, marked flowless', async () => {
    const dir = tempDir();
    const clock = { now: Date.now() };
    const { store, index, cluster, close } = await openStack(dir, clock);
    const pn = ';pn-provider=fcm;pn-prid=tok;pn-param=p';
    const ws = binding('a@d', 'ws', { transport: 'WS', connectionId: 7, node: 'n1', contact: `sip:a@x.invalid;transport=ws${pn}` });
    const flow = binding('a@d', 'flow', { transport: 'TCP', connectionId: 8, regId: 1, node: 'n1', contact: `sip:a@192.0.2.1:5060;transport=tcp${pn}` });
    const plain = binding('a@d', 'plain', { transport: 'TCP', connectionId: 9, regId: 1, node: 'n1' });
    await store.write([ws, flow, plain].map((b) => ({ op: 'put' as const, binding: b })));
    const bus = new InProcessBus(log);
    const removed: string[] = [];
    bus.subscribe('binding.#', (m) => void removed.push(`${String(m.payload.event)} ${String(m.payload.key)}`));
    const location = new LocationService({ index, cluster, store, bus, log, node: 'n1', now: () => clock.now });
    try {
      const primed = await location.prime();
      assert.deepEqual(primed, { loaded: 2, expired: 0, orphaned: 3 });
      const byKey = (l: BindingRecord[]) => l.map((b) => [b.key, b.connectionId]).sort();
      assert.deepEqual(byKey(await location.lookup('a@d')), [['flow', 0], ['ws', 0]], 'parked: connection id 0');
      assert.deepEqual(byKey(await store.list('a@d')), [['flow', 0], ['ws', 0]], 'durably');
      await tick();
      assert.deepEqual(removed, ['removed plain'], 'only the binding without push parameters is announced gone');
    } finally {
      location.close();
      await close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
