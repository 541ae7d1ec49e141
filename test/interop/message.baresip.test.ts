// SIP MESSAGE between two baresips through the server (issue 18): bob's baresip (contact module, `message` command)
// sends to alice while she has no device: challenged 407, then 202 Accepted and stored; when alice's baresip
// registers it receives the text and answers 200, and the message is gone from the store; while she is registered
// the next one is delivered at once (200 to bob). (sipsak sends in message.sipsak.test.ts, in its shoot mode: its
// message mode, -M, crashes in sipsak 0.9.8.1 before it sends anything; that file says why.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, startBaresip, type Baresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

describe('SIP MESSAGE with baresip', { skip: missingPeer('baresip') }, () => {
  let server: TestServer;
  let bob: Baresip;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
    bob = startBaresip({ port: server.sipPort, user: 'bob', password: 'bob-pw', domain: D, transport: 'udp', modules: ['contact.so', 'menu.so'], contacts: [`"Alice" <sip:alice@${D}>`], ctrlPort: await freePort() });
    await bob.waitFor(/200 OK \(Switchboard\) \[1 binding\]/, 15_000);
  });
  after(async () => {
    await bob?.stop();
    await server.close();
  });

  const waiting = async () => Number((await storeQuery<{ n: number }>(server.dataDir, 'SELECT COUNT(*) AS n FROM messages WHERE delivered_at IS NULL'))[0]!.n);
  const until = async (what: string, check: () => Promise<boolean>, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('stores for an offline user (202), delivers on her registration (200), then directly', async () => {
    await bob.command('message', 'hello while you were away');
    await bob.waitFor(/SIP\/2\.0 202 Accepted/, 10_000);
    assert.match(bob.output(), /SIP\/2\.0 407 Proxy Authentication Required/);
    assert.equal(await waiting(), 1);

    const alice = startBaresip({ port: server.sipPort, user: 'alice', password: 'alice-pw', domain: D, transport: 'udp', modules: ['menu.so'] });
    try {
      await alice.waitFor(/hello while you were away/, 15_000);
      await until('the stored message to leave the store', async () => (await waiting()) === 0);
      assert.match(alice.output(), /MESSAGE sip:alice-[^@]+@127\.0\.0\.1:\d+ SIP\/2\.0/);

      await bob.command('message', 'and now directly');
      await alice.waitFor(/and now directly/, 10_000);
      // One SIP message per block of baresip's trace: a 200 OK whose CSeq is a MESSAGE's.
      const okToMessage = () => bob.output().split(/\r?\n\r?\n/).some((block) => /^SIP\/2\.0 200 OK/m.test(block) && /^CSeq: \d+ MESSAGE/m.test(block));
      await until('bob to see 200 for his MESSAGE', async () => okToMessage());
      assert.equal(await waiting(), 0);
    } finally {
      await alice.stop();
    }
  });
});
