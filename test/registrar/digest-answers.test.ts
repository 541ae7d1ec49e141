// Which Digest answers the registrar takes over real SIP: an RFC 2069 answer (no qop) only while
// --digest-allow-no-qop is on (the default), an answer in an algorithm it did not offer never. A refused answer is
// challenged again (401), and the same client answering properly then registers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { startTestServer, type Flags } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';

async function answering(flags: Flags, shape: (challenge: Record<string, string>) => Record<string, string>): Promise<{ status: number; retry: number }> {
  const s = await startTestServer({ flags, users: { [`alice@${D}`]: 'alice-pw' } });
  const c = await SipTestClient.open('UDP', s.sipPort);
  try {
    const spec = { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:alice@${D}>`, to: `<sip:alice@${D}>`, callId: `${randomBytes(4).toString('hex')}@test`, contact: `<sip:alice@127.0.0.1:${c.localPort}>` };
    const auth = (res: { header(name: string): string | undefined }, ch: (x: Record<string, string>) => Record<string, string>) =>
      digestAuthorization(ch(parseChallenge(res.header('WWW-Authenticate')!)), { username: 'alice', password: 'alice-pw', method: 'REGISTER', uri: `sip:${D}` });
    const first = await c.request(buildRequest(c, { ...spec, cseq: 1 }));
    assert.equal(first.status, 401);
    const answered = await c.request(buildRequest(c, { ...spec, cseq: 2, headers: [['Authorization', auth(first, shape)]] }));
    if (answered.status !== 401) return { status: answered.status, retry: 0 };
    // Refused: the fresh challenge answered as RFC 7616 says is taken.
    const retried = await c.request(buildRequest(c, { ...spec, cseq: 3, headers: [['Authorization', auth(answered, (x) => x)]] }));
    return { status: answered.status, retry: retried.status };
  } finally {
    c.close();
    await s.close();
  }
}

const withoutQop = (ch: Record<string, string>) => {
  const { qop: _qop, ...rest } = ch;
  return rest;
};

describe('Digest answers the registrar takes', () => {
  it('takes an RFC 2069 answer (no qop) by default', async () => {
    assert.deepEqual(await answering({}, withoutQop), { status: 200, retry: 0 });
  });

  it('challenges an RFC 2069 answer again with --digest-allow-no-qop false', async () => {
    assert.deepEqual(await answering({ 'digest-allow-no-qop': 'false' }, withoutQop), { status: 401, retry: 200 });
  });

  it('challenges an answer in an algorithm it did not offer again', async () => {
    assert.deepEqual(await answering({}, (ch) => ({ ...ch, algorithm: 'SHA-256' })), { status: 401, retry: 200 });
  });
});
