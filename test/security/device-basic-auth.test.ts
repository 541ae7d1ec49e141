// Issue 15, "Device Basic authentication has no failure counting or rate limit": guesses at a device's password are
// counted and locked like SIP Digest's. The attacker's address (127.0.0.2) is locked out of the device, even with the
// right password; the device at its known address (127.0.0.1) keeps working; an address the device never used
// (127.0.0.3) meets the device-wide limit; a source spraying junk user names is locked everywhere. Over real HTTP.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nextNumber, signUp, startPhoneServer, type PhoneTestServer, type SignedUp } from '../phone/helpers.ts';
import { basicAuth, httpFrom } from './http-from.ts';

describe('device Basic authentication: counted and locked per device and source', () => {
  let s: PhoneTestServer;
  let user: SignedUp;
  before(async () => {
    s = await startPhoneServer({
      flags: { 'auth-account-address-failures': '4', 'auth-account-failures': '4', 'auth-address-failures': '6', 'auth-lockout': '120' },
    });
    user = await signUp(s, nextNumber());
  });
  after(() => s.close());

  const devices = (from: string, auth: string) => httpFrom(from, s.httpUrl, 'GET', '/v1/devices', { headers: { authorization: auth } });

  it('locks the guessing address out of the device; the device at its known address keeps working', async () => {
    const device = `${user.uuid}.1`;
    assert.equal((await devices('127.0.0.1', user.auth)).status, 200, 'the device authenticates once: 127.0.0.1 is known');
    for (let i = 0; i < 4; i++) assert.equal((await devices('127.0.0.2', basicAuth(device, `guess-${i}`))).status, 401);
    const refused = await devices('127.0.0.2', user.auth);
    assert.equal(refused.status, 429, 'the guessing address is refused, even with the right password');
    assert.equal((refused.body.error as Record<string, string>).code, 'AUTH_ERR_LOCKED');
    assert.ok(Number(refused.headers['retry-after']) > 0);
    assert.equal((await devices('127.0.0.1', user.auth)).status, 200, 'the device itself still gets in');
    assert.equal((await devices('127.0.0.3', user.auth)).status, 429, 'an address the device never used meets the device-wide limit');
  });

  it('locks a source that sprays junk names, across devices', async () => {
    for (let i = 0; i < 6; i++) assert.equal((await devices('127.0.0.4', basicAuth(`not-a-device-${i}`, 'x'))).status, 401);
    assert.equal((await devices('127.0.0.4', user.auth)).status, 429, 'the spraying source is locked for every device');
  });
});
