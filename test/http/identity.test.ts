// The identity API over real HTTP: login, JWTs that a standard JOSE library verifies against /auth/jwks.json,
// refresh rotation and family revocation, logout, lockout and rate limits, /users with roles, API keys.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { adminToken, cliDataArgs, ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.ts';

const run = promisify(execFile);
type Json = Record<string, unknown>;

async function call(server: TestServer, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: Json; headers: Headers }> {
  const r = await fetch(server.httpUrl + url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Json) : {}, headers: r.headers };
}

const FAST_ARGON = { 'argon2-memory': '1024', 'argon2-passes': '1' };

describe('identity API', () => {
  let s: TestServer;
  let admin: string;
  let aliceId: string;
  before(async () => {
    s = await startTestServer({ flags: { ...FAST_ARGON, 'auth-account-failures': '3', 'auth-lockout': '60', 'login-rate-limit': '0' } });
    admin = await adminToken(s);
    const r = await call(s, 'POST', '/users', { username: 'alice@example.test', password: 'alice-password' }, admin);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    aliceId = r.body.id as string;
  });
  after(() => s.close());

  it('logs in and issues a JWT that jose verifies against /auth/jwks.json', async () => {
    const r = await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'alice-password' });
    assert.equal(r.status, 200);
    assert.equal(r.body.token_type, 'Bearer');
    assert.equal(r.body.expires_in, 900);
    const jwks = createRemoteJWKSet(new URL(`${s.httpUrl}/auth/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(r.body.access_token as string, jwks, { issuer: 'switchboard', audience: 'switchboard' });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.equal(payload.sub, aliceId);
    assert.equal(payload.username, 'alice');
    assert.equal(payload.realm, 'example.test');
    assert.deepEqual(payload.roles, []);
    assert.match(payload.scope as string, /\bsip\.register\b/);
    assert.ok(payload.jti && payload.iat && payload.exp);
    const keys = (await call(s, 'GET', '/auth/jwks.json')).body.keys as Json[];
    assert.ok(keys.every((k) => k.use === 'sig' && k.kid && k.alg && !('d' in k)), 'public keys only');
  });

  it('accepts a bare user name in the default realm', async () => {
    const r = await call(s, 'POST', '/auth/login', { username: 'alice', password: 'alice-password' });
    assert.equal(r.status, 200);
  });

  it('refuses wrong passwords and unknown users alike, with the same work done', async () => {
    const wrong = await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'nope' });
    const unknown = await call(s, 'POST', '/auth/login', { username: 'nobody@example.test', password: 'nope' });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.deepEqual(wrong.body, unknown.body);
    await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'alice-password' }); // reset the count
  });

  it('rotates refresh tokens and revokes the whole family when a spent one is reused', async () => {
    const login = await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'alice-password' });
    const r1 = login.body.refresh_token as string;
    const next = await call(s, 'POST', '/auth/refresh', { refresh_token: r1 });
    assert.equal(next.status, 200);
    const r2 = next.body.refresh_token as string;
    assert.notEqual(r2, r1);
    const next2 = await call(s, 'POST', '/auth/refresh', { refresh_token: r2 });
    assert.equal(next2.status, 200);
    const r3 = next2.body.refresh_token as string;
    // r1 was spent: presenting it again is theft; r3 (the live one of that family) dies with it.
    const reuse = await call(s, 'POST', '/auth/refresh', { refresh_token: r1 });
    assert.equal(reuse.status, 401);
    assert.match((reuse.body.error as Json).message as string, /reused/);
    assert.equal((await call(s, 'POST', '/auth/refresh', { refresh_token: r3 })).status, 401);
    // Another login (another family) is unaffected.
    const other = await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'alice-password' });
    assert.equal((await call(s, 'POST', '/auth/refresh', { refresh_token: other.body.refresh_token })).status, 200);
  });

  it('logs out: the caller’s refresh tokens stop working', async () => {
    const a = await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'alice-password' });
    const b = await call(s, 'POST', '/auth/login', { username: 'alice@example.test', password: 'alice-password' });
    assert.equal((await call(s, 'POST', '/auth/logout', undefined, a.body.access_token as string)).status, 204);
    assert.equal((await call(s, 'POST', '/auth/refresh', { refresh_token: a.body.refresh_token })).status, 401);
    assert.equal((await call(s, 'POST', '/auth/refresh', { refresh_token: b.body.refresh_token })).status, 401);
    assert.equal((await call(s, 'POST', '/auth/logout')).status, 401);
  });

  it('locks the account after repeated failures: 429 with Retry-After, even for the right password', async () => {
    await call(s, 'POST', '/users', { username: 'mallory@example.test', password: 'mallory-password' }, admin);
    for (let i = 0; i < 3; i++) assert.equal((await call(s, 'POST', '/auth/login', { username: 'mallory', password: 'x' })).status, 401);
    const locked = await call(s, 'POST', '/auth/login', { username: 'mallory', password: 'mallory-password' });
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    assert.equal((locked.body.error as Json).code, 'AUTH_ERR_LOCKED');
  });

  it('manages users: admin creates and lists with search and paging; users see only themselves', async () => {
    for (const u of ['bob', 'carol', 'dave']) {
      assert.equal((await call(s, 'POST', '/users', { username: `${u}@example.test`, password: `${u}-password` }, admin)).status, 201);
    }
    const dup = await call(s, 'POST', '/users', { username: 'bob@example.test', password: 'whatever-1' }, admin);
    assert.equal(dup.status, 409);
    const page = await call(s, 'GET', '/users?search=example.test&limit=2&offset=1', undefined, admin);
    assert.equal(page.status, 200);
    assert.equal((page.body.users as Json[]).length, 2);
    assert.ok((page.body.total as number) >= 5);
    const search = await call(s, 'GET', '/users?search=caro', undefined, admin);
    assert.deepEqual((search.body.users as Json[]).map((u) => u.username), ['carol']);

    const alice = (await call(s, 'POST', '/auth/login', { username: 'alice', password: 'alice-password' })).body.access_token as string;
    assert.equal((await call(s, 'GET', `/users/${aliceId}`, undefined, alice)).status, 200);
    const bobId = ((await call(s, 'GET', '/users?search=bob', undefined, admin)).body.users as Json[])[0].id;
    assert.equal((await call(s, 'GET', `/users/${bobId}`, undefined, alice)).status, 403);
    assert.equal((await call(s, 'GET', '/users', undefined, alice)).status, 403);
    assert.equal((await call(s, 'GET', '/users')).status, 401);
    assert.equal((await call(s, 'POST', '/users', { username: 'eve@example.test', password: 'eve-password' }, alice)).status, 403);
  });

  it('changes roles only by an admin, never on the admin’s own account', async () => {
    const alice = (await call(s, 'POST', '/auth/login', { username: 'alice', password: 'alice-password' })).body.access_token as string;
    assert.equal((await call(s, 'PATCH', `/users/${aliceId}`, { roles: ['admin'] }, alice)).status, 403, 'no self-promotion');
    const adminId = ((await call(s, 'GET', '/users?search=admin', undefined, admin)).body.users as Json[])[0].id;
    assert.equal((await call(s, 'PATCH', `/users/${adminId}`, { roles: [] }, admin)).status, 403, 'not even an admin on itself');
    const promoted = await call(s, 'PATCH', `/users/${aliceId}`, { roles: ['admin'] }, admin);
    assert.equal(promoted.status, 200);
    assert.deepEqual(promoted.body.roles, ['admin']);
    assert.equal((await call(s, 'PATCH', `/users/${aliceId}`, { roles: ['superuser'] }, admin)).status, 400);
    await call(s, 'PATCH', `/users/${aliceId}`, { roles: [] }, admin);
  });

  it('changes a password: the account itself must give the current one; Digest credentials follow', async () => {
    const created = await call(s, 'POST', '/users', { username: 'frank@example.test', password: 'frank-password' }, admin);
    const id = created.body.id as string;
    const frank = (await call(s, 'POST', '/auth/login', { username: 'frank', password: 'frank-password' })).body.access_token as string;
    assert.equal((await call(s, 'PUT', `/users/${id}/password`, { password: 'new-frank-pw', currentPassword: 'wrong' }, frank)).status, 401);
    assert.equal((await call(s, 'PUT', `/users/${id}/password`, { password: 'new-frank-pw', currentPassword: 'frank-password' }, frank)).status, 204);
    assert.equal((await call(s, 'POST', '/auth/login', { username: 'frank', password: 'frank-password' })).status, 401);
    assert.equal((await call(s, 'POST', '/auth/login', { username: 'frank', password: 'new-frank-pw' })).status, 200);
    const sip = await s.accounts.findSipCredential('frank', 'example.test', 'MD5');
    const { createHash } = await import('node:crypto');
    assert.equal(sip!.credential.ha1, createHash('md5').update('frank:example.test:new-frank-pw').digest('hex'));
    assert.equal((await call(s, 'DELETE', `/users/${id}`, undefined, admin)).status, 204);
    assert.equal((await call(s, 'GET', `/users/${id}`, undefined, admin)).status, 404);
  });

  it('creates API keys shown once, uses them within their permissions, and revokes them', async () => {
    const created = await call(s, 'POST', `/users/${aliceId}/api-keys`, { name: 'monitoring', permissions: ['registrations.read'], expiresInDays: 30 }, admin);
    assert.equal(created.status, 201);
    const key = created.body.key as string;
    assert.match(key, /^sbk_[0-9a-f]{32}_/);
    const list = await call(s, 'GET', `/users/${aliceId}/api-keys`, undefined, admin);
    assert.equal((list.body.keys as Json[]).length, 1);
    assert.ok(!JSON.stringify(list.body).includes(key.slice('sbk_'.length + 33)), 'the secret is never shown again');
    assert.equal((await call(s, 'GET', '/v1/registrations', undefined, key)).status, 200);
    assert.equal((await call(s, 'GET', '/users', undefined, key)).status, 403, 'not beyond its permissions');
    const alice = (await call(s, 'POST', '/auth/login', { username: 'alice', password: 'alice-password' })).body.access_token as string;
    assert.equal((await call(s, 'POST', `/users/${aliceId}/api-keys`, { name: 'x', permissions: ['registrations.read'] }, alice)).status, 403, 'a user cannot mint admin permissions');
    assert.equal((await call(s, 'POST', `/users/${aliceId}/api-keys`, { name: 'own', permissions: ['presence.read'] }, alice)).status, 201);
    assert.equal((await call(s, 'DELETE', `/users/${aliceId}/api-keys/${created.body.id}`, undefined, alice)).status, 204);
    assert.equal((await call(s, 'GET', '/v1/registrations', undefined, key)).status, 401);
    assert.equal((await call(s, 'GET', '/v1/registrations', undefined, 'sbk_' + '0'.repeat(32) + '_' + 'A'.repeat(43))).status, 401);
  });

  it('rejects forged, expired-looking, none-algorithm and wrong-audience tokens on HTTP', async () => {
    const good = (await call(s, 'POST', '/auth/login', { username: 'alice', password: 'alice-password' })).body.access_token as string;
    const [h, p] = good.split('.');
    const forged = `${h}.${p}.${Buffer.alloc(64, 1).toString('base64url')}`;
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
    for (const t of [forged, none, 'not-a-token']) assert.equal((await call(s, 'GET', `/users/${aliceId}`, undefined, t)).status, 401, t);
  });

  it('serves the OpenAPI document at /docs', async () => {
    const r = await fetch(`${s.httpUrl}/docs/json`);
    assert.equal(r.status, 200);
    const doc = (await r.json()) as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/auth/login', '/auth/refresh', '/auth/logout', '/auth/jwks.json', '/users', '/users/{id}', '/users/{id}/api-keys', '/v1/registrations']) {
      assert.ok(doc.paths[p], `OpenAPI lacks ${p}`);
    }
  });
});

describe('login rate limit per address', () => {
  it('answers 429 with Retry-After beyond the limit', async () => {
    const s = await startTestServer({ flags: { ...FAST_ARGON, 'login-rate-limit': '3' } });
    try {
      const statuses: number[] = [];
      let last: Headers | null = null;
      for (let i = 0; i < 5; i++) {
        const r = await call(s, 'POST', '/auth/login', { username: 'x', password: 'y' });
        statuses.push(r.status);
        last = r.headers;
        if (r.status === 429) assert.equal((r.body.error as Json).code, 'HTTP_ERR_RATE_LIMITED');
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
      assert.ok(Number(last!.get('retry-after')) > 0);
    } finally {
      await s.close();
    }
  });
});

describe('signing keys across restarts and rotation', () => {
  it('keeps tokens valid across a restart and a rotation; new tokens use the new key', async () => {
    const dir = tempDir();
    let s = await startTestServer({ dataDir: dir, flags: FAST_ARGON });
    const token = await adminToken(s);
    const kid1 = decodeProtectedHeader(token).kid;
    await s.close();
    s = await startTestServer({ dataDir: dir, flags: FAST_ARGON });
    try {
      assert.equal((await call(s, 'GET', '/users', undefined, token)).status, 200, 'valid after a restart');
      await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'keys', 'rotate', ...cliDataArgs(dir)], { env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
      await s.keys.refresh(true); // what the server does on its own within 30 s
      const jwks = (await call(s, 'GET', '/auth/jwks.json')).body.keys as Json[];
      assert.equal(jwks.length, 2, 'old and new key published');
      assert.equal((await call(s, 'GET', '/users', undefined, token)).status, 200, 'still valid after rotation');
      const fresh = (await s.tokens.issue((await s.accounts.findByName('admin', 'example.test'))!)).token;
      const kid2 = decodeProtectedHeader(fresh).kid;
      assert.notEqual(kid2, kid1);
      assert.equal((await call(s, 'GET', '/users', undefined, fresh)).status, 200);
    } finally {
      await s.close();
    }
  });
});

describe('one account, every credential', () => {
  it('an account created over HTTP registers over SIP with the same password, and a CLI-created one logs in over HTTP', async () => {
    const dir = tempDir();
    await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'user', 'add', 'cli-user@example.test', '--password', 'cli-password', ...cliDataArgs(dir), ...Object.entries(FAST_ARGON).flatMap(([k, v]) => [`--${k}`, v])], { env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
    const s = await startTestServer({ dataDir: dir, flags: FAST_ARGON });
    const { SipTestClient } = await import('../helpers/sip-client.ts');
    const { register } = await import('../helpers/register.ts');
    const c = await SipTestClient.open('UDP', s.sipPort);
    try {
      const admin = await adminToken(s);
      assert.equal((await call(s, 'POST', '/users', { username: 'http-user@example.test', password: 'http-password' }, admin)).status, 201);
      assert.equal((await register(c, { user: 'http-user', password: 'http-password', domain: 'example.test' })).status, 200);
      assert.equal((await register(c, { user: 'http-user', password: 'wrong', domain: 'example.test' })).status, 401);
      const login = await call(s, 'POST', '/auth/login', { username: 'cli-user@example.test', password: 'cli-password' });
      assert.equal(login.status, 200);
      assert.equal((await register(c, { user: 'cli-user', password: 'cli-password', domain: 'example.test' })).status, 200);
      const cli = await s.accounts.findByName('cli-user', 'example.test');
      assert.match(cli!.passwordHash!, /^\$argon2id\$/, 'switchboard user add stores an argon2id hash');
    } finally {
      c.close();
      await s.close();
    }
  });

  it('a disabled or deleted account stops registering over SIP at once, its cached credentials notwithstanding', async () => {
    const s = await startTestServer({ flags: FAST_ARGON });
    const { SipTestClient } = await import('../helpers/sip-client.ts');
    const { register } = await import('../helpers/register.ts');
    const c = await SipTestClient.open('UDP', s.sipPort);
    try {
      const admin = await adminToken(s);
      const made = await call(s, 'POST', '/users', { username: 'dora@example.test', password: 'dora-password' }, admin);
      assert.equal(made.status, 201);
      const dora = { user: 'dora', password: 'dora-password', domain: 'example.test' };
      assert.equal((await register(c, dora)).status, 200, 'registers (and the HA1 is cached now)');
      assert.equal((await call(s, 'PATCH', `/users/${made.body.id as string}`, { disabled: true }, admin)).status, 200);
      assert.equal((await register(c, dora)).status, 401, 'disabled: refused on the next REGISTER, not after the cache TTL');
      assert.equal((await call(s, 'PATCH', `/users/${made.body.id as string}`, { disabled: false }, admin)).status, 200);
      assert.equal((await register(c, dora)).status, 200, 'enabled again');
      assert.equal((await call(s, 'DELETE', `/users/${made.body.id as string}`, undefined, admin)).status, 204);
      assert.equal((await register(c, dora)).status, 401, 'deleted: refused at once');
    } finally {
      c.close();
      await s.close();
    }
  });

  it('an imported account (SIP credentials only) logs in over HTTP once, and gets an argon2id hash then', async () => {
    const dir = tempDir();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(dir, 'u.csv'), 'imported,example.test,imported-pw\n');
    await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'user', 'import', path.join(dir, 'u.csv'), ...cliDataArgs(dir)], { env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
    const s = await startTestServer({ dataDir: dir, flags: FAST_ARGON });
    try {
      assert.equal((await s.accounts.findByName('imported', 'example.test'))!.passwordHash, null);
      assert.equal((await call(s, 'POST', '/auth/login', { username: 'imported', password: 'wrong-pw' })).status, 401);
      assert.equal((await call(s, 'POST', '/auth/login', { username: 'imported', password: 'imported-pw' })).status, 200);
      assert.match((await s.accounts.findByName('imported', 'example.test'))!.passwordHash!, /^\$argon2id\$/);
      assert.equal((await call(s, 'POST', '/auth/login', { username: 'imported', password: 'imported-pw' })).status, 200);
    } finally {
      await s.close();
    }
  });
});
