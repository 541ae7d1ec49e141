// SIP MESSAGE (RFC 3428) over real sockets: the sender is challenged with 407 and must send as itself; to a user with
// no device the MESSAGE is stored and answered 202, and when the user's phone registers it receives it (in order,
// with the sender and body) and, after its 200, the message is gone from the store; to a registered phone it is
// delivered at once (200); a phone that does not answer 2xx leaves it stored (202) for its next registration; over UDP
// a body above 1300 bytes gets 513.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseRequest, responseTo } from '../helpers/presence.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';

const D = 'example.test';

describe('SIP MESSAGE', () => {
  let server: TestServer;
  let bob: SipTestClient;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
    bob = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    bob.close();
    await server.close();
  });

  /** Bob's MESSAGE to `to`, answering the 407 as `as` (bob by default). */
  const message = async (to: string, text: string, o: { as?: string; password?: string; from?: string } = {}): Promise<SipResponseView> => {
    const spec = { method: 'MESSAGE', uri: `sip:${to}@${D}`, from: `<sip:${o.from ?? 'bob'}@${D}>`, to: `<sip:${to}@${D}>`, callId: `m-${Math.random()}@test`, headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: text };
    const first = await bob.request(buildRequest(bob, { ...spec, cseq: 1 }));
    if (first.status !== 407) return first;
    assert.equal(first.header('WWW-Authenticate'), undefined);
    const challenge = parseChallenge(first.header('Proxy-Authenticate')!);
    const auth = digestAuthorization(challenge, { username: o.as ?? 'bob', password: o.password ?? 'bob-pw', method: 'MESSAGE', uri: spec.uri });
    return bob.request(buildRequest(bob, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }));
  };
  const waiting = async () => (await storeQuery<{ n: number }>(server.dataDir, 'SELECT COUNT(*) AS n FROM messages WHERE delivered_at IS NULL'))[0]!.n;

  it('stores a MESSAGE for a user with no device (202) and delivers it when the phone registers', async () => {
    assert.equal((await message('alice', 'first')).status, 202);
    assert.equal((await message('alice', 'second')).status, 202);
    assert.equal(Number(await waiting()), 2);
    const alice = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(alice, { user: 'alice', password: 'alice-pw', domain: D, expires: 600 })).status, 200);
      for (const text of ['first', 'second']) {
        const raw = await alice.next(5000);
        const req = parseRequest(raw);
        assert.match(raw, /^MESSAGE sip:alice@127\.0\.0\.1:\d+(;transport=udp)? SIP\/2\.0/);
        assert.equal(req.body, text);
        assert.match(raw, /\r\nFrom: <sip:bob@example\.test>;tag=/i);
        assert.match(raw, /\r\nContent-Type: text\/plain\r\n/i);
        assert.doesNotMatch(raw, /\r\nContact:/i, 'RFC 3428: no Contact');
        alice.send(responseTo(req, 200, 'OK'));
      }
      const deadline = Date.now() + 5000;
      while (Number(await waiting()) !== 0) {
        assert.ok(Date.now() < deadline, 'acked messages leave the store');
        await new Promise((r) => setTimeout(r, 50));
      }

      // Registered: delivered at once.
      const sent = message('alice', 'live');
      const raw = await alice.next(5000);
      assert.equal(parseRequest(raw).body, 'live');
      alice.send(responseTo(parseRequest(raw), 200, 'OK'));
      assert.equal((await sent).status, 200);

      // A phone that refuses: stored for later.
      const refused = message('alice', 'later');
      const again = await alice.next(5000);
      alice.send(responseTo(parseRequest(again), 480, 'Temporarily Unavailable'));
      assert.equal((await refused).status, 202);
      assert.equal(Number(await waiting()), 1);
    } finally {
      alice.close();
    }
  });

  it('authenticates the sender like a caller, and bounds the size over UDP', async () => {
    assert.equal((await message('alice', 'x', { as: 'bob', password: 'wrong' })).status, 407);
    assert.equal((await message('alice', 'x', { from: 'alice' })).status, 403, 'From must be the authenticated identity');
    assert.equal((await message('nobody', 'x')).status, 404);
    assert.equal((await message('alice', 'y'.repeat(1301))).status, 513);
  });
});
