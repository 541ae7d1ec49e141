// The AMQP EventBus adapter against the machine's RabbitMQ: the same port semantics as the in-process bus (topics,
// exchanges, groups), publisher confirms and a bounded outbox, malformed messages rejected without harm.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type ChannelModel } from 'amqplib';
import { AmqpBus } from '../../src/bus/amqp.ts';
import type { BusMessage } from '../../src/bus/event-bus.ts';
import { createLogger } from '../../src/log.ts';
import { createVhost, missingRabbit, queueDepth, type TestVhost } from '../helpers/rabbitmq.ts';

const skip = await missingRabbit();
const log = createLogger(process.env.SWITCHBOARD_TEST_LOG ?? 'silent');
const EVENTS = { name: 'switchboard', type: 'topic', durable: true } as const;
const EXCHANGES = [
  { name: 'registrar', type: 'topic', durable: false },
  { name: 'targeted', type: 'direct', durable: false },
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('AMQP bus adapter', { skip }, () => {
  let vhost: TestVhost;
  const buses: AmqpBus[] = [];
  let raw: ChannelModel;

  const bus = async (nodeQueue: string, extra: Partial<ConstructorParameters<typeof AmqpBus>[0]> = {}) => {
    const b = new AmqpBus({ url: vhost.url, log, events: EVENTS, exchanges: EXCHANGES, nodeQueue, ...extra });
    buses.push(b);
    b.start();
    return b;
  };

  before(async () => {
    vhost = await createVhost();
    raw = await connect(vhost.url);
  });
  after(async () => {
    for (const b of buses) await b.close(500);
    await raw?.close().catch(() => {});
    await vhost?.delete();
  });

  it('carries own events with topic patterns, and names the exchange of others', async () => {
    const b = await bus('node-a');
    const got: BusMessage[] = [];
    b.subscribe('binding.*', (m) => void got.push(m));
    b.subscribe('registration.success.*.*', (m) => void got.push(m), { exchange: 'registrar' });
    b.subscribe('node-a-reply', (m) => void got.push(m), { exchange: 'targeted' });
    assert.equal(await b.ready(5000), true);
    const before = Date.now();
    b.publish('binding.added', { aor: 'alice@example.test', n: 1 });
    b.publish('binding.added.extra', { ignored: true });
    b.publish('registration.success.example%2Etest.alice', { Username: 'alice' }, { exchange: 'registrar' });
    b.publish('node-a-reply', { to: 'me' }, { exchange: 'targeted' });
    b.publish('node-a-reply.not', { to: 'nobody' }, { exchange: 'targeted' });
    await until(() => got.length >= 3, 5000, 'three deliveries');
    await sleep(100);
    assert.equal(got.length, 3);
    const own = got.find((m) => m.topic === 'binding.added')!;
    assert.deepEqual(own.payload, { aor: 'alice@example.test', n: 1 });
    assert.equal(own.exchange, undefined);
    assert.ok(own.at >= before && own.at <= Date.now());
    const reg = got.find((m) => m.exchange === 'registrar')!;
    assert.equal(reg.topic, 'registration.success.example%2Etest.alice');
    assert.deepEqual(reg.payload, { Username: 'alice' });
    assert.deepEqual(got.find((m) => m.exchange === 'targeted')!.payload, { to: 'me' });
    await until(() => b.stats().pending === 0, 5000, 'confirms');
    assert.equal(b.stats().confirmed, 5);
  });

  it('binds a queue per subscription pattern: a node gets only what it follows, once the binding is in place', async () => {
    const pub = await bus('node-pub');
    const follower = await bus('node-follow');
    assert.ok(await pub.ready(5000));
    assert.ok(await follower.ready(5000));
    const got: string[] = [];
    // Subscribed after the queue exists: subscribed() waits for just this binding.
    const unsub = follower.subscribe('binding.*.example%2Etest.alice', (m) => void got.push(m.topic));
    await follower.subscribed();
    const delivered0 = follower.stats().delivered;
    pub.publish('binding.added.example%2Etest.alice', { aor: 'alice@example.test' });
    pub.publish('binding.added.example%2Etest.bob', { aor: 'bob@example.test' });
    pub.publish('binding.expired.example%2Etest.alice', { aor: 'alice@example.test' });
    await until(() => got.length === 2, 5000, 'alice\u2019s two events');
    await sleep(200);
    assert.deepEqual(got, ['binding.added.example%2Etest.alice', 'binding.expired.example%2Etest.alice']);
    assert.equal(follower.stats().delivered - delivered0, 2, 'bob\u2019s event never reached the node');
    // Unsubscribed: the queue is unbound, the broker stops delivering.
    unsub();
    await sleep(200);
    pub.publish('binding.added.example%2Etest.alice', { aor: 'alice@example.test' });
    await sleep(300);
    assert.equal(follower.stats().delivered - delivered0, 2);
  });

  it('deletes its node queue when it closes cleanly (nobody else will consume it), and keeps group queues', async () => {
    const b = await bus('node-leaving');
    b.subscribe('registration.success.*.*', () => {}, { exchange: 'registrar' });
    b.subscribe('job.*', () => {}, { group: 'leaving-group', exchange: 'registrar' });
    assert.ok(await b.ready(5000));
    const ch = await raw.createChannel();
    ch.on('error', () => {}); // the 404 below closes this channel, as AMQP does
    await ch.checkQueue('node-leaving');
    await b.close(500);
    await ch.checkQueue('leaving-group');
    await assert.rejects(ch.checkQueue('node-leaving'), /404|NOT_FOUND/);
  });

  it('sends batched announcements together a few milliseconds later, confirmed like the rest, and all of them on close', async () => {
    const pub = await bus('node-batch');
    const sub = await bus('node-batch-sub');
    const got: number[] = [];
    sub.subscribe('batch.*', (m) => void got.push(m.payload.n as number));
    assert.ok(await pub.ready(5000));
    assert.ok(await sub.ready(5000));
    for (let n = 0; n < 20; n++) pub.publish('batch.event', { n }, { batch: true });
    assert.equal(pub.stats().pending, 20, 'held, not yet sent');
    await until(() => got.length === 20, 5000, 'twenty announcements');
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i), 'in publication order');
    await until(() => pub.stats().pending === 0, 5000, 'confirms');
    pub.publish('batch.event', { n: 20 }, { batch: true });
    await pub.close(2000);
    await until(() => got.length === 21, 5000, 'the last one, sent by close');
  });

  it('shares a group queue between nodes (each message to one) while node subscriptions see every message', async () => {
    const x = await bus('node-x');
    const y = await bus('node-y');
    const gx: number[] = [];
    const gy: number[] = [];
    const allX: number[] = [];
    x.subscribe('job.*', (m) => void gx.push(m.payload.n as number), { group: 'workers', exchange: 'registrar' });
    y.subscribe('job.*', (m) => void gy.push(m.payload.n as number), { group: 'workers', exchange: 'registrar' });
    x.subscribe('job.*', (m) => void allX.push(m.payload.n as number), { exchange: 'registrar' });
    assert.ok(await x.ready(5000));
    assert.ok(await y.ready(5000));
    for (let n = 0; n < 40; n++) x.publish('job.run', { n }, { exchange: 'registrar' });
    await until(() => gx.length + gy.length === 40 && allX.length === 40, 5000, 'forty jobs');
    assert.deepEqual([...gx, ...gy].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i), 'each job exactly once across the group');
    assert.ok(gx.length > 0 && gy.length > 0, `both members worked (${gx.length}/${gy.length})`);
  });

  it('one member leaving a group (unsubscribing) leaves the group queue bound for the others, and can come back', async () => {
    const x = await bus('leave-x');
    const y = await bus('leave-y');
    const gx: number[] = [];
    const gy: number[] = [];
    const offX = x.subscribe('task.*', (m) => void gx.push(m.payload.n as number), { group: 'leavers', exchange: 'registrar' });
    y.subscribe('task.*', (m) => void gy.push(m.payload.n as number), { group: 'leavers', exchange: 'registrar' });
    assert.ok(await x.ready(5000));
    assert.ok(await y.ready(5000));
    await x.subscribed();
    await y.subscribed();
    offX();
    await sleep(300); // the consumer cancel reaches the broker
    for (let n = 0; n < 20; n++) x.publish('task.run', { n }, { exchange: 'registrar' });
    await until(() => gy.length === 20, 5000, `twenty tasks at the member that stayed (got ${gy.length})`);
    assert.deepEqual(gy, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(gx.length, 0, 'nothing to the member that left');
    // Back in the group: it consumes again, alongside the other.
    x.subscribe('task.*', (m) => void gx.push(m.payload.n as number), { group: 'leavers', exchange: 'registrar' });
    await x.subscribed();
    for (let n = 20; n < 60; n++) y.publish('task.run', { n }, { exchange: 'registrar' });
    await until(() => gx.length + gy.length === 60, 5000, 'forty more tasks across both');
    assert.ok(gx.length > 0, 'the member that came back works again');
  });

  it('rejects malformed messages and failed handlers without requeueing, and keeps delivering', async () => {
    const b = await bus('node-m');
    const good: unknown[] = [];
    let thrown = 0;
    b.subscribe('m.good', (m) => void good.push(m.payload));
    b.subscribe('m.throws', () => {
      thrown++;
      throw new Error('handler bug');
    });
    b.subscribe('m.rejects', async () => {
      thrown++;
      throw new Error('async handler bug');
    });
    assert.ok(await b.ready(5000));
    const ch = await raw.createChannel();
    for (const body of ['not json', '[1,2,3]', '"a string"', 'null', '{"truncated": ']) ch.publish('switchboard', 'm.good', Buffer.from(body));
    ch.publish('switchboard', 'm.throws', Buffer.from('{}'));
    ch.publish('switchboard', 'm.rejects', Buffer.from('{}'));
    ch.publish('switchboard', 'm.good', Buffer.from('{"ok":true}'));
    await until(() => good.length === 1 && thrown === 2, 5000, 'the good message and both failures');
    await sleep(300);
    assert.deepEqual(good, [{ ok: true }]);
    assert.equal(thrown, 2, 'a failed message is not redelivered');
    assert.equal(b.stats().rejected, 7);
    assert.equal(await queueDepth(vhost.name, 'node-m'), 0, 'nothing requeued');
    await ch.close();
  });

  it('holds publications in a bounded outbox while the broker is unreachable, without throwing', async () => {
    const b = new AmqpBus({ url: 'amqp://guest:guest@127.0.0.1:1/none', log, events: EVENTS, nodeQueue: 'nowhere', outboxLimit: 3, reconnectMinMs: 50, reconnectMaxMs: 100 });
    b.start();
    b.subscribe('x.#', () => {});
    for (let n = 0; n < 5; n++) b.publish('x.y', { n });
    b.publish('x.y', { n: 5 }, { exchange: 'not-configured' });
    assert.equal(await b.ready(300), false);
    const s = b.stats();
    assert.equal(s.connected, false);
    assert.equal(s.pending, 3);
    assert.equal(s.dropped, 2);
    assert.equal(s.published, 5, 'the unknown exchange is refused, not queued');
    await b.close(100);
  });
});
