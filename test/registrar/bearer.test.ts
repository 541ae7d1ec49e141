// REGISTER with Authorization: Bearer (RFC 8898) and RFC 6750 errors: valid tokens register (SIPp and the raw
// client), expired / forged / alg:none / HMAC-confused / wrong-audience / wrong-issuer tokens get 401
// invalid_token, another user's token or one without the scope gets 403; tokens from a remote issuer's JWKS
// are accepted, with the JWKS re-fetched for an unknown kid.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { missingPeer } from '../helpers/peers.ts';
import { buildRequest, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { explain, runSipp } from '../helpers/sipp.ts';

const D = 'example.test';

function registerWith(c: SipTestClient, user: string, authorization: string): Promise<SipResponseView> {
  return c.request(
    buildRequest(c, {
      method: 'REGISTER', uri: `sip:${D}`, from: `<sip:${user}@${D}>`, to: `<sip:${user}@${D}>`,
      contact: `<sip:${user}@127.0.0.1:${c.localPort}>`, headers: [['Authorization', authorization], ['Expires', '600']],
    }),
  );
}

async function signed(key: CryptoKey, kid: string, alg: string, claims: Record<string, unknown>, o: { iss?: string; aud?: string; exp?: number } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg, kid })
    .setIssuer(o.iss ?? 'switchboard')
    .setAudience(o.aud ?? 'switchboard')
    .setIssuedAt(now - 10)
    .setExpirationTime(o.exp ?? now + 600)
    .sign(key);
}

