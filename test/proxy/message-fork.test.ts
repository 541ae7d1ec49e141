// MESSAGE forked by the proxy (proxy/non-invite.ts, issue 17/18) over real UDP sockets: one user on two raw-client
// devices. Both get the MESSAGE, the first 2xx decides (200 to the sender at once, the other device's later answer
// changes nothing); both refusing (480) → stored, 202; one refusing and one silent → stored, 202 once
// --non-invite-fork-timeout has passed; q=1.0 before q=0.5 (the second device hears of it only after the first
// declined). Each device receives the MESSAGE with its own contact as the Request-URI and no Contact header.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseRequest, responseTo } from '../helpers/presence.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';

const D = 'example.test';

describe('MESSAGE forked to every device of the user', () => {
  let server: TestServer;
  let bob: SipTestClient;
  let a1: SipTestClient;
  let a2: SipTestClient;
  before(async () => {
    // A user per test: what one test stores is not dumped into the next one's devices.
    const users: Record<string, string> = { [`bob@${D}`]: 'bob-pw' };
    for (let i = 0; i < 4; i++) users[`alice${i}@${D}`] = 'alice-pw';
    server = await startTestServer({ users, flags: { 'non-invite-fork-timeout': '2' } });
    bob = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    a1?.close();
    a2?.close();
    bob.close();
    await server.close();
  });
  let n = -1;
  let alice = '';
  beforeEach(async () => {
    // Two fresh devices of a fresh user each time.
    a1?.close();
    a2?.close();
    alice = `alice${++n}`;
    a1 = await SipTestClient.open('UDP', server.sipPort);
    a2 = await SipTestClient.open('UDP', server.sipPort);
  });

  const registerBoth = async (q1 = '1.0', q2 = '1.0') => {
    for (const [c, q] of [[a1, q1], [a2, q2]] as const) {
      const res = await register(c, { user: alice, password: 'alice-pw', domain: D, expires: 600, contact: `<sip:${alice}@127.0.0.1:${c.localPort}>;q=${q}` });
      assert.equal(res.status, 200);
    }
  };

  const message = async (text: string): Promise<SipResponseView> => {
    const spec = { method: 'MESSAGE', uri: `sip:${alice}@${D}`, from: `<sip:bob@${D}>`, to: `<sip:${alice}@${D}>`, callId: `mf-${Math.random()}@test`, headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: text };
    const first = await bob.request(buildRequest(bob, { ...spec, cseq: 1 }));
    assert.equal(first.status, 407);
    const auth = digestAuthorization(parseChallenge(first.header('Proxy-Authenticate')!), { username: 'bob', password: 'bob-pw', method: 'MESSAGE', uri: spec.uri });
    return bob.request(buildRequest(bob, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }), 10_000);
  };
  /** Is a message with this text waiting in the store? */
  const stored = async (text: string) =>
    (await storeQuery<{ body: Uint8Array }>(server.dataDir, 'SELECT body FROM messages WHERE delivered_at IS NULL')).some((r) => Buffer.from(r.body).toString() === text);
  const received = async (c: SipTestClient, text: string) => {
    const req = parseRequest(await c.next(5000));
    assert.equal(req.method, 'MESSAGE');
    assert.equal(req.uri, `sip:${alice}@127.0.0.1:${c.localPort}`, 'each device by its own contact');
    assert.equal(req.body, text);
    assert.equal(req.header('Contact'), undefined, 'RFC 3428: no Contact');
    return req;
  };

  it('reaches both devices; the first 2xx is the answer (200), not stored', async () => {
    await registerBoth();
    const sent = message('hello both');
    const [r1, r2] = await Promise.all([received(a1, 'hello both'), received(a2, 'hello both')]);
    a2.send(responseTo(r2, 200, 'OK'));
    const res = await sent;
    assert.equal(res.status, 200);
    a1.send(responseTo(r1, 486, 'Busy Here')); // after the answer: changes nothing
    assert.equal(await stored('hello both'), false);
  });

  it('both devices refuse (480): stored and answered 202', async () => {
    await registerBoth();
    const sent = message('refused');
    const [r1, r2] = await Promise.all([received(a1, 'refused'), received(a2, 'refused')]);
    a1.send(responseTo(r1, 480, 'Temporarily Unavailable'));
    a2.send(responseTo(r2, 480, 'Temporarily Unavailable'));
    assert.equal((await sent).status, 202);
    assert.ok(await stored('refused'));
  });

  it('one refuses, the other stays silent: stored and 202 after the fork timeout', async () => {
    await registerBoth();
    const started = Date.now();
    const sent = message('silence');
    const [r1] = await Promise.all([received(a1, 'silence'), received(a2, 'silence')]);
    a1.send(responseTo(r1, 480, 'Temporarily Unavailable'));
    assert.equal((await sent).status, 202);
    assert.ok(Date.now() - started >= 1500, 'waited for the silent device (--non-invite-fork-timeout 2)');
    assert.ok(await stored('silence'));
  });

  it('q=1.0 first, then q=0.5 when the first declined', async () => {
    await registerBoth('1.0', '0.5');
    const sent = message('serial');
    const r1 = await received(a1, 'serial');
    assert.ok(await a2.silent(300), 'the q=0.5 device waits for the q=1.0 one');
    a1.send(responseTo(r1, 480, 'Temporarily Unavailable'));
    const r2 = await received(a2, 'serial');
    a2.send(responseTo(r2, 200, 'OK'));
    assert.equal((await sent).status, 200);
  });
});
