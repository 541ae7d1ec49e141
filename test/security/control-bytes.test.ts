// Control bytes in header values (issue 15): a bare CR, a NUL or another control character (HTAB aside) makes a
// request malformed (RFC 3261 §25.1: TEXT-UTF8 and LWS). Over UDP and TCP such a REGISTER is refused with 400,
// the 400 echoes none of the tainted header, and nothing of it is stored, even with valid credentials.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const DOMAIN = 'example.test';

describe('control bytes in SIP headers', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ users: { 'alice@example.test': 'alice-pw' } });
  });
  after(() => s.close());

  for (const transport of ['UDP', 'TCP'] as const) {
    describe(`over ${transport}`, () => {
      let c: SipTestClient;
      before(async () => {
        c = await SipTestClient.open(transport, s.sipPort);
      });
      after(() => c.close());

      const reg = (headers: Array<[string, string]>, extra: { from?: string; callId?: string } = {}) =>
        buildRequest(c, {
          method: 'REGISTER',
          uri: `sip:${DOMAIN}`,
          from: extra.from ?? `<sip:alice@${DOMAIN}>`,
          to: `<sip:alice@${DOMAIN}>`,
          callId: extra.callId,
          contact: `<sip:alice@127.0.0.1:${c.localPort};transport=${transport.toLowerCase()}>`,
          headers,
        });

      for (const [what, value] of [
        ['a bare CR (header injection)', 'evil\rX-Injected: yes'],
        ['a NUL', 'evil\0tail'],
        ['an ESC', 'evil\x1b[2Jtail'],
        ['a DEL', 'evil\x7ftail'],
      ] as const) {
        it(`refuses ${what} in a header value with 400 and does not echo it`, async () => {
          const r = await c.request(reg([['User-Agent', value]]));
          assert.equal(r.status, 400);
          assert.match(r.reason, /control character/i);
          assert.doesNotMatch(r.raw, /X-Injected|evil/);
          assert.doesNotMatch(r.raw.split('\r\n\r\n')[0].replace(/\r\n/g, ''), /[\x00-\x08\x0a-\x1f\x7f]/, 'no control byte in the answer');
        });
      }

      it('answers 400 without echoing a From whose display name holds a raw NUL', async () => {
        const r = await c.request(reg([], { from: `"bad\0name" <sip:alice@${DOMAIN}>` }));
        assert.equal(r.status, 400);
        assert.equal(r.header('From'), undefined, 'the tainted From is not copied into the 400');
        assert.doesNotMatch(r.raw, /\0/);
      });

      it('stores nothing of a correctly authenticated REGISTER with a control byte', async () => {
        const callId = `ctl-${transport}-${Date.now()}@test`;
        const challenge = await c.request(reg([], { callId }));
        assert.equal(challenge.status, 401);
        const ch = parseChallenge(challenge.header('WWW-Authenticate')!);
        const auth = digestAuthorization(ch, { username: 'alice', password: 'alice-pw', method: 'REGISTER', uri: `sip:${DOMAIN}` });
        const r = await c.request(reg([['Authorization', auth], ['User-Agent', 'phone\0\r\nX-Injected: yes']], { callId }).replace('CSeq: 1 ', 'CSeq: 2 '));
        assert.equal(r.status, 400);
        assert.deepEqual(await s.location.lookup(`alice@${DOMAIN}`), [], 'no binding was stored');
      });
    });
  }
});
