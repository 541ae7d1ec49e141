// Attack: a client of the broker publishes on `sip.relay.<node>` to make a Switchboard node send SIP of its choosing
// over a phone's connection (or, through a closed connection, to any address): with a guessed connection id, with
// the real id (seen somewhere) and another target, or by replaying a request it saw. Each must send nothing.
// The inter-node signature (internal-auth) is switched off here so that these defences of the relay itself are what
// is tested; amqp-internal-auth.test.ts covers the signature.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { until } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const skip = await missingRabbit();
type Json = Record<string, unknown>;

function message(body: string): string {
  const text = [
    'MESSAGE sip:alice@example.test SIP/2.0',
    'From: <sip:bank@example.test>;tag=rogue',
    'To: <sip:alice@example.test>',
    `Call-ID: rogue-${randomBytes(6).toString('hex')}@attacker`,
    'CSeq: 1 MESSAGE',
    'Max-Forwards: 70',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
  return Buffer.from(text).toString('base64');
}

describe('AMQP: sip.relay requests from a broker client', { skip }, () => {
  let vhost: TestVhost;
  let server: TestServer;
  let conn: ChannelModel;
  let ch: Channel;
  const replies: Json[] = [];

  before(async () => {
    vhost = await createVhost();
    server = await startTestServer({
      flags: { bus: vhost.url, 'node-id': 'sb-a', realm: ['example.test'], 'kazoo': 'off', 'bus-authenticate': false },
      users: { 'alice@example.test': 'alice-pw' },
    });
    conn = await connect(vhost.url);
    ch = await conn.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'switchboard', 'sip.relay-reply.rogue');
    await ch.consume(q.queue, (m) => m && replies.push(JSON.parse(m.content.toString()) as Json), { noAck: true });
  });
  after(async () => {
    await conn?.close().catch(() => {});
    await server?.close();
    await vhost?.delete();
  });

  const relay = (flow: Json, body: string, id = randomBytes(8).toString('hex')): Json => ({
    v: 1, id, origin: 'rogue', flow, request: message(body), expiresAt: Date.now() + 30_000,
  });
  const publish = (payload: Json) => ch.publish('switchboard', 'sip.relay.sb-a', Buffer.from(JSON.stringify(payload)), { contentType: 'application/json' });
  const answered = (ids: Set<unknown>) => replies.filter((r) => ids.has(r.id));

  it('sends nothing for guessed connection ids, for the real id with another target, or for a replay', async () => {
    const phone = await SipTestClient.open('TCP', server.sipPort);
    const elsewhere = net.createServer((s) => s.on('data', () => (reachedElsewhere = true)));
    let reachedElsewhere = false;
    await new Promise<void>((r) => elsewhere.listen(0, '127.0.0.1', r));
    try {
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600 })).status, 200);
      const [b] = await server.location.lookup('alice@example.test');
      assert.ok(b.connectionId !== null);
      const peer = { transport: 'TCP', address: b.sourceAddress, port: b.sourcePort };

      // 1. Guessing: the ids a per-process counter would have given out.
      const guesses = new Set<unknown>();
      for (let n = 1; n <= 300; n++) {
        const m = relay({ ...peer, connectionId: n }, `guess ${n}`);
        guesses.add(m.id);
        publish(m);
      }
      assert.ok(await phone.silent(1500), 'a guessed connection id reached the phone');
      await until(() => answered(guesses).length === guesses.size, 'an answer to every guess', 10_000);
      assert.ok(answered(guesses).every((r) => (r.error as Json | undefined)?.code === 'RELAY_ERR_FLOW_GONE'), JSON.stringify(answered(guesses).find((r) => !r.error)));

      // 2. The real connection id, another target (a listener of the attacker's).
      const port = (elsewhere.address() as net.AddressInfo).port;
      const redirected = relay({ transport: 'TCP', address: '127.0.0.1', port, connectionId: b.connectionId }, 'redirected');
      publish(redirected);
      await until(() => answered(new Set([redirected.id])).length === 1, 'the answer to the redirected request');
      assert.equal((answered(new Set([redirected.id]))[0].error as Json).code, 'RELAY_ERR_NOT_PEER');
      assert.ok(await phone.silent(1000), 'nothing reached the phone');
      assert.equal(reachedElsewhere, false, 'nothing reached the other target');

      // 3. A replay: one request as a node would send it is delivered once, its copy not at all.
      const genuine = relay({ ...peer, connectionId: b.connectionId }, 'once');
      publish(genuine);
      const got = await phone.next(5000);
      assert.match(got, /^MESSAGE sip:alice@example\.test SIP\/2\.0\r\n/);
      publish(genuine);
      assert.ok(await phone.silent(1500), 'the replay reached the phone');
    } finally {
      phone.close();
      elsewhere.close();
    }
  });
});
