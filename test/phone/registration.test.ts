// Registration, registration lock, devices and the rate limiters over real HTTP (docs/phone-registration.md,
// "Registration", "Registration lock", "Devices", "Rate limiters"), on the local provider (codes read back
// from its file) and a clock the test moves.
import assert from 'node:assert/strict';
import { createHash, hkdfSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { storeQuery } from '../helpers/server.ts';
import { basic, call, DAY, MINUTE, nextNumber, signUp, startPhoneServer, verifiedSession, type Json, type PhoneTestServer } from './helpers.ts';

const LOCK = 'a1'.repeat(32);
const OTHER_LOCK = 'b2'.repeat(32);

function register(s: PhoneTestServer, number: string, password: string, body: Json) {
  return call(s, 'POST', '/v1/registration', { auth: basic(number, password), body: { accountAttributes: {}, skipDeviceTransfer: true, ...body } });
}

describe('POST /v1/registration', () => {
  let s: PhoneTestServer;
  before(async () => {
    s = await startPhoneServer({ flags: { 'rate-limits': ['registration=100/1', 'verificationNumber=100/1', 'verificationAddress=1000/1'] } });
  });
  after(() => s.close());

  it('200: creates the account (named by its number in the default realm) and device 1', async () => {
    const number = nextNumber();
    const sessionId = await verifiedSession(s, number);
    const r = await register(s, number, 'first-password', {
      sessionId,
      accountAttributes: { name: 'cGhvbmU=', fetchesMessages: true, registrationId: 77, capabilities: { storage: true } },
      aciIdentityKey: 'BQ-aci-key',
      pniIdentityKey: 'BQ-pni-key',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body).sort(), ['number', 'pni', 'reregistration', 'storageCapable', 'uuid']);
    assert.match(r.body.uuid as string, /^[0-9a-f-]{36}$/);
    assert.match(r.body.pni as string, /^[0-9a-f-]{36}$/);
    assert.notEqual(r.body.uuid, r.body.pni);
    assert.equal(r.body.number, number);
    assert.equal(r.body.storageCapable, true);
    assert.equal(r.body.reregistration, false);
    const account = await s.accounts.findById(r.body.uuid as string);
    assert.equal(account!.aor, `${number}@example.test`);
    assert.equal(account!.passwordHash, null, 'no HTTP password: devices authenticate');
    const devices = await call(s, 'GET', '/v1/devices', { auth: basic(`${r.body.uuid}.1`, 'first-password') });
    assert.equal(devices.status, 200);
    assert.deepEqual((devices.body.devices as Json[]).map((d) => [d.id, d.name]), [[1, 'cGhvbmU=']]);
    // The session was spent.
    assert.equal((await register(s, number, 'first-password', { sessionId })).status, 401);
  });

  it('stores the device password as a salted HKDF hash, and Digest HA1s under <account-id>.<device-id>', async () => {
    const u = await signUp(s, nextNumber(), { password: 'hkdf-password' });
    const [row] = await storeQuery<{ auth_salt: string; auth_hash: string }>(s.dataDir, 'SELECT auth_salt, auth_hash FROM phone_devices WHERE account_id = ? AND device_id = 1', u.uuid);
    assert.match(row.auth_salt, /^[0-9a-f]{32}$/, '16 random bytes, hex');
    const expected = Buffer.from(hkdfSync('sha256', Buffer.from('hkdf-password'), Buffer.from(row.auth_salt), 'authtoken', 32)).toString('hex');
    assert.equal(row.auth_hash, expected);
    const creds = await storeQuery<{ algorithm: string; ha1: string }>(s.dataDir, 'SELECT algorithm, ha1 FROM sip_credentials WHERE auth_user = ? ORDER BY algorithm', `${u.uuid}.1`);
    assert.deepEqual(creds.map((c) => c.algorithm), ['MD5', 'SHA-256', 'SHA-512-256']);
    assert.equal(creds[0].ha1, createHash('md5').update(`${u.uuid}.1:example.test:hkdf-password`).digest('hex'));
    assert.ok(!JSON.stringify(await storeQuery(s.dataDir, 'SELECT * FROM phone_devices')).includes('hkdf-password'));
  });

  it('re-registers: same account id and PNI, linked devices removed, old credentials dead', async () => {
    const u = await signUp(s, nextNumber());
    const code = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth });
    const linked = await call(s, 'PUT', '/v1/devices/link', { auth: basic(u.number, 'linked-password'), body: { verificationCode: code.body.verificationCode } });
    assert.equal(linked.status, 200);
    const sessionId = await verifiedSession(s, u.number);
    const r = await register(s, u.number, 'new-password', { sessionId });
    assert.equal(r.status, 200);
    assert.equal(r.body.uuid, u.uuid);
    assert.equal(r.body.pni, u.pni);
    assert.equal(r.body.reregistration, true);
    const devices = await call(s, 'GET', '/v1/devices', { auth: basic(`${u.uuid}.1`, 'new-password') });
    assert.deepEqual((devices.body.devices as Json[]).map((d) => d.id), [1], 'the linked device is gone');
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: u.auth })).status, 401, 'the old primary password is dead');
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: basic(`${u.uuid}.2`, 'linked-password') })).status, 401);
    assert.equal(await s.credentials.findSipCredential(`${u.uuid}.2`, 'example.test', 'MD5'), null);
  });

  it('registers with the recovery password instead of a session', async () => {
    const u = await signUp(s, nextNumber(), { attributes: { recoveryPassword: 'cmVjb3Zlcnk=' } });
    assert.equal((await register(s, u.number, 'recovered-pw', { recoveryPassword: 'd3Jvbmc=' })).status, 401);
    const r = await register(s, u.number, 'recovered-pw', { recoveryPassword: 'cmVjb3Zlcnk=' });
    assert.equal(r.status, 200);
    assert.equal(r.body.reregistration, true);
  });

  it('400 without the Basic header, with a malformed one, or with a number other than the session’s', async () => {
    const number = nextNumber();
    const sessionId = await verifiedSession(s, number);
    const none = await call(s, 'POST', '/v1/registration', { body: { sessionId, accountAttributes: {} } });
    assert.equal(none.status, 400);
    assert.equal((none.body.error as Json).code, 'PHONE_ERR_AUTH_HEADER');
    assert.equal((await call(s, 'POST', '/v1/registration', { auth: 'Bearer abc', body: { sessionId, accountAttributes: {} } })).status, 400);
    assert.equal((await register(s, '12345', 'password-1', { sessionId })).status, 400, 'not E.164');
    const mismatch = await register(s, nextNumber(), 'password-1', { sessionId });
    assert.equal(mismatch.status, 400);
    assert.equal((mismatch.body.error as Json).code, 'PHONE_ERR_NUMBER_MISMATCH');
    assert.equal((await register(s, number, 'password-1', { sessionId })).status, 200, 'the session still works for its own number');
  });

  it('401 for an unknown or unverified session', async () => {
    const number = nextNumber();
    assert.equal((await register(s, number, 'password-1', { sessionId: 'A'.repeat(32) })).status, 401);
    assert.equal((await register(s, number, 'password-1', { sessionId: 'nonsense' })).status, 401);
    const created = await call(s, 'POST', '/v1/verification/session', { body: { number } });
    const r = await register(s, number, 'password-1', { sessionId: created.body.id });
    assert.equal(r.status, 401);
    assert.equal((r.body.error as Json).code, 'PHONE_ERR_NOT_VERIFIED');
  });

  it('409 when device transfer is available, unless skipDeviceTransfer', async () => {
    const u = await signUp(s, nextNumber(), { attributes: { capabilities: { transfer: true } } });
    const sessionId = await verifiedSession(s, u.number);
    const r = await register(s, u.number, 'password-2', { sessionId, skipDeviceTransfer: false });
    assert.equal(r.status, 409);
    assert.equal((r.body.error as Json).code, 'PHONE_ERR_DEVICE_TRANSFER');
    assert.equal((await register(s, u.number, 'password-2', { sessionId, skipDeviceTransfer: true })).status, 200);
  });

  it('409 when the number names an account not made by phone sign-up', async () => {
    const number = nextNumber();
    await s.accountService.create(`${number}@example.test`, 'an-http-password');
    const sessionId = await verifiedSession(s, number);
    const r = await register(s, number, 'password-3', { sessionId });
    assert.equal(r.status, 409);
    assert.equal((r.body.error as Json).code, 'PHONE_ERR_NUMBER_TAKEN');
  });

  it('422 for an invalid body: both or neither of sessionId and recoveryPassword, bad types, no attributes', async () => {
    const number = nextNumber();
    const sessionId = await verifiedSession(s, number);
    const auth = basic(number, 'password-4');
    const bodies: Json[] = [
      { sessionId, recoveryPassword: 'x', accountAttributes: {} },
      { accountAttributes: {} },
      { sessionId },
      { sessionId, accountAttributes: { registrationId: 'seven' } },
      { sessionId, accountAttributes: { registrationLock: 'short' } },
      { sessionId, accountAttributes: 'none' },
      { sessionId, accountAttributes: {}, skipDeviceTransfer: 'maybe' },
    ];
    for (const body of bodies) {
      const r = await call(s, 'POST', '/v1/registration', { auth, body });
      assert.equal(r.status, 422, JSON.stringify(body));
    }
    assert.equal((await call(s, 'POST', '/v1/registration', { auth, raw: '{nope' })).status, 400, 'bad JSON is 400');
  });
});

