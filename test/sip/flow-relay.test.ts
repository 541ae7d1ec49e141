// Cross-node delivery (sip/flow-relay.ts): two "nodes", each a SIP endpoint on real sockets, sharing a bus (the
// in-process one, and RabbitMQ). A UA holds a TCP connection to node A; node B sends a NOTIFY to that flow through
// the relay, the UA gets it on its connection and answers, and B's promise settles with the answer. Also: the
// owner's connection gone, the owner absent (timeout), malformed relay messages, and flows that stay local.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { AmqpBus } from '../../src/bus/amqp.ts';
import type { EventBus } from '../../src/bus/event-bus.ts';
import { FlowRelay, nodeTopicWord, relayReplyTopic, relayTopic, type RelayFlow } from '../../src/sip/flow-relay.ts';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { SWITCHBOARD_EVENTS } from '../../src/kazoo/exchanges.ts';
import { isSwitchboardError, type SwitchboardError } from '../../src/errors.ts';
import { createResponse, SipRequest } from '../../src/sip/message/index.ts';
import { SipEndpoint } from '../../src/sip/endpoint.ts';
import { TransportLayer } from '../../src/sip/transport/layer.ts';
import type { Source } from '../../src/sip/transport/types.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';
import { parseRequest, responseTo } from '../helpers/presence.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A logger whose warnings the test can read. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: pino({ level: process.env.SWITCHBOARD_TEST_LOG ?? 'warn' }, stream) };
}

interface Node {
  id: string;
  endpoint: SipEndpoint;
  transports: TransportLayer;
  relay: FlowRelay;
  port: number;
  /** The source of the last REGISTER this node received (how the UA's flow is learnt). */
  lastSource: Source | null;
  close(): Promise<void>;
}

async function startNode(id: string, bus: EventBus, log: ReturnType<typeof capture>['log'], timeoutMs?: number): Promise<Node> {
  const endpoint = new SipEndpoint({ logger: log, supported: ['path'], forceRport: true, serverHeader: null });
  const transports = new TransportLayer({
    hosts: ['127.0.0.1'],
    port: 0,
    transports: ['UDP', 'TCP'],
    maxMessageSize: 65535,
    tcpIdleTimeoutMs: 60_000,
    tcpMaxConnections: 100,
    reusePort: false,
    advertisedHost: null,
    logger: log,
    onMessage: endpoint.receive,
    onStreamError: endpoint.streamError,
  });
  endpoint.attach(transports);
  const listeners = await transports.listen();
  const relay = new FlowRelay({ bus, endpoint, node: id, log, timeoutMs, connections: transports, transport: transports });
  endpoint.onUnmatchedResponse((res, source) => relay.forwardResponse(res, source));
  relay.start();
  const node: Node = {
    id,
    endpoint,
    transports,
    relay,
    port: listeners.find((l) => l.transport === 'TCP')!.port,
    lastSource: null,
    async close() {
      relay.close();
      endpoint.close();
      await transports.close();
    },
  };
  // A REGISTER stands for any request that leaves a flow behind (binding, subscription).
  endpoint.handle('REGISTER', (req, ctx) => {
    node.lastSource = ctx.source;
    return createResponse(req, 200);
  });
  return node;
}

/** A UA on a TCP connection to `node`, and the flow the node recorded for it. */
async function connectUa(node: Node): Promise<{ ua: SipTestClient; flow: RelayFlow }> {
  const ua = await SipTestClient.open('TCP', node.port);
  node.lastSource = null;
  const r = await ua.request(
    buildRequest(ua, { method: 'REGISTER', uri: 'sip:example.test', from: '<sip:alice@example.test>', to: '<sip:alice@example.test>', contact: `<sip:alice@127.0.0.1:${ua.localPort};transport=tcp>` }),
  );
  assert.equal(r.status, 200);
  const s = node.lastSource as Source | null;
  assert.ok(s && s.connectionId !== null);
  return { ua, flow: { node: node.id, transport: s.transport, address: s.address, port: s.port, connectionId: s.connectionId } };
}

