// Attack: a device token (POST /v1/devices/token, claim `dev`) used over HTTP as if it were the account's own login.
// Before the fix the HTTP layer ignored `dev`: a linked device (or whoever took its token or password) could mint
// API keys, delete the whole account, clear the registration lock; and a removed device's token went on working
// over HTTP for the rest of its life. Now the account's own actions need the primary device or a password login
// (403 otherwise), and a device token is checked against its device as it is accepted (removed: 401).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { basic, call, nextNumber, signUp, startPhoneServer, type PhoneTestServer, type SignedUp } from '../phone/helpers.ts';

const LOCK = 'ab'.repeat(32);
const bearer = (t: string) => `Bearer ${t}`;

describe('device tokens over HTTP: linked devices do not act for the account; removed devices are refused', () => {
  let s: PhoneTestServer;
  let owner: SignedUp;
  let primaryToken: string;
  let linkedToken: string;
  const linkedAuth = () => basic(`${owner.uuid}.2`, 'tablet-password');
  before(async () => {
    s = await startPhoneServer();
    owner = await signUp(s, nextNumber(), { password: 'phone-password' });
    const code = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: owner.auth });
    const linked = await call(s, 'PUT', '/v1/devices/link', { auth: basic(owner.number, 'tablet-password'), body: { verificationCode: code.body.verificationCode } });
    assert.equal(linked.body.deviceId, 2, JSON.stringify(linked.body));
    primaryToken = (await call(s, 'POST', '/v1/devices/token', { auth: owner.auth })).body.access_token as string;
    linkedToken = (await call(s, 'POST', '/v1/devices/token', { auth: linkedAuth() })).body.access_token as string;
    assert.ok(primaryToken && linkedToken);
  });
  after(() => s.close());

  it('a linked device’s token cannot mint an API key, change the password or delete the account (403)', async () => {
    // It still authenticates: reading its own account is fine.
    assert.equal((await call(s, 'GET', `/users/${owner.uuid}`, { auth: bearer(linkedToken) })).status, 200);
    const key = await call(s, 'POST', `/users/${owner.uuid}/api-keys`, { auth: bearer(linkedToken), body: { name: 'backdoor', permissions: ['presence.read'] } });
    assert.equal(key.status, 403, JSON.stringify(key.body));
    assert.match(JSON.stringify(key.body), /primary device or a password login/);
    assert.equal((await call(s, 'GET', `/users/${owner.uuid}/api-keys`, { auth: bearer(linkedToken) })).status, 403);
    assert.equal((await call(s, 'PUT', `/users/${owner.uuid}/password`, { auth: bearer(linkedToken), body: { password: 'taken-over-1' } })).status, 403);
    assert.equal((await call(s, 'DELETE', `/users/${owner.uuid}`, { auth: bearer(linkedToken) })).status, 403);
    assert.equal((await call(s, 'GET', `/users/${owner.uuid}`, { auth: bearer(primaryToken) })).status, 200, 'the account still exists');
    // The primary device may.
    const mine = await call(s, 'POST', `/users/${owner.uuid}/api-keys`, { auth: bearer(primaryToken), body: { name: 'mine', permissions: ['presence.read'] } });
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
  });

  it('a linked device cannot set or clear the registration lock (403); the primary can', async () => {
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: owner.auth, body: { registrationLock: LOCK } })).status, 204);
    const cleared = await call(s, 'DELETE', '/v1/accounts/registration_lock', { auth: linkedAuth() });
    assert.equal(cleared.status, 403, JSON.stringify(cleared.body));
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: linkedAuth(), body: { registrationLock: 'cd'.repeat(32) } })).status, 403);
    assert.equal((await call(s, 'DELETE', '/v1/accounts/registration_lock', { auth: owner.auth })).status, 204);
  });

  it('a removed device’s token is refused over HTTP at once (401)', async () => {
    assert.equal((await call(s, 'GET', `/users/${owner.uuid}/devices`, { auth: bearer(linkedToken) })).status, 200);
    assert.equal((await call(s, 'DELETE', '/v1/devices/2', { auth: owner.auth })).status, 204);
    const r = await call(s, 'GET', `/users/${owner.uuid}`, { auth: bearer(linkedToken) });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.match(JSON.stringify(r.body), /revoked/);
    assert.equal((await call(s, 'GET', `/users/${owner.uuid}/devices`, { auth: bearer(linkedToken) })).status, 401);
    // The primary's token is untouched.
    assert.equal((await call(s, 'GET', `/users/${owner.uuid}`, { auth: bearer(primaryToken) })).status, 200);
  });
});
