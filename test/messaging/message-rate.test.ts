// The SIP MESSAGE rate (messaging/sip-message.ts): a token bucket per authenticated sender and one per source
// address, so one account cannot fill another's store at line rate (the quota caps the amount, this the pace).
// Beyond either: 503 with Retry-After (SIP has no 429; the sending UA honours Retry-After). Real UDP sockets; the
// recipient has no device, so each accepted MESSAGE is stored (202).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';

const D = 'example.test';

describe('SIP MESSAGE rate per sender and per source address', () => {
  let server: TestServer;
  let c: SipTestClient;
  before(async () => {
    server = await startTestServer({
      users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw' },
      flags: { 'message-sip-sender-rate': '3/60', 'message-sip-source-rate': '12/60' },
    });
    c = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    c.close();
    await server.close();
  });

  /** `user`'s MESSAGE to alice: the first answer when it is not 407, else the answer to the authenticated one. */
  const message = async (user: string, text: string): Promise<SipResponseView> => {
    const spec = { method: 'MESSAGE', uri: `sip:alice@${D}`, from: `<sip:${user}@${D}>`, to: `<sip:alice@${D}>`, callId: `rate-${Math.random()}@test`, headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: text };
    const first = await c.request(buildRequest(c, { ...spec, cseq: 1 }));
    if (first.status !== 407) return first;
    const auth = digestAuthorization(parseChallenge(first.header('Proxy-Authenticate')!), { username: user, password: `${user}-pw`, method: 'MESSAGE', uri: spec.uri });
    return c.request(buildRequest(c, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }), 10_000);
  };

  it('a sender beyond its bucket gets 503 with Retry-After; another sender still gets through until the address is over', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await message('bob', `bob ${i}`)).status, 202);
    const over = await message('bob', 'bob 3');
    assert.equal(over.status, 503);
    assert.match(over.reason, /too many messages from this sender/i);
    assert.ok(Number(over.header('Retry-After')) >= 1, 'Retry-After');
    // Same address, another sender: its own bucket is full, the address's has 4 of 12 permits left (2 requests each).
    for (let i = 0; i < 2; i++) assert.equal((await message('carol', `carol ${i}`)).status, 202);
    const address = await message('carol', 'carol 2');
    assert.equal(address.status, 503, 'the address is over its bucket (before the challenge)');
    assert.match(address.reason, /from this address/i);
    assert.ok(Number(address.header('Retry-After')) >= 1);
  });
});
