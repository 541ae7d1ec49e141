// Attack: a client of the broker publishes Switchboard's own inter-node messages: a credential-cache flush
// (`account.credentials.changed`, all: every node reloads every credential: a lever on the database), a relay request
// naming a real connection and its real peer (SIP of its choosing to alice's phone), a node departure. Nodes sign
// these with a key derived from the master key they share (bus/internal-auth.ts): each forged one is dropped, and the
// same message signed with the deployment's key goes through (so the test is not passing for another reason).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import type { AmqpBus } from '../../src/bus/amqp.ts';
import { BUS_MAC_KEY, BusAuthenticator, MAC_HEADER } from '../../src/bus/internal-auth.ts';
import { deriveKey, loadMasterKey } from '../../src/secrets.ts';
import { until } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const skip = await missingRabbit();
type Json = Record<string, unknown>;

describe('AMQP: forged inter-node messages', { skip }, () => {
  let vhost: TestVhost;
  let server: TestServer;
  let conn: ChannelModel;
  let ch: Channel;
  let deployment: BusAuthenticator;

  before(async () => {
    vhost = await createVhost();
    server = await startTestServer({ flags: { bus: vhost.url, 'node-id': 'sb-a', realm: ['example.test'], kazoo: 'off' }, users: { 'alice@example.test': 'alice-pw' } });
    deployment = new BusAuthenticator(deriveKey(loadMasterKey(server.dataDir), BUS_MAC_KEY));
    conn = await connect(vhost.url);
    ch = await conn.createChannel();
  });
  after(async () => {
    await conn?.close().catch(() => {});
    await server?.close();
    await vhost?.delete();
  });

  const forged = () => (server.bus as AmqpBus).stats().forged;
  const delivered = () => (server.bus as AmqpBus).stats().delivered;
  /** Publishes on Switchboard's exchange as a node would; `signed` with the deployment's key, else as a rogue client. */
  function publish(topic: string, payload: Json, signed = false): void {
    const at = Date.now();
    const body = Buffer.from(JSON.stringify(payload));
    const headers: Json = { 'x-published-at': at };
    if (signed) headers[MAC_HEADER] = deployment.mac(topic, at, body);
    ch.publish('switchboard', topic, body, { contentType: 'application/json', headers });
  }
  /** Whether alice's credential is answered from the cache (a cleared cache answers with the store's promise). */
  const cached = () => !(server.credentials.findSipCredential('alice', 'example.test', 'MD5') instanceof Promise);

  it('drops a forged credential-cache flush (a signed one applies)', async () => {
    const phone = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600 })).status, 200);
    } finally {
      phone.close();
    }
    assert.ok(cached(), 'alice cached by her REGISTER');
    const before = delivered();
    publish('account.credentials.changed', { node: 'rogue', all: true });
    await until(() => delivered() > before, 'the forged flush delivered');
    assert.ok(cached(), 'the cache survived the forged flush');
    assert.equal(forged(), 1);
    // A wrong key is no better than none.
    const at = Date.now();
    const body = Buffer.from(JSON.stringify({ node: 'rogue', all: true }));
    ch.publish('switchboard', 'account.credentials.changed', body, { headers: { 'x-published-at': at, [MAC_HEADER]: new BusAuthenticator(randomBytes(32)).mac('account.credentials.changed', at, body) } });
    await until(() => delivered() > before + 1, 'the wrongly signed flush delivered');
    assert.ok(cached(), 'the cache survived the wrongly signed flush');
    assert.equal(forged(), 2);

    publish('account.credentials.changed', { node: 'sb-b', all: true }, true);
    await until(() => !cached(), 'the signed flush applied', 5000);
  });

  it('drops a forged relay request for a real connection and its real peer', async () => {
    const phone = await SipTestClient.open('TCP', server.sipPort);
    try {
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600 })).status, 200);
      const b = (await server.location.lookup('alice@example.test')).find((x) => x.transport === 'TCP')!;
      const sip = Buffer.from(['MESSAGE sip:alice@example.test SIP/2.0', 'From: <sip:bank@example.test>;tag=x', 'To: <sip:alice@example.test>', 'Call-ID: forged@attacker', 'CSeq: 1 MESSAGE', 'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n')).toString('base64');
      const request = (id: string) => ({ v: 1, id, origin: 'rogue', flow: { transport: 'TCP', address: b.sourceAddress, port: b.sourcePort, connectionId: b.connectionId }, request: sip, expiresAt: Date.now() + 30_000 });
      const before = delivered();
      publish('sip.relay.sb-a', request(randomBytes(16).toString('hex')));
      await until(() => delivered() > before, 'the forged relay delivered');
      assert.ok(await phone.silent(1000), 'the forged relay reached the phone');
      publish('sip.relay.sb-a', request(randomBytes(16).toString('hex')), true);
      assert.match(await phone.next(5000), /^MESSAGE sip:alice@example\.test SIP\/2\.0\r\n/, 'a signed relay is delivered');
    } finally {
      phone.close();
    }
  });

  it('drops a forged node departure before any subscriber sees it', async () => {
    const seen: Json[] = [];
    const stop = server.bus.subscribe('node.departed', (m) => void seen.push(m.payload));
    try {
      await server.bus.subscribed();
      const before = delivered();
      publish('node.departed', { node: 'sb-b', removed: 0, graceful: true, by: 'rogue' });
      await until(() => delivered() > before, 'the forged departure delivered');
      publish('node.departed', { node: 'sb-b', removed: 0, graceful: true, by: 'sb-b' }, true);
      await until(() => seen.length > 0, 'the signed departure');
      assert.deepEqual(seen.map((p) => p.by), ['sb-b']);
    } finally {
      stop();
    }
  });
});
