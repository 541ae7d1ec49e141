// Attack: any client of the broker publishes reg_success for alice@<our realm> with its own contact; Kazoo's next
// reg_query for alice would route her calls there. Switchboard is alice's registrar (an account it holds in a realm
// it serves): it refuses the announcement (in any case of the user part), and reg_query answers with alice's real
// binding only. Another registrar's user of the same realm (carol: not an account here) is still taken.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KazooPeer, until, type Json } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const skip = await missingRabbit();

describe('AMQP: reg_success for our own AORs from a broker client', { skip }, () => {
  let vhost: TestVhost;
  let server: TestServer;
  let rogue: KazooPeer;

  before(async () => {
    vhost = await createVhost();
    server = await startTestServer({
      flags: { bus: vhost.url, 'kazoo-node': 'switchboard@test', realm: ['example.test'] },
      users: { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' },
    });
    rogue = await KazooPeer.open(vhost.url, 'rogue@attacker');
  });
  after(async () => {
    await rogue?.close();
    await server?.close();
    await vhost?.delete();
  });

  const announce = (user: string, contact: string): Json => ({
    ...rogue.envelope('reg_success'),
    'Event-Timestamp': Math.floor(Date.now() / 1000),
    Contact: `<${contact}>`,
    Expires: 3600,
    Username: user,
    Realm: 'example.test',
    'Network-IP': '203.0.113.66',
    'Network-Port': '5060',
  });

  it('refuses them; reg_query answers the real binding only, and other users of the realm are still taken', async () => {
    const phone = await SipTestClient.open('UDP', server.sipPort);
    try {
      const real = `sip:alice@127.0.0.1:${phone.localPort}`;
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600, contact: `<${real}>` })).status, 200);

      // The attack: alice (registered), ALICE (the same AOR to Kazoo), bob (ours, not registered just now).
      rogue.publish('registrar', 'registration.success.example%2Etest.alice', announce('alice', 'sip:alice@203.0.113.66:5060'));
      rogue.publish('registrar', 'registration.success.example%2Etest.ALICE', announce('ALICE', 'sip:alice@203.0.113.67:5060'));
      rogue.publish('registrar', 'registration.success.example%2Etest.bob', announce('bob', 'sip:bob@203.0.113.66:5060'));
      // A control: carol is no account here, so another registrar may well hold her.
      rogue.publish('registrar', 'registration.success.example%2Etest.carol', announce('carol', 'sip:carol@198.51.100.20:5060'));
      await until(() => (server.kazoo?.foreign.size ?? 0) >= 1, 'carol in the foreign cache');
      await until(() => (server.kazoo?.refused ?? 0) >= 3, 'the three announcements for our AORs refused');
      assert.equal(server.kazoo!.foreign.size, 1, 'only carol taken');

      const [alice] = await rogue.request('registrar', 'registration.query.example%2Etest.alice', { ...rogue.envelope('reg_query'), Username: 'alice', Realm: 'example.test', Fields: ['Contact'] });
      assert.equal(alice['Event-Name'], 'reg_query_resp');
      assert.deepEqual(alice.Fields, [{ Contact: real }], 'alice\u2019s own binding, nothing else');

      const [bob] = await rogue.request('registrar', 'registration.query.example%2Etest.bob', { ...rogue.envelope('reg_query'), Username: 'bob', Realm: 'example.test' });
      assert.equal(bob['Event-Name'], 'reg_query_error', 'bob is not registered anywhere');

      const [all] = await rogue.request('registrar', 'registration.query.example%2Etest.*', { ...rogue.envelope('reg_query'), Realm: 'example.test', Fields: ['Username', 'Contact'] });
      const contacts = (all.Fields as Json[]).map((f) => `${String(f.Username).toLowerCase()} ${String(f.Contact)}`).sort();
      assert.deepEqual(contacts, [`alice ${real}`, 'carol sip:carol@198.51.100.20:5060']);
    } finally {
      phone.close();
    }
  });
});