/** The UA's answer to a request it received (raw). */
function answer(raw: string, status = 200, reason = 'OK'): string {
  return responseTo(parseRequest(raw), status, reason, [['Server', 'test-ua']]);
}

function checkSyncNotify(): SipRequest {
  const req = new SipRequest('NOTIFY', 'sip:alice@127.0.0.1;transport=tcp');
  req.append('From', '<sip:alice@example.test>;tag=relaytest');
  req.append('To', '<sip:alice@example.test>');
  req.append('Call-ID', `relay-${Math.random().toString(36).slice(2)}@test`);
  req.append('CSeq', '1 NOTIFY');
  req.append('Event', 'check-sync');
  return req;
}

async function rejection(p: Promise<unknown>): Promise<SwitchboardError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isSwitchboardError(e), `a SwitchboardError, got ${String(e)}`);
    return e;
  }
  throw new Error('expected a rejection');
}

interface BusPair {
  a: EventBus;
  b: EventBus;
  /** Called once both relays have subscribed. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

function relaySuite(name: string, skip: string | false, makeBuses: (log: ReturnType<typeof capture>['log']) => Promise<BusPair>) {
  describe(`flow relay over ${name}`, { skip }, () => {
    const logs = capture();
    let buses: BusPair;
    let a: Node;
    let b: Node;
    let raw: EventBus;

    before(async () => {
      buses = await makeBuses(logs.log);
      // Node ids with dots, as host names are: each must stay one topic word.
      a = await startNode('node-a.example.test', buses.a, logs.log);
      b = await startNode('node-b.example.test', buses.b, logs.log, 1500);
      raw = buses.b;
      await buses.ready();
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await buses?.close();
    });

    it('delivers a request over the owner node\u2019s TCP connection and brings the answer back', async () => {
      const { ua, flow } = await connectUa(a);
      try {
        const before = b.relay.stats();
        const pending = b.relay.send(checkSyncNotify(), flow);
        const got = await ua.next(5000);
        assert.match(got, /^NOTIFY sip:alice@127\.0\.0\.1;transport=tcp SIP\/2\.0\r\n/);
        assert.match(got, /\r\nEvent: check-sync\r\n/);
        // Exactly one Via, node A's (it sent the request over its connection).
        const vias = got.split('\r\n').filter((l) => /^Via:/i.test(l));
        assert.equal(vias.length, 1, got);
        assert.match(vias[0], new RegExp(`^Via: SIP/2\\.0/TCP 127\\.0\\.0\\.1:${a.port};branch=z9hG4bK`));
        assert.match(got, /\r\nMax-Forwards: 70\r\n/);
        ua.send(answer(got, 200, 'OK'));
        const res = await pending;
        assert.equal(res.status, 200);
        assert.equal(res.reason, 'OK');
        assert.equal(res.get('Server'), 'test-ua', 'the response as the UA sent it');
        const after = b.relay.stats();
        assert.equal(after.relayed - before.relayed, 1);
        assert.equal(after.answered - before.answered, 1);
        assert.equal(after.pending, 0);
        assert.ok(a.relay.stats().served >= 1);

        // A final response other than 2xx comes back as it is.
        const second = b.relay.send(checkSyncNotify(), flow);
        ua.send(answer(await ua.next(5000), 489, 'Bad Event'));
        assert.equal((await second).status, 489);
      } finally {
        ua.close();
      }
    });

    it('carries an INVITE client transaction of the origin over the owner\u2019s connection: its responses come back from that connection only', async () => {
      const { ua, flow } = await connectUa(a);
      const other = await connectUa(a);
      try {
        const inv = checkSyncNotify();
        inv.method = 'INVITE';
        inv.set('CSeq', '1 INVITE');
        const got: number[] = [];
        const failures: string[] = [];
        const dest = { transport: 'TCP' as const, address: flow.address, port: flow.port, connectionId: flow.connectionId };
        const handle = b.endpoint.invite(inv, dest, { onResponse: (r) => got.push(r.status), onFailure: (why) => failures.push(why) }, undefined, b.relay.through(flow));
        const rawInvite = await ua.next(5000);
        const wire = parseRequest(rawInvite);
        assert.equal(wire.method, 'INVITE');
        assert.match(wire.headers.find(([k]) => k === 'Via')![1], new RegExp(`^SIP/2\\.0/TCP 127\\.0\\.0\\.1:${b.port};branch=${handle.branch}`), "the origin's Via: its transaction");
        // The same branch answered over another connection to the owner, or a reply claiming to come from another node: dropped.
        other.ua.send(answer(rawInvite, 200, 'OK'));
        raw.publish(relayReplyTopic(b.id), { v: 1, node: 'node-c', branchResponse: Buffer.from(answer(rawInvite, 183, 'Forged')).toString('base64') });
        await sleep(300);
        assert.deepEqual(got, []);
        ua.send(answer(rawInvite, 180, 'Ringing'));
        await until(() => got.length === 1, 5000, 'the 180 at the origin');
        ua.send(answer(rawInvite, 486, 'Busy Here'));
        const ack = parseRequest(await ua.next(5000));
        assert.equal(ack.method, 'ACK', "the origin's ACK of its non-2xx, written by the owner");
        assert.deepEqual(got, [180, 486]);
        assert.deepEqual(failures, []);
      } finally {
        ua.close();
        other.ua.close();
      }
    });

    it('rejects with RELAY_ERR_FLOW_GONE when the owner\u2019s connection has closed', async () => {
      const { ua, flow } = await connectUa(a);
      ua.close();
      await until(() => !a.transports.isConnectionOpen(flow.connectionId!), 5000, 'the connection to close on node A');
      const before = b.relay.stats().failed;
      const err = await rejection(b.relay.send(checkSyncNotify(), flow));
      assert.equal(err.code, 'RELAY_ERR_FLOW_GONE');
      assert.match(err.message, new RegExp(`TCP connection ${flow.connectionId} .* is closed on node node-a\\.example\\.test`));
      assert.equal(err.detail?.node, 'node-a.example.test');
      assert.equal(b.relay.stats().failed, before + 1);
    });

    it('rejects with RELAY_ERR_TIMEOUT when the owner node does not answer', async () => {
      const before = b.relay.stats().timedOut;
      const started = Date.now();
      const err = await rejection(b.relay.send(checkSyncNotify(), { node: 'node-gone.example.test', transport: 'TCP', address: '127.0.0.1', port: 9, connectionId: 7 }));
      assert.equal(err.code, 'RELAY_ERR_TIMEOUT');
      assert.match(err.message, /no answer from node node-gone\.example\.test within 1500 ms/);
      assert.ok(Date.now() - started >= 1400);
      assert.equal(b.relay.stats().timedOut, before + 1);
      assert.equal(b.relay.stats().pending, 0);
    });

    it('logs and drops malformed relay messages, refuses garbage SIP, and keeps working', async () => {
      const aBefore = a.relay.stats();
      const warnsBefore = logs.lines.length;
      const flow = { transport: 'TCP', address: '127.0.0.1', port: 5, connectionId: 1 };
      raw.publish(relayTopic(a.id), {});
      raw.publish(relayTopic(a.id), { id: 42, origin: b.id });
      raw.publish(relayTopic(a.id), { id: 'x'.repeat(500), origin: b.id, flow, request: '' });
      raw.publish(relayTopic(a.id), { id: 'bad-flow', origin: b.id, flow: { transport: 'CARRIER-PIGEON' }, request: 'AAAA' });
      raw.publish(relayTopic(a.id), { id: 'bad-sip', origin: b.id, flow, request: Buffer.from('\x00\x01 not SIP at all\r\n\r\n').toString('base64') });
      raw.publish(relayTopic(a.id), { id: 'a-response', origin: b.id, flow, request: Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n').toString('base64') });
      raw.publish(relayReplyTopic(b.id), { id: { nested: true } });
      raw.publish(relayReplyTopic(b.id), { id: 'nobody-waits', response: 'garbage' });
      await until(() => a.relay.stats().malformed - aBefore.malformed >= 6, 5000, 'the malformed requests to be counted');
      assert.equal(a.relay.stats().served, aBefore.served);
      // The three that named a well-formed origin were answered with an error (nobody waits for those ids on B).
      assert.equal(a.relay.stats().serveFailed - aBefore.serveFailed, 3);
      await until(() => logs.lines.slice(warnsBefore).filter((l) => l.code === 'BUS_ERR_MALFORMED').length >= 7, 5000, 'warnings');
      const warned = logs.lines.slice(warnsBefore).filter((l) => l.code === 'BUS_ERR_MALFORMED');
      assert.ok(warned.some((l) => /without id or origin/.test(String(l.msg))));
      assert.ok(warned.some((l) => /does not parse/.test(String(l.msg))));
      assert.ok(warned.some((l) => /reply without id/.test(String(l.msg))));
      assert.ok(!logs.lines.slice(warnsBefore).some((l) => l.msg === 'bus subscriber failed'), 'no handler threw');

      // Both nodes still relay.
      const { ua, flow: good } = await connectUa(a);
      try {
        const pending = b.relay.send(checkSyncNotify(), good);
        ua.send(answer(await ua.next(5000)));
        assert.equal((await pending).status, 200);
      } finally {
        ua.close();
      }
    });

    it('sends here when the flow is this node\u2019s, without touching the bus', async () => {
      const { ua, flow } = await connectUa(b);
      try {
        const before = b.relay.stats().relayed;
        const pending = b.relay.send(checkSyncNotify(), flow);
        const got = await ua.next(5000);
        assert.match(got, new RegExp(`\r\nVia: SIP/2\\.0/TCP 127\\.0\\.0\\.1:${b.port};`));
        ua.send(answer(got));
        assert.equal((await pending).status, 200);
        assert.equal(b.relay.stats().relayed, before);
      } finally {
        ua.close();
      }
    });

    it('rejects what is still pending when it closes', async () => {
      const extra = new FlowRelay({ bus: buses.b, endpoint: b.endpoint, node: 'node-extra.example.test', log: logs.log, timeoutMs: 10_000 });
      extra.start();
      const p = extra.send(checkSyncNotify(), { node: 'node-gone.example.test', transport: 'WS', address: 'x.invalid', port: 0, connectionId: 3 });
      await sleep(20);
      assert.equal(extra.stats().pending, 1);
      extra.close();
      assert.equal((await rejection(p)).code, 'RELAY_ERR_CLOSED');
      assert.equal((await rejection(extra.send(checkSyncNotify(), { node: 'node-gone.example.test', transport: 'TCP', address: '127.0.0.1', port: 1, connectionId: 3 }))).code, 'RELAY_ERR_CLOSED');
    });
  });
}

describe('relay topics', () => {
  it('keeps a node id one topic word, wildcards included', () => {
    assert.equal(nodeTopicWord('node-a.example.test'), 'node-a%2Eexample%2Etest');
    assert.equal(relayTopic('sb1.dc2'), 'sip.relay.sb1%2Edc2');
    assert.equal(relayReplyTopic('sb1'), 'sip.relay-reply.sb1');
    assert.equal(nodeTopicWord('*'), '%2A');
    assert.equal(nodeTopicWord('#'), '%23');
    assert.equal(nodeTopicWord(''), '%00');
  });
});

relaySuite('the in-process bus', false, async (log) => {
  const bus = new InProcessBus(log);
  return { a: bus, b: bus, ready: async () => {}, close: () => bus.close() };
});

const rabbitSkip = await missingRabbit();
relaySuite('RabbitMQ (AmqpBus)', rabbitSkip, async (log) => {
  const vhost: TestVhost = await createVhost();
  const open = (queue: string) => new AmqpBus({ url: vhost.url, log, events: SWITCHBOARD_EVENTS, nodeQueue: `${queue}-${process.pid}` });
  const a = open('relay-node-a');
  const b = open('relay-node-b');
  return {
    a,
    b,
    // Started once the relays have subscribed, so their queues and bindings are in place when ready() resolves.
    async ready() {
      a.start();
      b.start();
      assert.equal(await a.ready(10_000), true);
      assert.equal(await b.ready(10_000), true);
    },
    async close() {
      await a.close(500);
      await b.close(500);
      await vhost.delete();
    },
  };
});
