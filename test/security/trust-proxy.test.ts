// Issue 15, --http-trust-proxy: X-Forwarded-For is believed only from the configured proxies. A client that is not
// one cannot escape its per-address lockout by rotating the header; behind a trusted proxy each forwarded client is
// counted on its own. Over real HTTP from two local addresses: 127.0.0.1 (a client) and 127.0.0.2 (the proxy).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { httpFrom } from './http-from.ts';

const D = 'example.test';
const USERS = { [`alice@${D}`]: 'alice-secret-1', [`bob@${D}`]: 'bob-secret-1', [`carol@${D}`]: 'carol-secret-1' };

describe('X-Forwarded-For only from trusted proxies', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({
      flags: {
        'http-trust-proxy': ['127.0.0.2'],
        'auth-address-failures': '3',
        'auth-account-failures': '100',
        'auth-account-address-failures': '100',
        'auth-lockout': '120',
        'login-rate-limit': '0',
        'argon2-memory': '1024',
        'argon2-passes': '1',
      },
      users: USERS,
    });
  });
  after(() => s.close());

  const login = (from: string, user: string, password: string, xff: string) =>
    httpFrom(from, s.httpUrl, 'POST', '/auth/login', { body: { username: `${user}@${D}`, password }, headers: { 'x-forwarded-for': xff } });

  it('ignores the header from an untrusted client: rotating it does not escape the address lockout', async () => {
    let n = 0;
    const xff = () => `203.0.113.${++n}`;
    for (const user of ['alice', 'bob', 'carol']) assert.equal((await login('127.0.0.1', user, 'guess', xff())).status, 401);
    const r = await login('127.0.0.1', 'alice', 'alice-secret-1', xff());
    assert.equal(r.status, 429, 'the peer address is locked, whatever the header says');
    assert.equal((r.body.error as Record<string, string>).code, 'AUTH_ERR_LOCKED');
  });

  it('believes it from a trusted proxy: each forwarded client is counted on its own', async () => {
    for (let i = 1; i <= 6; i++) assert.equal((await login('127.0.0.2', 'bob', 'guess', `198.51.100.${i}`)).status, 401, `client ${i} behind the proxy`);
    for (let i = 0; i < 3; i++) await login('127.0.0.2', 'carol', 'guess', '198.51.100.99');
    assert.equal((await login('127.0.0.2', 'carol', 'carol-secret-1', '198.51.100.99')).status, 429, 'the forwarded client that guessed is locked');
    assert.equal((await login('127.0.0.2', 'carol', 'carol-secret-1', '198.51.100.100')).status, 200, 'another client behind the same proxy is not');
  });
});
