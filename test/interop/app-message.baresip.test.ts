// An app's message to a user whose SIP phone is registered (issue 18): POST /v1/messages stores it and forks it at
// once to the recipient's devices as a SIP MESSAGE (the proxy's non-INVITE forking, as for a MESSAGE from SIP), From
// the sender's AOR; alice's baresip shows the text and answers 200, and the message leaves the store (its status
// for the sender turns "delivered"). A user with no device keeps it stored for her app.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBaresip, type Baresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';
import { appLogin, http, send, type Session } from '../messaging/helpers.ts';

const D = 'example.test';

describe('an app\u2019s message to a registered SIP phone', { skip: missingPeer('baresip') }, () => {
  let server: TestServer;
  let alice: Baresip;
  let bob: Session;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw' } });
    alice = startBaresip({ port: server.sipPort, user: 'alice', password: 'alice-pw', domain: D, transport: 'udp', modules: ['menu.so'] });
    await alice.waitFor(/200 OK \(Switchboard\) \[1 binding\]/, 15_000);
    bob = await appLogin(server.httpUrl, `bob@${D}`, 'bob-pw');
  });
  after(async () => {
    await alice?.stop();
    await server.close();
  });

  const waiting = async (user: string) =>
    Number((await storeQuery<{ n: number }>(server.dataDir, `SELECT COUNT(*) AS n FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.delivered_at IS NULL AND a.username = '${user}'`))[0]!.n);
  const until = async (what: string, check: () => Promise<boolean>, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('is delivered at once as a SIP MESSAGE from the sender\u2019s AOR, and leaves the store', async () => {
    const r = await send(server.httpUrl, bob, `alice@${D}`, 'hello from the app', 'app-1');
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'stored');
    await alice.waitFor(/hello from the app/, 10_000);
    const block = alice.output().split(/\r?\n\r?\n/).find((b) => /^MESSAGE sip:/m.test(b) && /^From: <sip:bob@example\.test>/m.test(b));
    assert.ok(block, 'a MESSAGE From bob\u2019s AOR');
    await until('the message to leave the store', async () => (await waiting('alice')) === 0);
    const st = await http(server.httpUrl, 'GET', `/v1/messages/${r.json.id as string}/status`, { auth: bob.auth });
    assert.equal(st.json.status, 'delivered');
  });

  it('to a user with no device it stays stored for her app', async () => {
    const r = await send(server.httpUrl, bob, `carol@${D}`, 'for the app', 'app-2');
    assert.equal(r.status, 200);
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(await waiting('carol'), 1);
  });
});
