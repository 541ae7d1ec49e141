// The PresenceStore contract (src/storage/ports.ts), run against every adapter: subscriptions and publications
// round-trip whole, writes apply in the order requested, the writes of one event-loop turn commit together (all
// or none) and are durable when their promise resolves, and watcher policies are kept by AOR.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSwitchboardError } from '../../../src/errors.ts';
import type { PublicationRecord, SubscriptionRecord } from '../../../src/storage/ports.ts';
import { nextTurn, useStores, type KnownDrift, type OpenStores } from './stores.ts';

const T0 = 1_700_000_000_000;

function subscription(id: string, over: Partial<SubscriptionRecord> = {}): SubscriptionRecord {
  return {
    id,
    event: 'presence',
    eventId: null,
    presentity: 'alice@example.test',
    watcher: 'bob@example.test',
    watcherAccountId: 'acc-bob',
    state: 'active',
    callId: `call-${id}`,
    localTag: id,
    remoteTag: 'rt-1',
    localUri: 'sip:alice@example.test',
    remoteNameAddr: '"Bob \\"B\\"" <sip:bob@example.test>',
    remoteTarget: 'sip:bob@192.0.2.7:5060;transport=tcp',
    routeSet: ['<sip:edge1.example.test;lr>', '<sip:edge2.example.test;lr>'],
    localCseq: 3,
    remoteCseq: 17,
    accept: ['application/pidf+xml'],
    flow: { transport: 'TCP', address: '192.0.2.7', port: 50_000, connectionId: 12, node: 'node-a' },
    expiresAt: T0 + 3_600_000,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

function publication(etag: string, over: Partial<PublicationRecord> = {}): PublicationRecord {
  return {
    etag,
    aor: 'alice@example.test',
    event: 'presence',
    state: {
      tuples: [{ id: 't1', basic: 'open', contact: 'sip:alice@192.0.2.9', priority: 0.8, notes: ['at my desk ✓'], timestamp: '2023-11-14T22:13:20Z' }],
      person: { id: 'p1', activities: ['on-the-phone', 'other:gardening'], notes: [] },
      notes: ['back at <5>', 'quote " and \\ backslash'],
    },
    flow: { transport: 'HTTP', address: '', port: 0, connectionId: null, node: 'node-a' },
    accountId: 'acc-alice',
    expiresAt: T0 + 3_600_000,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

const ids = (xs: Array<{ id: string }>) => xs.map((x) => x.id).sort();
const etags = (xs: Array<{ etag: string }>) => xs.map((x) => x.etag).sort();

export function presenceStoreContract(open: OpenStores, drift: KnownDrift = {}): void {
  describe('PresenceStore contract', () => {
    const env = useStores(open);
    const todo = (id: string) => ({ todo: drift[id] });

    it('starts empty', async () => {
      const { presence } = env();
      assert.deepEqual(await presence.loadSubscriptions(), []);
      assert.deepEqual(await presence.loadPublications(), []);
      assert.deepEqual(await presence.loadPolicies(), []);
    });

    it('round-trips subscriptions whole; a put replaces by id; a delete removes, of an unknown id too', async () => {
      const { presence } = env();
      const s1 = subscription('s1');
      const s2 = subscription('s2', { eventId: 'e7', state: 'pending', watcherAccountId: null, accept: [], routeSet: [], flow: { ...s1.flow, connectionId: null } });
      await presence.write([{ op: 'put-subscription', subscription: s1 }, { op: 'put-subscription', subscription: s2 }]);
      assert.deepEqual((await presence.loadSubscriptions()).sort((a, b) => (a.id < b.id ? -1 : 1)), [s1, s2]);
      const s1b = { ...s1, presentity: 'carol@example.test', localCseq: 4, expiresAt: T0 + 7_200_000, updatedAt: T0 + 1 };
      await presence.write([{ op: 'put-subscription', subscription: s1b }]);
      await presence.write([{ op: 'delete-subscription', id: 's2' }, { op: 'delete-subscription', id: 'never-there' }]);
      assert.deepEqual(await presence.loadSubscriptions(), [s1b]);
    });

    it('round-trips publications whole; a refresh replaces the old entity tag; a delete removes', async () => {
      const { presence } = env();
      const p1 = publication('e1');
      const other = publication('e9', { aor: 'bob@example.test', state: { tuples: [], person: null, notes: [] }, accountId: null });
      await presence.write([{ op: 'put-publication', publication: p1 }, { op: 'put-publication', publication: other }]);
      assert.deepEqual((await presence.loadPublications()).sort((a, b) => (a.etag < b.etag ? -1 : 1)), [p1, other]);
      const p2 = { ...p1, etag: 'e2', updatedAt: T0 + 5 };
      await presence.write([{ op: 'put-publication', publication: p2, replaces: 'e1' }]);
      assert.deepEqual(etags(await presence.loadPublications()), ['e2', 'e9']);
      const p2b = { ...p2, expiresAt: T0 + 9_000_000 };
      await presence.write([{ op: 'put-publication', publication: p2b, replaces: 'e2' }]);
      assert.deepEqual((await presence.loadPublications()).find((p) => p.etag === 'e2'), p2b, 'replacing itself keeps it');
      await presence.write([{ op: 'delete-publication', etag: 'e9' }, { op: 'delete-publication', etag: 'never-there' }]);
      assert.deepEqual(await presence.loadPublications(), [p2b]);
    });

    it('applies the writes of one turn in the order requested, within a call and across calls', async () => {
      const { presence } = env();
      await presence.write([{ op: 'put-subscription', subscription: subscription('kept') }, { op: 'put-publication', publication: publication('p-old') }]);
      await Promise.all([
        presence.write([{ op: 'put-subscription', subscription: subscription('gone') }, { op: 'delete-subscription', id: 'gone' }]),
        presence.write([{ op: 'delete-subscription', id: 'back' }, { op: 'put-subscription', subscription: subscription('back', { localCseq: 1 }) }]),
        presence.write([{ op: 'put-subscription', subscription: subscription('back', { localCseq: 2 }) }]),
        presence.write([{ op: 'delete-subscription', id: 'kept' }]),
        presence.write([{ op: 'put-subscription', subscription: subscription('kept', { localCseq: 9 }) }]),
        // A publication refreshed twice in the turn: only the last tag stays.
        presence.write([{ op: 'put-publication', publication: publication('p-mid'), replaces: 'p-old' }]),
        presence.write([{ op: 'put-publication', publication: publication('p-new'), replaces: 'p-mid' }]),
        // A tag replaced, then published again.
        presence.write([{ op: 'put-publication', publication: publication('q1') }, { op: 'put-publication', publication: publication('q2'), replaces: 'q1' }]),
        presence.write([{ op: 'put-publication', publication: publication('q1', { aor: 'again@example.test' }) }]),
      ]);
      const subs = await presence.loadSubscriptions();
      assert.deepEqual(ids(subs), ['back', 'kept']);
      assert.deepEqual(subs.map((s) => [s.id, s.localCseq]).sort(), [['back', 2], ['kept', 9]]);
      const pubs = await presence.loadPublications();
      assert.deepEqual(etags(pubs), ['p-new', 'q1', 'q2']);
      assert.equal(pubs.find((p) => p.etag === 'q1')?.aor, 'again@example.test');
    });

    it('commits the writes of one turn together, and each promise only once they are durable for other nodes', async () => {
      const s = env();
      const peer = await s.node();
      const before = s.presence.commits;
      const n = 1500;
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < n; i++) writes.push(s.presence.write([{ op: 'put-subscription', subscription: subscription(`b${i}`) }]));
      writes.push(s.presence.write([{ op: 'put-publication', publication: publication('bp') }]));
      writes.push(s.presence.write([]));
      await Promise.all(writes.map(async (w) => {
        await w;
        // Visible to another node as soon as this promise resolves.
        if (w === writes[0]) assert.equal((await peer.presence.loadSubscriptions()).length, n);
      }));
      assert.equal(s.presence.commits - before, 1);
      assert.equal((await peer.presence.loadSubscriptions()).length, n);
      assert.deepEqual(etags(await peer.presence.loadPublications()), ['bp']);
      await nextTurn();
      await s.presence.write([{ op: 'delete-subscription', id: 'b0' }]);
      assert.equal(s.presence.commits - before, 2);
      assert.equal((await peer.presence.loadSubscriptions()).length, n - 1);
    });

    it('a group that cannot be stored fails all of its writes with STORE_ERR_WRITE and stores none; the next one works', async () => {
      const { presence } = env();
      const bad = { ...subscription('bad'), presentity: undefined } as unknown as SubscriptionRecord;
      const results = await Promise.allSettled([
        presence.write([{ op: 'put-subscription', subscription: subscription('innocent') }]),
        presence.write([{ op: 'put-subscription', subscription: bad }]),
        presence.write([{ op: 'put-publication', publication: publication('innocent-too') }]),
      ]);
      for (const r of results) assert.ok(r.status === 'rejected' && isSwitchboardError(r.reason, 'STORE_ERR_WRITE'), String(r.status === 'rejected' ? r.reason : r.status));
      assert.deepEqual(await presence.loadSubscriptions(), []);
      assert.deepEqual(await presence.loadPublications(), []);
      await presence.write([{ op: 'put-subscription', subscription: subscription('later') }]);
      assert.deepEqual(ids(await presence.loadSubscriptions()), ['later']);
    });

    it('close() still stores what was requested before it', todo('close'), async () => {
      const s = env();
      const w = s.presence.write([{ op: 'put-subscription', subscription: subscription('last') }]);
      s.presence.close?.();
      await w;
      const peer = await s.node();
      assert.deepEqual(ids(await peer.presence.loadSubscriptions()), ['last']);
    });

    it('keeps one watcher policy per AOR: put replaces, delete removes', async () => {
      const s = env();
      const { presence } = s;
      await presence.putPolicy({ aor: 'alice@example.test', mode: 'allow-list', allow: ['bob@example.test', 'carol@example.test'], updatedAt: T0 });
      await presence.putPolicy({ aor: 'bob@example.test', mode: 'nobody', allow: [], updatedAt: T0 + 1 });
      const sorted = async () => (await (await s.node()).presence.loadPolicies()).sort((a, b) => (a.aor < b.aor ? -1 : 1));
      assert.deepEqual(await sorted(), [
        { aor: 'alice@example.test', mode: 'allow-list', allow: ['bob@example.test', 'carol@example.test'], updatedAt: T0 },
        { aor: 'bob@example.test', mode: 'nobody', allow: [], updatedAt: T0 + 1 },
      ]);
      await presence.putPolicy({ aor: 'alice@example.test', mode: 'realm', allow: ['dave@example.test'], updatedAt: T0 + 2 });
      await presence.deletePolicy('bob@example.test');
      await presence.deletePolicy('nobody@example.test');
      assert.deepEqual(await sorted(), [{ aor: 'alice@example.test', mode: 'realm', allow: ['dave@example.test'], updatedAt: T0 + 2 }]);
    });
  });
}
