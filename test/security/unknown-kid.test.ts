// Attack: a flood of tokens naming key ids we never issued. Before the fix every one of them made the server re-read
// its signing keys from the store (an unknown kid may be a key another node has just rotated in): one query per
// request, for anyone, without credentials. Now such reloads happen at most once per --jwks-cooldown, as jose's
// cooldownDuration does for a remote JWKS; switchboard_signing_key_reloads_total on /metrics counts the reads of the
// keys from the store.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';

async function reloads(s: TestServer): Promise<number> {
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
  const m = /^switchboard_signing_key_reloads_total (\d+)/m.exec(text);
  assert.ok(m, 'switchboard_signing_key_reloads_total on /metrics');
  return Number(m[1]);
}

describe('tokens naming unknown kids reload the signing keys at most once per cooldown', () => {
  let s: TestServer;
  let sip: SipTestClient;
  let forge: (kid: string) => Promise<string>;
  before(async () => {
    s = await startTestServer({ flags: { 'jwks-cooldown': '2' } });
    sip = await SipTestClient.open('UDP', s.sipPort);
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    forge = (kid) =>
      new SignJWT({ sub: randomUUID(), username: 'mallory', realm: D, scope: 'sip.register presence' })
        .setProtectedHeader({ alg: 'EdDSA', kid })
        .setIssuer('switchboard')
        .setAudience('switchboard')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
  });
  after(async () => {
    sip.close();
    await s.close();
  });

  it('a flood of random kids over HTTP and SIP costs one reload per cooldown, and each is refused', async () => {
    const admin = await adminToken(s);
    const before = await reloads(s);
    const started = Date.now();
    const statuses = new Map<number, number>();
    for (let batch = 0; batch < 10; batch++) {
      const rs = await Promise.all(
        Array.from({ length: 30 }, async () => (await fetch(`${s.httpUrl}/users`, { headers: { authorization: `Bearer ${await forge(randomUUID())}` } })).status),
      );
      for (const st of rs) statuses.set(st, (statuses.get(st) ?? 0) + 1);
    }
    for (let i = 0; i < 20; i++) {
      const r = await sip.request(
        buildRequest(sip, {
          method: 'REGISTER',
          uri: `sip:${D}`,
          from: `<sip:mallory@${D}>`,
          to: `<sip:mallory@${D}>`,
          cseq: i + 1,
          contact: `<sip:mallory@127.0.0.1:${sip.localPort}>`,
          headers: [['Authorization', `Bearer ${await forge(randomUUID())}`]],
        }),
      );
      assert.equal(r.status, 401, r.raw);
    }
    assert.deepEqual([...statuses], [[401, 300]]);
    const during = (await reloads(s)) - before;
    // One reload per 2 s cooldown begun during the flood (here: one, the flood took well under 2 s); without the
    // cooldown, one store read per request (measured: 320 on SQLite).
    const allowed = Math.floor((Date.now() - started) / 2000) + 1;
    assert.ok(during >= 1 && during <= allowed, `${during} key reloads for 320 unknown kids (at most ${allowed})`);
    // Genuine tokens are unaffected.
    assert.equal((await fetch(`${s.httpUrl}/users`, { headers: { authorization: `Bearer ${admin}` } })).status, 200);

    // After the cooldown an unknown kid may reload again (a key another node rotated in is found): once more.
    await new Promise((r) => setTimeout(r, 2100));
    const later = await reloads(s);
    const again = Date.now();
    await Promise.all(Array.from({ length: 20 }, async () => fetch(`${s.httpUrl}/users`, { headers: { authorization: `Bearer ${await forge(randomUUID())}` } })));
    const more = (await reloads(s)) - later;
    assert.ok(more >= 1 && more <= Math.floor((Date.now() - again) / 2000) + 1, `${more} reloads after the cooldown`);
  });
});
