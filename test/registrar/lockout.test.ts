// Brute-force protection: wrong credentials are counted per account and per source address; past the limit
// the account (or address) gets 403 with Retry-After until the lockout ends, even with the right password;
// trusted networks are exempt from the address lockout; other accounts are unaffected.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type Flags } from '../helpers/server.ts';

const USERS = { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw', 'carol@example.test': 'carol-pw' };
const wrong = (user: string) => ({ user, password: 'guess', domain: 'example.test' });
const right = (user: string) => ({ user, password: `${user}-pw`, domain: 'example.test' });

async function withServer(flags: Flags, fn: (c: SipTestClient, metrics: () => Promise<string>) => Promise<void>) {
  const s = await startTestServer({ flags, users: USERS });
  const c = await SipTestClient.open('UDP', s.sipPort);
  try {
    await fn(c, () => s.metrics.registry.metrics());
  } finally {
    c.close();
    await s.close();
  }
}

describe('authentication lockout', () => {
  it('locks an account after repeated failures, for the lockout duration only', async () => {
    await withServer({ 'auth-account-failures': '3', 'auth-address-failures': '100', 'auth-lockout': '2' }, async (c, metrics) => {
      for (let i = 0; i < 3; i++) assert.equal((await register(c, wrong('alice'))).status, 401);
      const locked = await register(c, right('alice'));
      assert.equal(locked.status, 403, 'the right password does not help while locked');
      assert.match(locked.reason, /too many failed/);
      assert.ok(Number(locked.header('Retry-After')) >= 1);
      assert.equal((await register(c, right('bob'))).status, 200, 'other accounts from the same address are fine');
      assert.match(await metrics(), /switchboard_auth_failures_total\{reason="locked"\} [1-9]/);
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal((await register(c, right('alice'))).status, 200, 'the lockout expired');
    });
  });

  it('locks a source address that fails across many accounts, unless it is trusted', async () => {
    await withServer({ 'auth-account-failures': '100', 'auth-address-failures': '4', 'auth-lockout': '60' }, async (c) => {
      for (const u of ['alice', 'bob', 'carol', 'nobody']) assert.equal((await register(c, wrong(u))).status, 401);
      const r = await register(c, right('carol'));
      assert.equal(r.status, 403);
      assert.ok(r.header('Retry-After'));
    });
    await withServer({ 'auth-account-failures': '100', 'auth-address-failures': '4', 'auth-lockout': '60', 'auth-trusted-networks': ['127.0.0.0/8'] }, async (c) => {
      for (const u of ['alice', 'bob', 'carol', 'nobody', 'alice']) assert.equal((await register(c, wrong(u))).status, 401);
      assert.equal((await register(c, right('carol'))).status, 200, 'a trusted address is never locked');
    });
  });
});