describe('registration lock', () => {
  let s: PhoneTestServer;
  before(async () => {
    s = await startPhoneServer({ flags: { 'rate-limits': ['registration=100/1', 'verificationNumber=100/1', 'verificationAddress=1000/1', 'pin=3/86400'] } });
  });
  after(() => s.close());

  it('PUT and DELETE /v1/accounts/registration_lock: 204; 401 without device credentials; 422 for a malformed token', async () => {
    const u = await signUp(s, nextNumber());
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: u.auth, body: { registrationLock: LOCK } })).status, 204);
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { body: { registrationLock: LOCK } })).status, 401);
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: basic(`${u.uuid}.1`, 'wrong'), body: { registrationLock: LOCK } })).status, 401);
    assert.equal((await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: u.auth, body: { registrationLock: 'xyz' } })).status, 422);
    assert.equal((await call(s, 'DELETE', '/v1/accounts/registration_lock', { auth: u.auth })).status, 204);
    // Cleared: registering again needs no PIN.
    const sessionId = await verifiedSession(s, u.number);
    assert.equal((await register(s, u.number, 'password-x', { sessionId })).status, 200);
  });

  it('REQUIRED within 7 days of a device being seen: 423 with timeRemaining and the devices locked; the right token passes', async () => {
    const u = await signUp(s, nextNumber());
    await call(s, 'PUT', '/v1/accounts/registration_lock', { auth: u.auth, body: { registrationLock: LOCK } });
    s.clock.advance(2 * DAY);
    await call(s, 'GET', '/v1/devices', { auth: u.auth }); // seen today
    const lastSeen = Math.floor(s.clock.now() / DAY) * DAY;
    const sessionId = await verifiedSession(s, u.number);
    const r = await register(s, u.number, 'attacker-password', { sessionId });
    assert.equal(r.status, 423);
    assert.equal(r.body.timeRemaining, 7 * DAY - (s.clock.now() - lastSeen));
    assert.equal((r.body.error as Json).code, 'PHONE_ERR_REGISTRATION_LOCK');
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: u.auth })).status, 401, 'the existing device is locked');
    assert.equal(await s.credentials.findSipCredential(`${u.uuid}.1`, 'example.test', 'MD5'), null, 'and so are its Digest credentials');
    const wrong = await register(s, u.number, 'attacker-password', { sessionId, accountAttributes: { registrationLock: OTHER_LOCK } });
    assert.equal(wrong.status, 423);
    const right = await register(s, u.number, 'owner-password', { sessionId, accountAttributes: { registrationLock: LOCK } });
    assert.equal(right.status, 200);
    assert.equal(right.body.uuid, u.uuid);
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: basic(`${u.uuid}.1`, 'owner-password') })).status, 200);
  });

  it('EXPIRED after 7 days without any device: ignored', async () => {
    const u = await signUp(s, nextNumber(), { attributes: { registrationLock: LOCK } });
    s.clock.advance(8 * DAY);
    const sessionId = await verifiedSession(s, u.number);
    const r = await register(s, u.number, 'someone-new', { sessionId });
    assert.equal(r.status, 200);
    assert.equal(r.body.reregistration, true);
  });

  it('the pin limiter: PIN attempts per number (here 3 a day), cleared by the right token; 429 with Retry-After', async () => {
    const u = await signUp(s, nextNumber(), { attributes: { registrationLock: LOCK } });
    const sessionId = await verifiedSession(s, u.number);
    const attempt = (pin: string, pw = 'attempt-password') => register(s, u.number, pw, { sessionId, accountAttributes: { registrationLock: pin } });
    assert.equal((await attempt(OTHER_LOCK)).status, 423);
    assert.equal((await attempt(OTHER_LOCK)).status, 423);
    // The right token clears the limiter (and re-registers, keeping the lock it presents).
    assert.equal((await attempt(LOCK, 'owner-pw-1')).status, 200);
    const next = await verifiedSession(s, u.number);
    const again = (pin: string) => register(s, u.number, 'x-password', { sessionId: next, accountAttributes: { registrationLock: pin } });
    for (let i = 0; i < 3; i++) assert.equal((await again(OTHER_LOCK)).status, 423, `attempt ${i + 1}`);
    const limited = await again(LOCK);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '86400', 'one PIN attempt back a day');
    // A missing token does not spend PIN attempts: still 423.
    assert.equal((await register(s, u.number, 'x-password', { sessionId: next })).status, 423);
  });
});

