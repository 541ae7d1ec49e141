// End to end: two numbers sign up over HTTP (on the default local provider: codes read back from its file),
// their devices REGISTER over real SIP (Digest as <account-id>.<device-id>, and Bearer with a token issued to a
// device) and appear under <e164>@<default realm>; then one number, locked, refuses a new registration without
// the PIN (423, its devices locked out of SIP too) and accepts it once 7 days pass without its devices, on a
// clock the test moves.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { adminToken, storeQuery } from '../helpers/server.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';
import { basic, call, DAY, localEntries, nextNumber, signUp, startPhoneServer, verifiedSession, type Json, type PhoneTestServer, type SignedUp } from './helpers.ts';

const REALM = 'example.test';
const PIN = 'c3'.repeat(32);

async function bearerRegister(c: SipTestClient, number: string, token: string, cseq = 1) {
  return c.request(
    buildRequest(c, {
      method: 'REGISTER',
      uri: `sip:${REALM}`,
      from: `<sip:${number}@${REALM}>`,
      to: `<sip:${number}@${REALM}>`,
      cseq,
      contact: `<sip:${number}@127.0.0.1:${c.localPort};transport=udp>`,
      headers: [['Authorization', `Bearer ${token}`]],
    }),
  );
}

describe('phone sign-up, devices on SIP, registration lock', () => {
  let s: PhoneTestServer;
  let alice: SignedUp;
  let bob: SignedUp;
  let sipA: SipTestClient;
  let sipB: SipTestClient;
  let sipB2: SipTestClient;
  before(async () => {
    s = await startPhoneServer();
    sipA = await SipTestClient.open('UDP', s.sipPort);
    sipB = await SipTestClient.open('UDP', s.sipPort);
    sipB2 = await SipTestClient.open('TCP', s.sipPort);
  });
  after(async () => {
    for (const c of [sipA, sipB, sipB2]) c.close();
    await s.close();
  });

  it('documents the phone endpoints in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${s.httpUrl}/docs/json`)).json()) as { paths: Record<string, unknown> };
    for (const p of [
      '/v1/verification/session',
      '/v1/verification/session/{id}',
      '/v1/verification/session/{id}/code',
      '/v1/registration',
      '/v1/devices',
      '/v1/devices/provisioning/code',
      '/v1/devices/link',
      '/v1/devices/{deviceId}',
      '/v1/devices/token',
      '/v1/accounts/registration_lock',
    ]) {
      assert.ok(doc.paths[p], `OpenAPI lacks ${p}`);
    }
  });

  it('the default (local) provider writes the codes to its file', async () => {
    const number = nextNumber();
    await verifiedSession(s, number);
    const entries = localEntries(path.join(s.dataDir, 'verification-codes.log')).filter((e) => e.number === number);
    assert.equal(entries.length, 1);
    assert.equal(entries[0].type, 'sms');
    assert.match(entries[0].code as string, /^[0-9]{6}$/);
  });

  it('signs up two numbers', async () => {
    alice = await signUp(s, nextNumber(), { password: 'alice-device-password' });
    bob = await signUp(s, nextNumber(), { password: 'bob-device-password' });
    assert.notEqual(alice.uuid, bob.uuid);
  });

  it('registers a device over SIP with Digest as <account-id>.<device-id>; the binding is under the number’s AOR', async () => {
    const r = await register(sipA, { user: alice.number, password: alice.password, domain: REALM, authUser: `${alice.uuid}.1`, expires: 600 });
    assert.equal(r.status, 200, r.raw);
    const bindings = (await s.location.lookup(`${alice.number}@${REALM}`));
    assert.equal(bindings.length, 1);
    assert.equal(bindings[0].accountId, alice.uuid);
    // Another number's device may not register Alice's AOR.
    const other = await register(sipB, { user: alice.number, password: bob.password, domain: REALM, authUser: `${bob.uuid}.1` });
    assert.equal(other.status, 403);
    const wrong = await register(sipB, { user: alice.number, password: 'not-the-password', domain: REALM, authUser: `${alice.uuid}.1` });
    assert.equal(wrong.status, 401);
  });

  it('registers a device over SIP with a Bearer token issued to it; a linked device with Digest beside it', async () => {
    const t = await call(s, 'POST', '/v1/devices/token', { auth: bob.auth });
    assert.equal(t.status, 200);
    assert.equal(t.body.token_type, 'Bearer');
    const r = await bearerRegister(sipB, bob.number, t.body.access_token as string);
    assert.equal(r.status, 200, r.raw);

    const code = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: bob.auth });
    const linked = await call(s, 'PUT', '/v1/devices/link', { auth: basic(bob.number, 'bob-tablet-password'), body: { verificationCode: code.body.verificationCode } });
    assert.equal(linked.body.deviceId, 2);
    const r2 = await register(sipB2, { user: bob.number, password: 'bob-tablet-password', domain: REALM, authUser: `${bob.uuid}.2` });
    assert.equal(r2.status, 200, r2.raw);
    assert.equal((await s.location.lookup(`${bob.number}@${REALM}`)).length, 2);

    // What the HTTP API shows: both numbers' AORs, with their bindings.
    const admin = await adminToken(s);
    const list = await call(s, 'GET', `/v1/registrations?realm=${REALM}`, { headers: { authorization: `Bearer ${admin}` } });
    const aors = Object.fromEntries((list.body.registrations as Json[]).map((x) => [x.aor, (x.bindings as Json[]).length]));
    assert.deepEqual(aors, { [`${alice.number}@${REALM}`]: 1, [`${bob.number}@${REALM}`]: 2 });

    // A token dies with its device.
    const t2 = await call(s, 'POST', '/v1/devices/token', { auth: basic(`${bob.uuid}.2`, 'bob-tablet-password') });
    assert.equal((await bearerRegister(sipB2, bob.number, t2.body.access_token as string, 10)).status, 200);
    assert.equal((await call(s, 'DELETE', '/v1/devices/2', { auth: bob.auth })).status, 204);
    const revoked = await bearerRegister(sipB2, bob.number, t2.body.access_token as string, 11);
    assert.equal(revoked.status, 401);
    assert.match(revoked.header('WWW-Authenticate')!, /invalid_token/);
    const digest = await register(sipB2, { user: bob.number, password: 'bob-tablet-password', domain: REALM, authUser: `${bob.uuid}.2`, cseq: 20 });
    assert.equal(digest.status, 401);
  });

  it('counts a SIP REGISTER as the device being seen (day precision)', async () => {
    s.clock.advance(DAY);
    const r = await register(sipA, { user: alice.number, password: alice.password, domain: REALM, authUser: `${alice.uuid}.1`, expires: 600 });
    assert.equal(r.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the last-seen write is not awaited by REGISTER
    const [row] = await storeQuery<{ last_seen: number }>(s.dataDir, 'SELECT last_seen FROM phone_devices WHERE account_id = ? AND device_id = 1', alice.uuid);
    assert.equal(row.last_seen, Math.floor(s.clock.now() / DAY) * DAY);
  });

  it('a locked number refuses a new registration without the PIN (423) and locks its devices out of SIP', async () => {
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: alice.auth, body: { registrationLock: PIN } })).status, 204);
    const bobBindings = (await s.location.lookup(`${bob.number}@${REALM}`)).length;
    const sessionId = await verifiedSession(s, alice.number);
    const r = await call(s, 'POST', '/v1/registration', {
      auth: basic(alice.number, 'new-phone-password'),
      body: { sessionId, accountAttributes: {}, skipDeviceTransfer: true },
    });
    assert.equal(r.status, 423);
    const remaining = r.body.timeRemaining as number;
    assert.ok(remaining > 6 * DAY && remaining <= 7 * DAY, String(remaining));
    // The existing device is locked: its binding is gone and it cannot register again.
    assert.equal((await s.location.lookup(`${alice.number}@${REALM}`)).length, 0);
    const again = await register(sipA, { user: alice.number, password: alice.password, domain: REALM, authUser: `${alice.uuid}.1`, cseq: 50 });
    assert.equal(again.status, 401);
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: alice.auth })).status, 401);
    // Bob is untouched.
    assert.equal((await s.location.lookup(`${bob.number}@${REALM}`)).length, bobBindings);
  });

  it('after 7 days without any of its devices, the lock has expired: the same registration is accepted', async () => {
    s.clock.advance(6 * DAY);
    const attempt = async () =>
      call(s, 'POST', '/v1/registration', {
        auth: basic(alice.number, 'new-phone-password'),
        body: { sessionId: await verifiedSession(s, alice.number), accountAttributes: {}, skipDeviceTransfer: true },
      });
    const early = await attempt();
    assert.equal(early.status, 423, 'still within 7 days of the last SIP REGISTER');
    s.clock.advance(DAY + 1);
    const r = await attempt();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.uuid, alice.uuid, 'the same account');
    assert.equal(r.body.reregistration, true);
    const sip = await register(sipA, { user: alice.number, password: 'new-phone-password', domain: REALM, authUser: `${alice.uuid}.1`, cseq: 60 });
    assert.equal(sip.status, 200, sip.raw);
    assert.equal((await s.location.lookup(`${alice.number}@${REALM}`)).length, 1);
  });

  it('re-registering a number disconnects its old devices: their bindings go with them', async () => {
    assert.ok((await s.location.lookup(`${bob.number}@${REALM}`)).length > 0);
    const r = await call(s, 'POST', '/v1/registration', {
      auth: basic(bob.number, 'bob-new-phone-pw'),
      body: { sessionId: await verifiedSession(s, bob.number), accountAttributes: {}, skipDeviceTransfer: true },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.reregistration, true);
    assert.equal((await s.location.lookup(`${bob.number}@${REALM}`)).length, 0);
    const old = await register(sipB, { user: bob.number, password: bob.password, domain: REALM, authUser: `${bob.uuid}.1`, cseq: 70 });
    assert.equal(old.status, 401);
  });
});
