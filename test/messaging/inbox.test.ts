// The app inbox over real sockets (issue 18): a WebSocket client receives queued messages in order, then the
// "queue empty" marker; it acks some, reconnects and gets exactly the unacked ones, in order; a retried send with
// the same client id is delivered once; a message sent while the socket is open arrives on it; GET /v1/messages and
// DELETE /v1/messages/{id} for clients without a socket; sessions roll over (the old key stays good for the overlap)
// and end with logout and with a password change; the database holds session keys only sealed; bus events carry
// no body.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { collectEvents } from '../helpers/events.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';
import { appLogin, http, openStream, queueEmpty, send, sessionOf, type Session } from './helpers.ts';

describe('app inbox', () => {
  let server: TestServer;
  let base: string;
  let alice: Session;
  let bob: Session;

  before(async () => {
    server = await startTestServer({ users: { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' } });
    base = server.httpUrl;
    alice = await appLogin(base, 'alice@example.test', 'alice-pw');
    bob = await appLogin(base, 'bob@example.test', 'bob-pw');
  });
  after(() => server.close());

  it('delivers in order, redelivers exactly the unacked ones after a reconnect, and a retried send once', async () => {
    const events = await collectEvents(server.bus, 'message.*');
    for (let i = 1; i <= 5; i++) {
      const r = await send(base, bob, 'sip:alice@example.test', `hello ${i}`, `c-${i}`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.status, 'stored');
    }
    const retry = await send(base, bob, 'alice@example.test', 'hello 3', 'c-3');
    assert.equal(retry.json.status, 'duplicate');

    const first = await openStream(base, alice);
    await first.waitFor(queueEmpty, 'the backlog and the marker');
    assert.deepEqual(first.texts(), ['hello 1', 'hello 2', 'hello 3', 'hello 4', 'hello 5']);
    assert.equal(first.frames.at(-1)!.type, 'queue-empty', 'the marker comes after the backlog');
    const msgs = first.frames.filter((f) => f.type === 'message');
    assert.equal(msgs[0]!.sender, 'sip:bob@example.test');
    first.ack(msgs[0]!.id as string);
    first.ack(msgs[2]!.id as string);
    // Live: stored while the socket is open, it arrives on it.
    await send(base, bob, 'alice@example.test', 'live', 'c-6');
    await first.waitFor((f) => f.some((x) => x.type === 'message' && Buffer.from(x.body as string, 'base64').toString() === 'live'), 'the live message');
    await events.waitFor((e) => e.filter((x) => x.topic === 'message.delivered').length === 2, 'two delivered events');
    await first.close();

    const second = await openStream(base, alice);
    await second.waitFor(queueEmpty, 'the backlog again');
    assert.deepEqual(second.texts(), ['hello 2', 'hello 4', 'hello 5', 'live']);
    for (const f of second.frames.filter((x) => x.type === 'message')) second.ack(f.id as string);
    await events.waitFor((e) => e.filter((x) => x.topic === 'message.delivered').length === 6, 'all delivered');
    await second.close();

    const third = await openStream(base, alice);
    await third.waitFor(queueEmpty, 'an empty queue');
    assert.deepEqual(third.texts(), []);
    await third.close();
    // A retry after delivery is still the same message.
    assert.equal((await send(base, bob, 'alice@example.test', 'hello 3', 'c-3')).json.status, 'duplicate');

    // The events carry ids and sizes, never a body.
    await events.settle();
    const topics = new Set(events.events.map((e) => e.topic));
    assert.ok(topics.has('message.received') && topics.has('message.stored') && topics.has('message.delivered'));
    assert.ok(!JSON.stringify(events.events).includes('hello'), 'no body on the bus');
    assert.ok(!JSON.stringify(events.events).includes(Buffer.from('hello 1').toString('base64')), 'no body on the bus');
    events.stop();
    const metrics = await (await fetch(base + '/metrics')).text();
    assert.match(metrics, /switchboard_messages_total\{event="stored"\} 6/);
    assert.match(metrics, /switchboard_messages_total\{event="delivered"\} 6/);
    assert.match(metrics, /switchboard_messages_total\{event="duplicate"\} 2/);
  });

  it('serves clients without a socket: GET in order, DELETE acks', async () => {
    await send(base, alice, 'bob@example.test', 'one');
    await send(base, alice, 'bob@example.test', 'two');
    const list = await http(base, 'GET', '/v1/messages', { auth: bob.auth });
    assert.equal(list.status, 200);
    const messages = list.json.messages as Array<{ id: string; body: string; sender: string }>;
    assert.deepEqual(messages.map((m) => Buffer.from(m.body, 'base64').toString()), ['one', 'two']);
    assert.equal(messages[0]!.sender, 'sip:alice@example.test');
    assert.equal((await http(base, 'DELETE', `/v1/messages/${messages[0]!.id}`, { auth: bob.auth })).status, 204);
    const rest = await http(base, 'GET', '/v1/messages?limit=1', { auth: bob.auth });
    assert.deepEqual((rest.json.messages as Array<{ id: string }>).map((m) => m.id), [messages[1]!.id]);
    assert.equal(rest.json.more, false);
    assert.equal((await http(base, 'DELETE', `/v1/messages/${messages[1]!.id}`, { auth: bob.auth })).status, 204);
  });

  it('tells the sender of the delivery: a receipt on its stream, and GET \u2026/status for itself only', async () => {
    const bobStream = await openStream(base, bob);
    await bobStream.waitFor(queueEmpty, 'bob\u2019s marker');
    const sent = await send(base, bob, 'alice@example.test', 'read me', 'r-1');
    const id = sent.json.id as string;
    assert.deepEqual((await http(base, 'GET', `/v1/messages/${id}/status`, { auth: bob.auth })).json, { id, status: 'queued', deliveredAt: null });
    assert.equal((await http(base, 'GET', `/v1/messages/${id}/status`, { auth: alice.auth })).status, 404, 'not the sender');
    assert.equal((await http(base, 'GET', '/v1/messages/no-such/status', { auth: bob.auth })).status, 404);
    assert.equal((await http(base, 'GET', `/v1/messages/${id}/status`, {})).status, 401);
    assert.equal(bobStream.frames.filter((f) => f.type === 'receipt').length, 0, 'no receipt before the ack');
    const aliceStream = await openStream(base, alice);
    await aliceStream.waitFor((f) => f.some((x) => x.type === 'message' && x.id === id), 'the message');
    aliceStream.ack(id);
    await bobStream.waitFor((f) => f.some((x) => x.type === 'receipt'), 'the receipt');
    const receipt = bobStream.frames.find((f) => f.type === 'receipt')!;
    assert.deepEqual({ ...receipt, timestamp: typeof receipt.timestamp }, { type: 'receipt', id, status: 'delivered', via: 'app', timestamp: 'number' });
    const st = await http(base, 'GET', `/v1/messages/${id}/status`, { auth: bob.auth });
    assert.equal(st.json.status, 'delivered');
    assert.equal(typeof st.json.deliveredAt, 'number');
    assert.ok(!aliceStream.frames.some((f) => f.type === 'receipt'), 'the recipient gets no receipt for it');
    await aliceStream.close();
    await bobStream.close();
  });

  it('shows admins the queued counts per account (never content); nobody else', async () => {
    await server.accountService.create('root@example.test', 'root-pw', ['admin']);
    const admin = (await http(base, 'POST', '/auth/login', { body: { username: 'root@example.test', password: 'root-pw' } })).json.access_token as string;
    const user = (await http(base, 'POST', '/auth/login', { body: { username: 'bob@example.test', password: 'bob-pw' } })).json.access_token as string;
    for (const t of ['q1', 'q2', 'q3']) await send(base, bob, 'alice@example.test', `secret ${t}`);
    await send(base, alice, 'bob@example.test', 'secret q4');
    const r = await http(base, 'GET', '/v1/admin/messages/queued', { auth: `Bearer ${admin}` });
    assert.equal(r.status, 200);
    const rows = r.json.accounts as Array<{ aor: string; queued: number }>;
    assert.deepEqual(rows.map((x) => [x.aor, x.queued]), [['alice@example.test', 3], ['bob@example.test', 1]]);
    assert.ok(!JSON.stringify(r.json).includes('secret'), 'counts, never content');
    assert.equal((await http(base, 'GET', '/v1/admin/messages/queued', { auth: `Bearer ${user}` })).status, 403);
    assert.equal((await http(base, 'GET', '/v1/admin/messages/queued', {})).status, 401);
    // Drain them again for the tests after.
    for (const [s, n] of [[alice, 3], [bob, 1]] as const) {
      const list = (await http(base, 'GET', '/v1/messages', { auth: s.auth })).json.messages as Array<{ id: string }>;
      assert.equal(list.length, n);
      for (const m of list) await http(base, 'DELETE', `/v1/messages/${m.id}`, { auth: s.auth });
    }
  });

  it('rolls a session over with an overlap, ends it on logout, and keeps keys sealed in the database', async () => {
    const carol = await (async () => {
      await server.accountService.create('carol@example.test', 'carol-pw');
      return appLogin(base, 'carol@example.test', 'carol-pw');
    })();
    const rolled = await http(base, 'POST', '/v1/sessions/rollover', { auth: carol.auth });
    assert.equal(rolled.status, 200);
    const next = sessionOf(rolled.json);
    assert.notEqual(next.kid, carol.kid);
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: next.auth })).status, 200);
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: carol.auth })).status, 200, 'the old key works during the overlap');
    const rows = await storeQuery<{ kid: string; sealed_key: string; expires_at: number }>(server.dataDir, 'SELECT kid, sealed_key, expires_at FROM app_sessions ORDER BY created_at');
    for (const s of [carol, next]) {
      const row = rows.find((r) => r.kid === s.kid)!;
      assert.ok(row, 'stored');
      const raw = Buffer.from(s.key, 'base64url');
      assert.ok(!row.sealed_key.includes(s.key), 'not the base64url key');
      assert.ok(!Buffer.from(row.sealed_key, 'base64url').includes(raw), 'not the raw key');
      assert.ok(!row.sealed_key.includes(raw.toString('hex')) && !row.sealed_key.includes(raw.toString('base64')), 'not hex or base64 either');
    }
    assert.ok(rows.find((r) => r.kid === carol.kid)!.expires_at <= Date.now() + 3600_000 + 5000, 'the old one now ends with the overlap');
    assert.equal((await http(base, 'DELETE', '/v1/sessions/current', { auth: next.auth })).status, 204);
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: next.auth })).status, 401);
  });

  it('a password change ends the account\u2019s sessions', async () => {
    await server.accountService.create('dave@example.test', 'dave-pw');
    const dave = await appLogin(base, 'dave@example.test', 'dave-pw');
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: dave.auth })).status, 200);
    const account = (await server.accounts.findByName('dave', 'example.test'))!;
    await server.accountService.setPassword(account, 'dave-pw-2');
    const r = await http(base, 'GET', '/v1/messages', { auth: dave.auth });
    assert.equal(r.status, 401);
    assert.equal((r.json.error as { code: string }).code, 'MSG_ERR_SESSION');
    await assert.rejects(openStream(base, dave), (e: Error & { status?: number }) => e.status === 401);
  });
});