describe('devices', () => {
  let s: PhoneTestServer;
  before(async () => {
    s = await startPhoneServer({ flags: { 'rate-limits': ['registration=100/1', 'verificationNumber=100/1', 'verificationAddress=1000/1', 'allocateDevice=50/1', 'verifyDevice=50/1'] } });
  });
  after(() => s.close());

  async function link(u: { number: string; auth: string }, password: string, name?: string) {
    const code = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth });
    assert.equal(code.status, 200, JSON.stringify(code.body));
    return call(s, 'PUT', '/v1/devices/link', { auth: basic(u.number, password), body: { verificationCode: code.body.verificationCode, accountAttributes: { name: name ?? null } } });
  }

  it('Basic auth as <account-id>.<device-id>, or <account-id> alone for device 1', async () => {
    const u = await signUp(s, nextNumber(), { password: 'basic-password' });
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: basic(u.uuid, 'basic-password') })).status, 200);
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: basic(`${u.uuid}.1`, 'basic-password') })).status, 200);
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: basic(`${u.uuid}.2`, 'basic-password') })).status, 401);
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: basic(u.number, 'basic-password') })).status, 401);
    const none = await call(s, 'GET', '/v1/devices');
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate')!, /^Basic/);
  });

  it('links devices with a provisioning code, lists them, removes them', async () => {
    const u = await signUp(s, nextNumber());
    const r = await link(u, 'second-password', 'tablet');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { uuid: u.uuid, pni: u.pni, deviceId: 2 });
    const second = basic(`${u.uuid}.2`, 'second-password');
    const list = await call(s, 'GET', '/v1/devices', { auth: second });
    assert.deepEqual((list.body.devices as Json[]).map((d) => [d.id, d.name]), [[1, null], [2, 'tablet']]);
    assert.equal((await call(s, 'GET', '/v1/devices/provisioning/code', { auth: second })).status, 403, 'only the primary links');
    assert.equal((await call(s, 'DELETE', '/v1/devices/1', { auth: u.auth })).status, 403, 'the primary cannot be removed');
    const third = await link(u, 'third-password');
    assert.equal(third.body.deviceId, 3);
    assert.equal((await call(s, 'DELETE', '/v1/devices/3', { auth: second })).status, 403, 'a linked device removes only itself');
    assert.equal((await call(s, 'DELETE', '/v1/devices/2', { auth: second })).status, 204, 'itself');
    assert.equal((await call(s, 'DELETE', '/v1/devices/3', { auth: u.auth })).status, 204, 'the primary removes any');
    assert.equal((await call(s, 'DELETE', '/v1/devices/3', { auth: u.auth })).status, 404);
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: second })).status, 401);
    assert.equal((await link(u, 'fourth-password')).body.deviceId, 4, 'device ids are not reused');
  });

  it('at most 6 devices: 411', async () => {
    const u = await signUp(s, nextNumber());
    for (let i = 2; i <= 6; i++) assert.equal((await link(u, `password-${i}`)).status, 200);
    const full = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth });
    assert.equal(full.status, 411);
    assert.equal((full.body.error as Json).code, 'PHONE_ERR_DEVICE_LIMIT');
    // A code obtained before the account filled up is refused at link time too.
    const v = await signUp(s, nextNumber());
    for (let i = 2; i <= 5; i++) await link(v, `password-${i}`);
    const code1 = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: v.auth });
    const code2 = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: v.auth });
    assert.equal((await call(s, 'PUT', '/v1/devices/link', { auth: basic(v.number, 'pw-six-six'), body: { verificationCode: code1.body.verificationCode } })).status, 200);
    assert.equal((await call(s, 'PUT', '/v1/devices/link', { auth: basic(v.number, 'pw-seven-7'), body: { verificationCode: code2.body.verificationCode } })).status, 411);
  });

  it('link codes last 10 minutes, work once, and only for their own number', async () => {
    const u = await signUp(s, nextNumber());
    const code = (await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth })).body.verificationCode as string;
    const put = (c: string, number = u.number) => call(s, 'PUT', '/v1/devices/link', { auth: basic(number, 'linked-password'), body: { verificationCode: c } });
    assert.equal((await put(code, nextNumber())).status, 403, 'another number');
    assert.equal((await put(code.slice(0, -2) + 'xx')).status, 403, 'tampered');
    assert.equal((await put(code)).status, 200);
    assert.equal((await put(code)).status, 403, 'used');
    const late = (await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth })).body.verificationCode as string;
    s.clock.advance(10 * MINUTE);
    const r = await put(late);
    assert.equal(r.status, 403, 'expired');
    assert.equal((r.body.error as Json).code, 'PHONE_ERR_LINK_CODE');
    assert.equal((await call(s, 'PUT', '/v1/devices/link', { auth: basic(u.number, 'linked-password'), body: {} })).status, 422);
  });

  it('last-seen at day precision, written at most once a day', async () => {
    const u = await signUp(s, nextNumber());
    const lastSeen = async () => ((await call(s, 'GET', '/v1/devices', { auth: u.auth })).body.devices as Json[])[0].lastSeen as number;
    const today = Math.floor(s.clock.now() / DAY) * DAY;
    assert.equal(await lastSeen(), today);
    s.clock.advance(3 * 3_600_000);
    assert.equal(await lastSeen(), today);
    s.clock.advance(DAY);
    assert.equal(await lastSeen(), today + DAY);
    // Rewind the stored day behind the server's back: requests on the same day do not write again.
    await storeQuery(s.dataDir, 'UPDATE phone_devices SET last_seen = 0 WHERE account_id = ?', u.uuid);
    await lastSeen();
    assert.equal((await storeQuery<{ last_seen: number }>(s.dataDir, 'SELECT last_seen FROM phone_devices WHERE account_id = ?', u.uuid))[0].last_seen, 0);
  });

  it('the idle-expiry sweep: linked devices after 45 days, the account after 120 days without any device', async () => {
    const u = await signUp(s, nextNumber());
    await link(u, 'idle-linked-pw');
    s.clock.advance(44 * DAY);
    await call(s, 'GET', '/v1/devices', { auth: u.auth }); // the primary stays active
    await s.phone.sweep();
    assert.equal(((await call(s, 'GET', '/v1/devices', { auth: u.auth })).body.devices as Json[]).length, 2);
    s.clock.advance(2 * DAY);
    await s.phone.sweep();
    assert.deepEqual(((await call(s, 'GET', '/v1/devices', { auth: u.auth })).body.devices as Json[]).map((d) => d.id), [1], 'the linked device expired');
    s.clock.advance(121 * DAY);
    const r = await s.phone.sweep();
    assert.ok(r.accounts >= 1);
    assert.equal(await s.accounts.findById(u.uuid), null, 'the whole account expired');
    assert.equal((await call(s, 'GET', '/v1/devices', { auth: u.auth })).status, 401);
  });

  it('the idle-expiry sweep: an account whose primary was idle 180 days goes, even with an active linked device', async () => {
    const u = await signUp(s, nextNumber());
    await link(u, 'active-linked-pw');
    const linked = basic(`${u.uuid}.2`, 'active-linked-pw');
    for (let d = 0; d < 181; d += 30) {
      s.clock.advance(Math.min(30, 181 - d) * DAY);
      await call(s, 'GET', '/v1/devices', { auth: linked });
    }
    await s.phone.sweep();
    assert.equal(await s.accounts.findById(u.uuid), null);
  });
});

