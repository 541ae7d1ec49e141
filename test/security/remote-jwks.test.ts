// Attack: tokens of a remote issuer (--jwks-url) taken at their word. Before the fix a token signed by the issuer
// registered any AOR named in `preferred_username`, in whatever realm the request named, and its `roles`/`scope`
// made it an admin here; and the JWKS could be fetched over plain http from anywhere. Now the user name comes only
// from the configured claim, the realm from configuration or a configured claim naming a realm we serve, foreign
// roles count only through the configured map, and the JWKS URL must be https (loopback excepted). The issuer
// here is a local JWKS server on loopback http; tokens are signed with jose.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { startTestServer, tempDir, testConfig, type TestServer } from '../helpers/server.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';
const ISS = 'https://idp.example';
const AUD = 'switchboard';

describe('remote JWKS: claims are mapped, never taken verbatim', () => {
  let issuer: Server;
  let key: CryptoKey;
  let jwk: JWK;
  let url: string;
  let s: TestServer;
  let sip: SipTestClient;
  let cseq = 1;

  const token = (claims: JWTPayload) =>
    new SignJWT({ scope: 'openid sip.register', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
  const register = (user: string, t: string) =>
    sip.request(
      buildRequest(sip, {
        method: 'REGISTER',
        uri: `sip:${D}`,
        from: `<sip:${user}@${D}>`,
        to: `<sip:${user}@${D}>`,
        cseq: cseq++,
        contact: `<sip:${user}@127.0.0.1:${sip.localPort};transport=udp>`,
        headers: [['Authorization', `Bearer ${t}`]],
      }),
    );
  const get = async (path: string, t: string) => (await fetch(s.httpUrl + path, { headers: { authorization: `Bearer ${t}` } })).status;

  before(async () => {
    const pair = await generateKeyPair('ES256');
    key = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
    issuer = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => issuer.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/jwks.json`;
    s = await startTestServer({
      users: { [`dora@${D}`]: 'dora-password' },
      flags: {
        'jwks-url': url,
        'jwt-issuer': ISS,
        'jwt-audience': AUD,
        'jwks-username-claim': 'sip_user',
        'jwks-realm-claim': 'tenant',
        'jwks-roles-claim': 'realm_access.roles',
        'jwks-role-map': ['sb-admins=admin'],
      },
    });
    sip = await SipTestClient.open('UDP', s.sipPort);
  });
  after(async () => {
    sip.close();
    await s.close();
    issuer.close();
  });

  it('registers the user of the configured claim in the realm of the configured claim', async () => {
    const r = await register('carol', await token({ sub: 'idp-carol', sip_user: 'carol', tenant: D }));
    assert.equal(r.status, 200, r.raw);
  });

  it('preferred_username is not the user name: a token without the configured claim registers nothing (401)', async () => {
    const r = await register('admin', await token({ sub: 'idp-mallory', preferred_username: 'admin', username: 'admin', tenant: D }));
    assert.equal(r.status, 401, r.raw);
    assert.match(r.header('WWW-Authenticate')!, /invalid_token/);
    // Nor can the configured claim smuggle in another realm.
    const smuggled = await register('carol', await token({ sub: 'idp-mallory', sip_user: 'carol@other.test', tenant: D }));
    assert.equal(smuggled.status, 401, smuggled.raw);
  });

  it('the realm is never the request’s: none in the token, or one we do not serve, is refused (401)', async () => {
    const none = await register('carol', await token({ sub: 'idp-carol', sip_user: 'carol' }));
    assert.equal(none.status, 401, none.raw);
    const foreign = await register('carol', await token({ sub: 'idp-carol', sip_user: 'carol', tenant: 'other.test' }));
    assert.equal(foreign.status, 401, foreign.raw);
  });

  it('foreign roles and scopes grant nothing unless mapped: roles ["admin"] and scope "admin" get 403 on /users', async () => {
    const forged = await token({ sub: 'idp-mallory', sip_user: 'mallory', tenant: D, roles: ['admin'], scope: 'openid sip.register admin', realm_access: { roles: ['admin'] } });
    assert.equal(await get('/users', forged), 403);
    // Their admin group, mapped to our admin role by configuration, is an admin here.
    const mapped = await token({ sub: 'idp-ops', sip_user: 'ops', tenant: D, realm_access: { roles: ['sb-admins', 'offline_access'] } });
    assert.equal(await get('/users', mapped), 200);
  });

  it('a local account of the same name that is disabled refuses the remote token', async () => {
    const ops = await token({ sub: 'idp-ops', sip_user: 'ops', tenant: D, realm_access: { roles: ['sb-admins'] } });
    assert.equal((await register('dora', await token({ sub: 'idp-dora', sip_user: 'dora', tenant: D }))).status, 200);
    const dora = (await s.accounts.findByName('dora', D))!;
    const patched = await fetch(`${s.httpUrl}/users/${dora.id}`, { method: 'PATCH', headers: { authorization: `Bearer ${ops}`, 'content-type': 'application/json' }, body: JSON.stringify({ disabled: true }) });
    assert.equal(patched.status, 200);
    assert.equal((await register('dora', await token({ sub: 'idp-dora', sip_user: 'dora', tenant: D }))).status, 401);
  });

  it('refuses to start with an http:// JWKS off loopback, or without a claim mapping', () => {
    const dir = tempDir();
    const base = { 'jwt-issuer': ISS, 'jwt-audience': AUD, 'jwks-username-claim': 'sip_user', 'jwks-realm': D };
    assert.throws(() => testConfig(dir, { ...base, 'jwks-url': 'http://idp.example/jwks.json' }), /https/);
    assert.throws(() => testConfig(dir, { ...base, 'jwks-url': 'http://10.0.0.7/jwks.json' }), /https/);
    assert.ok(testConfig(dir, { ...base, 'jwks-url': 'https://idp.example/jwks.json' }));
    assert.ok(testConfig(dir, { ...base, 'jwks-url': 'http://[::1]:8443/jwks.json' }));
    assert.throws(() => testConfig(dir, { ...base, 'jwks-username-claim': '', 'jwks-url': url }), /jwks-username-claim/);
    assert.throws(() => testConfig(dir, { 'jwks-url': url, 'jwks-username-claim': 'sip_user' }), /jwks-realm/);
    assert.throws(() => testConfig(dir, { ...base, 'jwks-url': url, 'jwks-realm': 'elsewhere.test' }), /one of --realm/);
  });
});
