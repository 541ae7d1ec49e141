// The broker restarts mid-test (rabbitmqctl stop_app / start_app): Switchboard keeps serving SIP, holds what it
// publishes in its outbox, reconnects, replays everything unconfirmed, and no event is lost; afterwards the Kazoo
// directory answers again (its queues and bindings declared anew).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect } from 'amqplib';
import type { AmqpBus } from '../../src/bus/amqp.ts';
import { KazooPeer, until, type Json } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit, restartBroker, type TestVhost } from '../helpers/rabbitmq.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const skip = await missingRabbit();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('broker restart', { skip, timeout: 120_000 }, () => {
  let vhost: TestVhost;
  let server: TestServer;

  before(async () => {
    vhost = await createVhost();
    server = await startTestServer({ flags: { bus: vhost.url, realm: ['example.test'] }, users: { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' } });
  });
  after(async () => {
    await server?.close();
    await vhost?.delete();
  });

  it('loses no published event across a restart, and the directory answers again afterwards', async () => {
    const bus = server.bus as AmqpBus;
    // A consumer's durable queue on Switchboard's durable events exchange: it outlives the restart.
    {
      const conn = await connect(vhost.url);
      const ch = await conn.createChannel();
      await ch.assertQueue('audit', { durable: true, autoDelete: false });
      await ch.bindQueue('audit', 'switchboard', '#');
      await conn.close();
    }

    const N = 600;
    let restarted = false;
    let registeredDuringOutage = 0;
    const publishing = (async () => {
      for (let seq = 0; seq < N; seq++) {
        bus.publish('test.seq', { seq });
        await sleep(4);
      }
    })();
    await sleep(600);
    const restart = restartBroker(1000).then(() => (restarted = true));
    // While the broker is away: SIP still works, its binding event waits in the outbox.
    await until(() => !bus.connected, 'the connection loss', 10_000);
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      const r = await register(c, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600 });
      assert.equal(r.status, 200);
      if (!restarted) registeredDuringOutage = 1;
    } finally {
      c.close();
    }
    assert.ok(bus.stats().pending > 0, 'events wait in the outbox');
    await Promise.all([publishing, restart]);
    await until(() => bus.connected && bus.stats().pending === 0, 'reconnected, everything confirmed', 30_000);
    const s = bus.stats();
    assert.ok(s.connections >= 2, `reconnected (${s.connections} connections)`);
    assert.equal(s.dropped, 0);
    assert.equal(registeredDuringOutage, 1, 'the registration happened while the broker was down');

    // Every event is in the durable queue (at least once).
    const conn = await connect(vhost.url);
    const ch = await conn.createChannel();
    const seqs = new Set<number>();
    const bindings: Json[] = [];
    await ch.consume('audit', (m) => {
      if (!m) return;
      const body = JSON.parse(m.content.toString()) as Json;
      if (m.fields.routingKey === 'test.seq') seqs.add(body.seq as number);
      else if (m.fields.routingKey.startsWith('binding.')) bindings.push(body);
    }, { noAck: true });
    await until(() => seqs.size === N && bindings.length >= 1, `all ${N} events (have ${seqs.size})`, 10_000).catch(() => {});
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !seqs.has(i));
    assert.deepEqual(missing, [], `${missing.length} events lost`);
    assert.ok(bindings.some((b) => b.event === 'added' && b.aor === 'alice@example.test'), 'the binding made during the outage was announced');
    await conn.close();

    // The directory after the restart: authn answered, a registration announced as reg_success.
    const kazoo = await KazooPeer.open(vhost.url);
    try {
      const req = { ...kazoo.envelope('authn_req'), 'Auth-User': 'bob', 'Auth-Realm': 'example.test', From: 'sip:bob@example.test', To: 'sip:bob@example.test' };
      const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', req);
      assert.equal(resp?.['Event-Name'], 'authn_resp');
      const listener = await kazoo.listen('registrar', ['registration.success.*.*']);
      const c2 = await SipTestClient.open('UDP', server.sipPort);
      try {
        assert.equal((await register(c2, { user: 'bob', password: 'bob-pw', domain: 'example.test', expires: 600 })).status, 200);
      } finally {
        c2.close();
      }
      await until(() => listener.messages.some((m) => m.Username === 'bob'), 'reg_success for bob');
    } finally {
      await kazoo.close();
    }
  });
});
