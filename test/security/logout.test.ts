// Attack: POST /auth/logout {"refresh_token": "rt_<id>.<anything>"} revoked the family of any refresh token whose id
// the caller knew, without the secret and whoever it belonged to: any logged-in user could log others out. Now logout
// needs the refresh token itself (secret checked in constant time) and only the caller's own: a made-up secret is
// ignored (RFC 7009 §2.2), another account's genuine token refused (403, RFC 7009 §2.1).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

type Json = Record<string, unknown>;
const D = 'example.test';

async function call(s: TestServer, path: string, body: unknown, token?: string): Promise<{ status: number; body: Json }> {
  const r = await fetch(s.httpUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Json) : {} };
}

describe('logout revokes only a refresh token the caller holds', () => {
  let s: TestServer;
  const login = async (user: string) => (await call(s, '/auth/login', { username: `${user}@${D}`, password: `${user}-password` })).body as { access_token: string; refresh_token: string };
  before(async () => {
    s = await startTestServer({ flags: { 'argon2-memory': '1024', 'argon2-passes': '1', 'login-rate-limit': '0' } });
    const admin = await adminToken(s);
    for (const u of ['alice', 'bob']) assert.equal((await call(s, '/users', { username: `${u}@${D}`, password: `${u}-password` }, admin)).status, 201);
  });
  after(() => s.close());

  it('another user’s family id with a made-up secret revokes nothing', async () => {
    const alice = await login('alice');
    const bob = await login('bob');
    const id = bob.refresh_token.slice(3, bob.refresh_token.indexOf('.'));
    const forged = `rt_${id}.${randomBytes(32).toString('base64url')}`;
    assert.equal((await call(s, '/auth/logout', { refresh_token: forged }, alice.access_token)).status, 204);
    const refreshed = await call(s, '/auth/refresh', { refresh_token: bob.refresh_token });
    assert.equal(refreshed.status, 200, `bob's session survives: ${JSON.stringify(refreshed.body)}`);
  });

  it('another user’s genuine refresh token is refused (403) and stays live', async () => {
    const alice = await login('alice');
    const bob = await login('bob');
    const r = await call(s, '/auth/logout', { refresh_token: bob.refresh_token }, alice.access_token);
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal((r.body.error as Json).code, 'HTTP_ERR_FORBIDDEN');
    assert.equal((await call(s, '/auth/refresh', { refresh_token: bob.refresh_token })).status, 200);
  });

  it('the caller’s own refresh token is revoked', async () => {
    const alice = await login('alice');
    assert.equal((await call(s, '/auth/logout', { refresh_token: alice.refresh_token }, alice.access_token)).status, 204);
    assert.equal((await call(s, '/auth/refresh', { refresh_token: alice.refresh_token })).status, 401);
  });
});