describe('rate limiters of registration and devices', () => {
  it('registration (6 / 30 s per number), allocateDevice and verifyDevice (6 / 2 min per account): 429 with Retry-After', async () => {
    const s = await startPhoneServer({ flags: { 'rate-limits': ['verificationNumber=100/1', 'verificationAddress=1000/1'] } });
    try {
      const u = await signUp(s, nextNumber());
      for (let i = 0; i < 5; i++) assert.equal((await register(s, u.number, 'password-r', { sessionId: 'A'.repeat(32) })).status, 401);
      const r = await register(s, u.number, 'password-r', { sessionId: 'A'.repeat(32) });
      assert.equal(r.status, 429, 'the sign-up spent one, five more spent the rest');
      assert.equal(r.headers.get('retry-after'), '30');

      const codes: string[] = [];
      for (let i = 0; i < 6; i++) {
        const c = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth });
        assert.equal(c.status, 200);
        codes.push(c.body.verificationCode as string);
      }
      const alloc = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth });
      assert.equal(alloc.status, 429);
      assert.equal(alloc.headers.get('retry-after'), '120');

      // Link attempts with the account's codes but another number are refused (403), each spending a permit.
      for (let i = 0; i < 6; i++) {
        assert.equal((await call(s, 'PUT', '/v1/devices/link', { auth: basic(nextNumber(), 'pw-linking'), body: { verificationCode: codes[i] } })).status, 403);
      }
      const verify = await call(s, 'PUT', '/v1/devices/link', { auth: basic(u.number, 'pw-linking'), body: { verificationCode: codes[5] } });
      assert.equal(verify.status, 429);
      assert.equal(verify.headers.get('retry-after'), '120');
      s.clock.advance(2 * MINUTE);
      assert.equal((await call(s, 'PUT', '/v1/devices/link', { auth: basic(u.number, 'pw-linking'), body: { verificationCode: codes[5] } })).status, 200);
    } finally {
      await s.close();
    }
  });
});
