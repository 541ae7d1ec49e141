// An admin setting a phone account's password (PUT /users/{id}/password) replaces the account's own Digest
// credentials only: its devices keep theirs and still REGISTER as <account-id>.<device-id>.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { adminToken } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { call, nextNumber, signUp, startPhoneServer, type PhoneTestServer } from './helpers.ts';

describe('password change on a phone account', () => {
  let s: PhoneTestServer;
  let c: SipTestClient;
  before(async () => {
    s = await startPhoneServer();
    c = await SipTestClient.open('UDP', s.sipPort);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it('keeps the devices’ SIP credentials', async () => {
    const who = await signUp(s, nextNumber(), { password: 'device-password-1' });
    const admin = await adminToken(s);
    const r = await call(s, 'PUT', `/users/${who.uuid}/password`, { body: { password: 'account-password-2' }, headers: { authorization: `Bearer ${admin}` } });
    assert.equal(r.status, 204, JSON.stringify(r.body));
    const device = await register(c, { user: who.number, password: 'device-password-1', domain: 'example.test', authUser: `${who.uuid}.1` });
    assert.equal(device.status, 200, device.raw);
    const account = await register(c, { user: who.number, password: 'account-password-2', domain: 'example.test' });
    assert.equal(account.status, 200, account.raw);
  });
});
