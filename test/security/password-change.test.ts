// Issue 15, "PUT /users/{id}/password checks the current password with no rate limit": someone holding a stolen
// access token must not be able to guess the current password (an argon2 verification per guess) without limit.
// Wrong current passwords are counted and locked like logins (per account and source: the owner at a known address
// still changes it), and the route is rate-limited per address like login. Over real HTTP from two local addresses.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { httpFrom, type Json } from './http-from.ts';

const D = 'example.test';
const FAST = { 'argon2-memory': '1024', 'argon2-passes': '1' };

async function login(s: TestServer, from: string, password: string): Promise<{ token: string; id: string }> {
  const r = await httpFrom(from, s.httpUrl, 'POST', '/auth/login', { body: { username: `alice@${D}`, password } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const token = r.body.access_token as string;
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Json;
  return { token, id: claims.sub as string };
}

const change = (s: TestServer, from: string, t: { token: string; id: string }, currentPassword: string, password: string) =>
  httpFrom(from, s.httpUrl, 'PUT', `/users/${t.id}/password`, { body: { currentPassword, password }, headers: { authorization: `Bearer ${t.token}` } });

describe('PUT /users/{id}/password: guesses at the current password are limited', () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it('locks the guessing address out; the owner at a known address still changes the password', async () => {
    const s = await startTestServer({
      flags: { ...FAST, 'auth-account-address-failures': '5', 'auth-account-failures': '5', 'auth-lockout': '120', 'login-rate-limit': '0' },
      users: { [`alice@${D}`]: 'alice-secret-1' },
    });
    servers.push(s);
    const owner = await login(s, '127.0.0.1', 'alice-secret-1');
    const stolen = owner; // the attacker holds a copy of the owner's access token
    for (let i = 0; i < 5; i++) {
      const r = await change(s, '127.0.0.2', stolen, `guess-${i}`, 'attacker-password');
      assert.equal(r.status, 401);
      assert.equal((r.body.error as Json).code, 'AUTH_ERR_CREDENTIALS');
    }
    const refused = await change(s, '127.0.0.2', stolen, 'alice-secret-1', 'attacker-password');
    assert.equal(refused.status, 429, 'the guessing address is refused, even with the right current password');
    assert.equal((refused.body.error as Json).code, 'AUTH_ERR_LOCKED');
    assert.ok(Number(refused.headers['retry-after']) > 0);
    assert.equal((await change(s, '127.0.0.1', owner, 'alice-secret-1', 'alice-secret-2')).status, 204, 'the owner changes it');
  });

  it('is rate-limited per address like login', async () => {
    const s = await startTestServer({ flags: { ...FAST, 'login-rate-limit': '3' }, users: { [`alice@${D}`]: 'alice-secret-1' } });
    servers.push(s);
    const t = await login(s, '127.0.0.1', 'alice-secret-1');
    for (let i = 0; i < 3; i++) assert.equal((await change(s, '127.0.0.2', t, `guess-${i}`, 'attacker-password')).status, 401);
    const r = await change(s, '127.0.0.2', t, 'guess-3', 'attacker-password');
    assert.equal(r.status, 429);
    assert.equal((r.body.error as Json).code, 'HTTP_ERR_RATE_LIMITED');
  });
});