describe('Bearer REGISTER (RFC 8898)', () => {
  let s: TestServer;
  let c: SipTestClient;
  let alice: string;
  let aliceId: string;
  before(async () => {
    s = await startTestServer({ flags: { 'argon2-memory': '1024', 'argon2-passes': '1' } });
    const a = await s.accountService.create(`alice@${D}`, 'alice-password');
    await s.accountService.create(`bob@${D}`, 'bob-password');
    aliceId = a.id;
    alice = (await s.tokens.issue(a)).token;
    c = await SipTestClient.open('UDP', s.sipPort);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it('registers with a valid token, without a challenge round', async () => {
    const r = await registerWith(c, 'alice', `Bearer ${alice}`);
    assert.equal(r.status, 200, r.raw);
    const [b] = (await s.location.lookup(`alice@${D}`));
    assert.equal(b.accountId, aliceId);
  });

  it('registers with SIPp sending the token obtained from POST /auth/login', { skip: missingPeer('sipp') }, async () => {
    const login = await fetch(`${s.httpUrl}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `bob@${D}`, password: 'bob-password' }) });
    const token = ((await login.json()) as { access_token: string }).access_token;
    for (const transport of ['u1', 't1'] as const) {
      const r = await runSipp('register-bearer.xml', s.sipPort, { transport, keys: { user: 'bob', domain: D, token } });
      assert.equal(r.code, 0, explain(r));
    }
    assert.equal((await s.location.lookup(`bob@${D}`)).length, 2, 'one binding per SIPp run (UDP and TCP contacts)');
  });

  it('answers a missing Authorization with the Digest challenge (Bearer not offered by default: docs/digest-clients.md)', async () => {
    const r = await c.request(buildRequest(c, { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:alice@${D}>`, to: `<sip:alice@${D}>`, contact: '<sip:alice@192.0.2.1>' }));
    assert.equal(r.status, 401);
    assert.deepEqual(r.all('WWW-Authenticate').map((v) => v.split(' ')[0]), ['Digest']);
  });

  it('refuses expired, forged, unsigned, HMAC-confused, wrong-audience and wrong-issuer tokens with 401 invalid_token', async () => {
    const key = s.keys.signingKey();
    const claims = { sub: aliceId, username: 'alice', realm: D, scope: 'sip.register' };
    const now = Math.floor(Date.now() / 1000);
    const [h, p] = alice.split('.');
    const publicJwk = s.keys.jwks().keys.find((k) => k.kid === key.kid)!;
    const cases: Record<string, string> = {
      expired: await signed(key.privateKey, key.kid, key.alg, claims, { exp: now - 60 }),
      forged: `${h}.${p}.${Buffer.alloc(64, 7).toString('base64url')}`,
      'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`,
      'HMAC with the public key as secret': await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: key.kid })
        .setIssuer('switchboard').setAudience('switchboard').setExpirationTime(now + 600)
        .sign(new TextEncoder().encode(JSON.stringify(publicJwk))),
      'wrong audience': await signed(key.privateKey, key.kid, key.alg, claims, { aud: 'someone-else' }),
      'wrong issuer': await signed(key.privateKey, key.kid, key.alg, claims, { iss: 'https://evil.example' }),
      'another issuer’s key': await (async () => {
        const other = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
        return signed(other.privateKey, 'not-ours', 'EdDSA', claims);
      })(),
      garbage: 'abc.def.ghi',
    };
    for (const [what, token] of Object.entries(cases)) {
      const r = await registerWith(c, 'alice', `Bearer ${token}`);
      assert.equal(r.status, 401, `${what}: ${r.raw}`);
      assert.match(r.header('WWW-Authenticate')!, /^Bearer realm="example\.test", error="invalid_token", error_description="[^"]+"$/, what);
    }
    const metrics = await s.metrics.registry.metrics();
    assert.match(metrics, /switchboard_auth_failures_total\{reason="invalid-token"\} [1-9]/);
  });

  it('forbids another user’s AOR (403) and a token without sip.register (403 insufficient_scope)', async () => {
    const r = await registerWith(c, 'bob', `Bearer ${alice}`);
    assert.equal(r.status, 403);
    const key = s.keys.signingKey();
    const noScope = await signed(key.privateKey, key.kid, key.alg, { sub: aliceId, username: 'alice', realm: D, scope: 'presence' });
    const r2 = await registerWith(c, 'alice', `Bearer ${noScope}`);
    assert.equal(r2.status, 403);
    assert.equal(r2.header('WWW-Authenticate'), 'Bearer realm="example.test", error="insufficient_scope", scope="sip.register"');
  });

  it('offers a Bearer challenge after the Digest ones when configured to', async () => {
    const o = await startTestServer({ flags: { 'sip-bearer': 'offer' } });
    const oc = await SipTestClient.open('UDP', o.sipPort);
    try {
      const r = await oc.request(buildRequest(oc, { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:alice@${D}>`, to: `<sip:alice@${D}>`, contact: '<sip:a@192.0.2.1>' }));
      assert.deepEqual(r.all('WWW-Authenticate').map((v) => v.split(' ')[0]), ['Digest', 'Bearer']);
      assert.equal(r.all('WWW-Authenticate')[1], 'Bearer realm="example.test", scope="sip.register"');
    } finally {
      oc.close();
      await o.close();
    }
  });
});

describe('Bearer tokens from a remote issuer (--jwks-url)', () => {
  let issuer: Server;
  const keys: Array<{ kid: string; privateKey: CryptoKey; jwk: JWK }> = [];
  let fetches = 0;
  let s: TestServer;
  let c: SipTestClient;
  const addKey = async (kid: string) => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    keys.push({ kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } });
  };
  before(async () => {
    await addKey('k1');
    issuer = createServer((req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    });
    await new Promise<void>((r) => issuer.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/jwks.json`;
    // A remote issuer's claims are mapped, never taken verbatim: which claim is the user name and where the realm comes from.
    s = await startTestServer({ flags: { 'jwks-url': url, 'jwt-issuer': 'https://idp.example', 'jwt-audience': 'sip', 'jwks-cooldown': '1', 'jwks-username-claim': 'username', 'jwks-realm-claim': 'realm' } });
    c = await SipTestClient.open('UDP', s.sipPort);
  });
  after(async () => {
    c.close();
    await s.close();
    issuer.close();
  });

  const token = (kid: string, user = 'carol') => {
    const k = keys.find((x) => x.kid === kid)!;
    return signed(k.privateKey, kid, 'ES256', { sub: `ext-${user}`, username: user, realm: D, scope: 'openid sip.register' }, { iss: 'https://idp.example', aud: 'sip' });
  };

  it('accepts a token signed by the remote issuer, caching the JWKS', async () => {
    assert.equal((await registerWith(c, 'carol', `Bearer ${await token('k1')}`)).status, 200);
    assert.equal((await registerWith(c, 'dave', `Bearer ${await token('k1', 'dave')}`)).status, 200);
    assert.equal(fetches, 1, 'one JWKS fetch serves both');
  });

  it('re-fetches the JWKS when a token names a kid it has not seen (the issuer rotated)', async () => {
    await addKey('k2');
    const before = fetches;
    // Past the cooldown (1 s here) since the last fetch, an unknown kid triggers a fetch.
    await new Promise((r) => setTimeout(r, 1100));
    const r = await registerWith(c, 'erin', `Bearer ${await token('k2', 'erin')}`);
    assert.equal(r.status, 200, r.raw);
    assert.equal(fetches, before + 1);
    // A kid the issuer never published stays refused.
    keys.push({ ...keys[0], kid: 'k3' });
    const forged = await token('k3', 'erin');
    keys.pop();
    assert.equal((await registerWith(c, 'erin', `Bearer ${forged}`)).status, 401);
  });
});
