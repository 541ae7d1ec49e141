// The MessageStore and AppSessionStore contracts (src/storage/ports/messaging.ts), run against every adapter:
// delivery order, idempotent sends (before and after delivery), the quota, acks that only the recipient can make
// and only once, expiry that reports unread messages once across nodes, sessions that go with their account.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NewMessage } from '../../../src/storage/ports/messaging.ts';
import { useStores, type KnownDrift, type OpenStores } from './stores.ts';

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;

export function messageStoreContract(open: OpenStores, drift: KnownDrift = {}): void {
  describe('MessageStore contract', () => {
    const env = useStores(open);
    const todo = (id: string) => ({ todo: drift[id] });
    const account = (username: string) => env().accounts.create({ username, realm: 'example.test', passwordHash: null, credentials: [] });
    const msg = (accountId: string, text: string, o: Partial<NewMessage> = {}): NewMessage => ({
      accountId,
      deviceId: null,
      sender: 'sip:bob@example.test',
      contentType: 'text/plain',
      body: Buffer.from(text),
      clientId: null,
      createdAt: T0,
      expiresAt: T0 + DAY,
      ...o,
    });

    it('delivers in the order stored, bodies intact, and an ack removes one for good', async () => {
      const s = env();
      const a = await account('alice');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await s.messages.enqueue(msg(a.id, `m${i}`, { body: Buffer.from([i, 0, 255, 10]) }), 100);
        assert.equal(r.outcome, 'stored');
        if (r.outcome === 'stored') ids.push(r.message.id);
      }
      const got = await s.messages.pending(a.id, null, T0, 100);
      assert.deepEqual(got.map((m) => m.id), ids);
      assert.deepEqual(got[3]!.body, Buffer.from([3, 0, 255, 10]));
      assert.equal(got[0]!.sender, 'sip:bob@example.test');
      assert.equal(got[0]!.contentType, 'text/plain');
      assert.ok(got.every((m, i) => i === 0 || m.seq > got[i - 1]!.seq));
      assert.equal(await s.messages.ack(a.id, ids[1]!, T0), true);
      assert.equal(await s.messages.ack(a.id, ids[1]!, T0), false, 'a replayed ack removes nothing');
      const peer = await s.node();
      assert.deepEqual((await peer.messages.pending(a.id, null, T0, 100)).map((m) => m.id), [ids[0], ids[2], ids[3], ids[4]]);
      assert.deepEqual((await s.messages.pending(a.id, null, T0, 2, got[2]!.seq)).map((m) => m.id), [ids[3], ids[4]], 'paged after a seq');
      assert.equal(await s.messages.count(a.id, T0), 4);
      assert.deepEqual(await s.messages.accountsWaiting(T0, 10), [a.id]);
      assert.deepEqual(await s.messages.accountsWaiting(T0 + DAY, 10), [], 'none once expired');
    });

    it('tells a message\u2019s status (queued, then delivered) and counts queued messages per account, fullest first', async () => {
      const s = env();
      const a = await account('alice');
      const b = await account('bob');
      const ids: string[] = [];
      for (const [who, text] of [[a.id, 'a1'], [a.id, 'a2'], [b.id, 'b1'], [a.id, 'a3']] as const) {
        const r = await s.messages.enqueue(msg(who, text), 10);
        assert.equal(r.outcome, 'stored');
        if (r.outcome === 'stored') ids.push(r.message.id);
      }
      assert.deepEqual(await s.messages.status(ids[0]!), { accountId: a.id, sender: 'sip:bob@example.test', deliveredAt: null, expiresAt: T0 + DAY });
      assert.equal(await s.messages.status('no-such-id'), null);
      assert.deepEqual(await s.messages.queuedByAccount(T0, 10), [{ accountId: a.id, queued: 3 }, { accountId: b.id, queued: 1 }]);
      assert.deepEqual(await s.messages.queuedByAccount(T0, 1), [{ accountId: a.id, queued: 3 }], 'at most limit accounts');
      assert.equal(await s.messages.ack(a.id, ids[0]!, T0 + 5), true);
      const peer = await s.node();
      assert.equal((await peer.messages.status(ids[0]!))?.deliveredAt, T0 + 5, 'seen by another node');
      assert.deepEqual(await peer.messages.queuedByAccount(T0, 10), [{ accountId: a.id, queued: 2 }, { accountId: b.id, queued: 1 }]);
      assert.deepEqual(await s.messages.queuedByAccount(T0 + DAY, 10), [], 'none once expired');
    });

    it('an ack by another account removes nothing', async () => {
      const s = env();
      const a = await account('alice');
      const b = await account('bob');
      const r = await s.messages.enqueue(msg(a.id, 'for alice'), 10);
      assert.equal(r.outcome, 'stored');
      const id = r.outcome === 'stored' ? r.message.id : '';
      assert.equal(await s.messages.ack(b.id, id, T0), false);
      assert.equal(await s.messages.ack(b.id, 'no-such-id', T0), false);
      assert.deepEqual(await s.messages.pending(b.id, null, T0, 10), []);
      assert.equal((await s.messages.pending(a.id, null, T0, 10)).length, 1);
    });

    it('stores a retried send once, before and after its delivery', async () => {
      const s = env();
      const a = await account('alice');
      const first = await s.messages.enqueue(msg(a.id, 'hi', { clientId: 'c-1' }), 10);
      assert.equal(first.outcome, 'stored');
      const id = first.outcome === 'stored' ? first.message.id : '';
      assert.deepEqual(await s.messages.enqueue(msg(a.id, 'hi', { clientId: 'c-1' }), 10), { outcome: 'duplicate', id, delivered: false });
      // Another sender's id of the same value is another message.
      assert.equal((await s.messages.enqueue(msg(a.id, 'hi', { clientId: 'c-1', sender: 'sip:carol@example.test' }), 10)).outcome, 'stored');
      assert.equal(await s.messages.ack(a.id, id, T0), true);
      assert.deepEqual(await s.messages.enqueue(msg(a.id, 'hi', { clientId: 'c-1' }), 10), { outcome: 'duplicate', id, delivered: true });
      assert.equal(await s.messages.count(a.id, T0), 1);
    });

    it('two nodes sending the same client id at once store it once', async () => {
      const s = env();
      const peer = await s.node();
      const a = await account('alice');
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? s : peer).messages.enqueue(msg(a.id, 'x', { clientId: 'same' }), 100)));
      assert.equal(rs.filter((r) => r.outcome === 'stored').length, 1);
      assert.equal(await s.messages.count(a.id, T0), 1);
    });

    it('keeps to the quota of undelivered messages, across nodes; an ack makes room', async () => {
      const s = env();
      const peer = await s.node();
      const a = await account('alice');
      const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? s : peer).messages.enqueue(msg(a.id, `m${i}`), 5)));
      assert.equal(rs.filter((r) => r.outcome === 'stored').length, 5);
      assert.equal(rs.filter((r) => r.outcome === 'quota').length, 7);
      const [first] = await s.messages.pending(a.id, null, T0, 1);
      await s.messages.ack(a.id, first!.id, T0);
      assert.equal((await s.messages.enqueue(msg(a.id, 'one more'), 5)).outcome, 'stored');
      assert.equal((await s.messages.enqueue(msg(a.id, 'over'), 5)).outcome, 'quota');
    });

    it('a device gets its own and the account-wide messages, not another device\u2019s', async () => {
      const s = env();
      const a = await account('alice');
      await s.messages.enqueue(msg(a.id, 'all'), 10);
      await s.messages.enqueue(msg(a.id, 'd1', { deviceId: 1 }), 10);
      await s.messages.enqueue(msg(a.id, 'd2', { deviceId: 2 }), 10);
      const text = async (d: number | null) => (await s.messages.pending(a.id, d, T0, 10)).map((m) => m.body.toString());
      assert.deepEqual(await text(1), ['all', 'd1']);
      assert.deepEqual(await text(2), ['all', 'd2']);
      assert.deepEqual(await text(null), ['all', 'd1', 'd2']);
    });

    it('expired messages are not delivered, and expiry reports each unread one once across nodes', async () => {
      const s = env();
      const peer = await s.node();
      const a = await account('alice');
      for (let i = 0; i < 6; i++) await s.messages.enqueue(msg(a.id, `old${i}`, { clientId: `o${i}`, expiresAt: T0 + 1000 }), 100);
      await s.messages.enqueue(msg(a.id, 'fresh'), 100);
      const [read] = await s.messages.pending(a.id, null, T0, 1);
      await s.messages.ack(a.id, read!.id, T0);
      assert.deepEqual((await s.messages.pending(a.id, null, T0 + 1000, 10)).map((m) => m.body.toString()), ['fresh']);
      assert.equal(await s.messages.count(a.id, T0 + 1000), 1);
      const swept = (await Promise.all([s.messages.expire(T0 + 1000, 2), peer.messages.expire(T0 + 1000, 2), s.messages.expire(T0 + 1000, 100), peer.messages.expire(T0 + 1000, 100)])).flat();
      assert.deepEqual(swept.map((m) => m.body.toString()).sort(), ['old1', 'old2', 'old3', 'old4', 'old5'], 'the acked one is not reported');
      assert.deepEqual(await s.messages.expire(T0 + 1000, 100), []);
      // The expired (acked) row's client id is gone with it: the id is usable again.
      assert.equal((await s.messages.enqueue(msg(a.id, 'again', { clientId: 'o0' }), 100)).outcome, 'stored');
    });

    it('messages go with their account', todo('cascade'), async () => {
      const s = env();
      const a = await account('alice');
      await s.messages.enqueue(msg(a.id, 'x'), 10);
      await assert.rejects(s.messages.enqueue(msg('no-such-account', 'x'), 10));
      assert.equal(await s.accounts.delete(a.id), true);
      assert.equal(await s.messages.count(a.id, T0), 0);
    });
  });

  describe('AppSessionStore contract', () => {
    const env = useStores(open);
    const account = (username: string) => env().accounts.create({ username, realm: 'example.test', passwordHash: null, credentials: [] });
    const session = (kid: string, accountId: string, deviceId: number | null, createdAt = T0) => ({
      kid,
      accountId,
      deviceId,
      sealedKey: `sealed-${kid}`,
      push: null,
      createdAt,
      expiresAt: createdAt + DAY,
    });

    it('creates, reads, lists newest first, shortens (never lengthens), deletes', async () => {
      const s = env();
      const a = await account('alice');
      await s.messages.createSession(session('k1', a.id, 1, T0));
      await s.messages.createSession(session('k2', a.id, 1, T0 + 5));
      await s.messages.createSession(session('k3', a.id, 2, T0 + 9));
      await s.messages.createSession(session('k4', a.id, null, T0 + 2));
      await assert.rejects(s.messages.createSession(session('k1', a.id, 1)), 'a kid is unique');
      assert.deepEqual(await (await s.node()).messages.getSession('k1'), session('k1', a.id, 1, T0));
      assert.equal(await s.messages.getSession('nope'), null);
      assert.deepEqual((await s.messages.listSessions(a.id)).map((x) => x.kid), ['k3', 'k2', 'k4', 'k1']);
      assert.deepEqual((await s.messages.listSessions(a.id, 1)).map((x) => x.kid), ['k2', 'k1']);
      assert.deepEqual((await s.messages.listSessions(a.id, null)).map((x) => x.kid), ['k4']);
      assert.equal(await s.messages.shortenSession('k1', T0 + 100), true);
      assert.equal(await s.messages.shortenSession('k1', T0 + DAY * 9), true);
      assert.equal((await s.messages.getSession('k1'))!.expiresAt, T0 + 100);
      assert.equal(await s.messages.shortenSession('nope', T0), false);
      const push = { provider: 'webpush' as const, prid: 'https://push.example/x', param: null, p256dh: 'BPk', auth: 'q1w', encrypt: true };
      assert.equal(await s.messages.setSessionPush('k2', push), true);
      assert.deepEqual((await (await s.node()).messages.getSession('k2'))!.push, push);
      assert.equal(await s.messages.setSessionPush('k2', null), true);
      assert.equal((await s.messages.getSession('k2'))!.push, null);
      assert.equal(await s.messages.setSessionPush('nope', push), false);
      assert.equal(await s.messages.deleteSession('k4'), true);
      assert.equal(await s.messages.deleteSession('k4'), false);
      assert.equal(await s.messages.deleteSessions(a.id, 1), 2);
      assert.deepEqual((await s.messages.listSessions(a.id)).map((x) => x.kid), ['k3']);
      assert.equal(await s.messages.deleteSessions(a.id), 1);
    });

    it('expires sessions past their time, and they go with their account', async () => {
      const s = env();
      const a = await account('alice');
      const b = await account('bob');
      await s.messages.createSession(session('a1', a.id, null));
      await s.messages.createSession({ ...session('a2', a.id, null), expiresAt: T0 + 10 });
      await s.messages.createSession(session('b1', b.id, 1));
      assert.equal(await s.messages.expireSessions(T0 + 10), 1);
      assert.equal(await s.messages.getSession('a2'), null);
      assert.equal(await s.accounts.delete(b.id), true);
      assert.equal(await s.messages.getSession('b1'), null);
      assert.notEqual(await s.messages.getSession('a1'), null);
    });
  });
}
