// Issue 15, "Account lockout lets anyone lock out anyone": an attacker guessing an account's password from one
// address gets that address locked out of the account (even with the right password), while the owner, from an
// address the account has authenticated from before, still registers over SIP and logs in over HTTP. A stranger's
// address meets the account-wide limit. Three parties over real sockets: 127.0.0.1 (the owner), 127.0.0.2 (the
// attacker), 127.0.0.3 (someone new).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sourceOf } from '../../src/identity/lockout.ts';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { httpFrom } from './http-from.ts';

const D = 'example.test';
const USERS = { [`alice@${D}`]: 'alice-secret-1', [`bob@${D}`]: 'bob-secret-1', [`carol@${D}`]: 'carol-secret-1' };
const FLAGS = {
  'auth-account-address-failures': '5',
  'auth-account-failures': '5',
  'auth-address-failures': '100',
  'auth-lockout': '120',
  'login-rate-limit': '0',
  'argon2-memory': '1024',
  'argon2-passes': '1',
};

describe('lockout: the attacker is locked out, the owner is not', () => {
  let s: TestServer;
  const clients: SipTestClient[] = [];
  const open = async (bind: string) => {
    const c = await SipTestClient.open('UDP', s.sipPort, '127.0.0.1', bind);
    clients.push(c);
    return c;
  };
  before(async () => {
    s = await startTestServer({ flags: FLAGS, users: USERS });
  });
  after(async () => {
    for (const c of clients) c.close();
    await s.close();
  });

  it('SIP Digest: guesses from one address lock that address out; the owner at a known address registers', async () => {
    const owner = await open('127.0.0.1');
    const attacker = await open('127.0.0.2');
    const stranger = await open('127.0.0.3');
    assert.equal((await register(owner, { user: 'alice', password: 'alice-secret-1', domain: D })).status, 200, 'the owner registers once: 127.0.0.1 is known');

    for (let i = 0; i < 5; i++) assert.equal((await register(attacker, { user: 'alice', password: `guess-${i}`, domain: D })).status, 401);
    const refused = await register(attacker, { user: 'alice', password: 'alice-secret-1', domain: D });
    assert.equal(refused.status, 403, 'the attacking address stays refused, even with the right password');
    assert.ok(Number(refused.header('Retry-After')) > 0);

    assert.equal((await register(owner, { user: 'alice', password: 'alice-secret-1', domain: D })).status, 200, 'the owner still registers');
    assert.equal((await register(attacker, { user: 'bob', password: 'bob-secret-1', domain: D })).status, 200, 'the attacking address is locked out of alice only');
    assert.equal((await register(stranger, { user: 'alice', password: 'alice-secret-1', domain: D })).status, 403, 'an address alice never used meets the account-wide limit');
  });

  it('HTTP login: the same rule, counted together with SIP', async () => {
    const login = (from: string, password: string) => httpFrom(from, s.httpUrl, 'POST', '/auth/login', { body: { username: `carol@${D}`, password } });
    assert.equal((await login('127.0.0.1', 'carol-secret-1')).status, 200, 'the owner logs in once: 127.0.0.1 is known');
    for (let i = 0; i < 5; i++) assert.equal((await login('127.0.0.2', `guess-${i}`)).status, 401);
    const refused = await login('127.0.0.2', 'carol-secret-1');
    assert.equal(refused.status, 429, 'the attacking address stays refused, even with the right password');
    assert.equal((refused.body.error as Record<string, string>).code, 'AUTH_ERR_LOCKED');
    assert.ok(Number(refused.headers['retry-after']) > 0);
    assert.equal((await login('127.0.0.1', 'carol-secret-1')).status, 200, 'the owner still logs in');
    // A SIP phone at the owner's address is known too (HTTP and SIP share the account's known addresses).
    const phone = await open('127.0.0.1');
    assert.equal((await register(phone, { user: 'carol', password: 'carol-secret-1', domain: D })).status, 200);
    assert.equal((await login('127.0.0.3', 'carol-secret-1')).status, 429, 'a stranger meets the account-wide limit');
  });

  it('IPv6 sources count per /64', () => {
    assert.equal(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceOf('2001:0db8:0001:0002:ffff:1:2:3'), '2001:db8:1:2::/64');
    assert.equal(sourceOf('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(sourceOf('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(sourceOf('192.0.2.1'), '192.0.2.1');
    assert.equal(sourceOf('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });
});
