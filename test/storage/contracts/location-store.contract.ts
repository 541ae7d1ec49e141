// The LocationStore contract (src/storage/ports.ts) common to every adapter, however it keeps the bindings (SQLite:
// a journal with compaction, tested further in sqlite-location-store.test.ts; PostgreSQL: an upserted table):
// write applies in order with the last write of a binding winning, the writes of one turn commit in groups (one per
// turn; SQLite's also closed after 0.25 ms of the turn) and are readable by another node once their promise
// resolves, loadAll and list give back what was put.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BindingRecord } from '../../../src/storage/ports.ts';
import { binding } from '../../helpers/bindings.ts';
import { nextTurn, useStores, type KnownDrift, type OpenStores } from './stores.ts';

const keys = (bs: BindingRecord[]) => bs.map((b) => `${b.aor}|${b.key}|${b.cseq}`);

export function locationStoreContract(open: OpenStores, drift: KnownDrift = {}): void {
  describe('LocationStore contract', () => {
    const env = useStores(open);
    const todo = (id: string) => ({ todo: drift[id] });

    it('gives back every field as put', async () => {
      const { location } = env();
      const full = binding('alice@example.test', '<urn:uuid:00000000-0000-4000-8000-000000000001>|1', {
        contact: 'sip:alice@198.51.100.7:40000;transport=tcp;ob', params: ';+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>";reg-id=1',
        q: 0.7, expiresAt: 1_700_000_600_000, callId: 'call “ü”', cseq: 4_000_000_000, path: ['<sip:edge1;lr>', '<sip:edge2;lr;ob>'],
        instanceId: '<urn:uuid:00000000-0000-4000-8000-000000000001>', regId: 1, transport: 'TLS', sourceAddress: '2001:db8::7', sourcePort: 40000,
        localAddress: '2001:db8::1', localPort: 5061, connectionId: 123_456, node: 'node-b', userAgent: 'Phone/1.0', createdAt: 1_700_000_000_000,
        updatedAt: 1_700_000_000_500, accountId: '0f0e0d0c-0000-4000-8000-000000000000',
      });
      const bare = binding('bob@example.test', 'sip:bob@192.0.2.2', { q: null, path: [], instanceId: null, regId: null, connectionId: null, userAgent: null, accountId: null });
      await location.write([{ op: 'put', binding: full }, { op: 'put', binding: bare }]);
      assert.deepEqual(await location.list('alice@example.test'), [full]);
      assert.deepEqual(await location.list('bob@example.test'), [bare]);
      const all = await location.loadAll();
      assert.deepEqual(all.sort((a, b) => (a.aor < b.aor ? -1 : 1)), [full, bare]);
    });

    it('lists one AOR ordered by key, or all ordered by AOR then key', async () => {
      const { location } = env();
      await location.write(['k3', 'k1', 'k2'].map((k) => ({ op: 'put' as const, binding: binding('b@d', k) })));
      await location.write([{ op: 'put', binding: binding('a@d', 'k9') }, { op: 'put', binding: binding('c@d', 'k0') }]);
      assert.deepEqual(keys(await location.list('b@d')), ['b@d|k1|1', 'b@d|k2|1', 'b@d|k3|1']);
      assert.deepEqual(keys(await location.list()), ['a@d|k9|1', 'b@d|k1|1', 'b@d|k2|1', 'b@d|k3|1', 'c@d|k0|1']);
      assert.deepEqual(await location.list('nobody@d'), []);
      assert.equal((await location.loadAll()).length, 5);
    });

    it('the last write of each binding wins, within a call, within a turn and across turns; deletes remove', async () => {
      const { location } = env();
      await Promise.all([
        location.write([{ op: 'put', binding: binding('a@d', 'k1', { cseq: 1 }) }, { op: 'put', binding: binding('a@d', 'k1', { cseq: 2 }) }]),
        location.write([{ op: 'put', binding: binding('a@d', 'k1', { cseq: 3 }) }, { op: 'put', binding: binding('a@d', 'k2') }]),
        location.write([{ op: 'put', binding: binding('b@d', 'k1') }, { op: 'delete', aor: 'b@d', key: 'k1' }]),
        location.write([{ op: 'delete', aor: 'c@d', key: 'k1' }, { op: 'put', binding: binding('c@d', 'k1', { cseq: 7 }) }]),
        location.write([{ op: 'delete', aor: 'nobody@d', key: 'k' }]),
      ]);
      assert.deepEqual(keys(await location.list()), ['a@d|k1|3', 'a@d|k2|1', 'c@d|k1|7']);
      await location.write([{ op: 'put', binding: binding('a@d', 'k2', { cseq: 5 }) }]);
      await location.write([{ op: 'delete', aor: 'a@d', key: 'k1' }]);
      assert.deepEqual(keys(await location.list()), ['a@d|k2|5', 'c@d|k1|7']);
    });

    it('a put replaces the whole record, its creation time included', todo('put-replaces-created-at'), async () => {
      const { location } = env();
      await location.write([{ op: 'put', binding: binding('a@d', 'k', { createdAt: 1_000, contact: 'sip:old@192.0.2.1' }) }]);
      await location.write([{ op: 'put', binding: binding('a@d', 'k', { createdAt: 2_000, contact: 'sip:new@192.0.2.1' }) }]);
      assert.deepEqual((await location.list('a@d')).map((b) => [b.contact, b.createdAt]), [['sip:new@192.0.2.1', 2_000]]);
      // Removed and registered afresh in one turn: the new binding's creation time.
      await Promise.all([location.write([{ op: 'delete', aor: 'a@d', key: 'k' }]), location.write([{ op: 'put', binding: binding('a@d', 'k', { createdAt: 3_000 }) }])]);
      assert.deepEqual((await location.list('a@d')).map((b) => b.createdAt), [3_000]);
    });

    it('commits the writes of one turn in groups, each promise once its write is readable by another node', async () => {
      const s = env();
      const peer = await s.node();
      const before = s.location.commits;
      const n = 1200;
      const writes = Array.from({ length: n }, (_, i) => s.location.write([{ op: 'put', binding: binding(`u${i}@d`, 'k') }]));
      writes.push(s.location.write([]));
      await writes[0];
      assert.ok((await peer.location.loadAll()).some((b) => b.aor === 'u0@d'));
      await Promise.all(writes);
      assert.equal((await peer.location.loadAll()).length, n);
      const groups = s.location.commits - before;
      // One for PostgreSQL; SQLite closes a group after 0.25 ms of the turn (~100–1,000 writes here, fewer on a
      // loaded machine): groups, not a commit per write.
      assert.ok(groups >= 1 && groups < n / 2, `${groups} commits for ${n} writes`);
      await nextTurn();
      await s.location.write([{ op: 'delete', aor: 'u0@d', key: 'k' }]);
      assert.equal(s.location.commits - before, groups + 1);
      assert.equal((await peer.location.list()).length, n - 1);
    });
  });
}
