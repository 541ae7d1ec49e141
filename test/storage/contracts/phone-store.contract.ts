// The PhoneStore contract (src/storage/ports.ts), run against every adapter: phone accounts named by their number,
// devices with their Digest credentials under "<account-id>.<device-id>", re-registration, linking, locking, idle
// expiry, and what must hold when several nodes act on the same number or account at once.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestCredentialsFor } from '../../../src/identity/accounts.ts';
import { isSwitchboardError } from '../../../src/errors.ts';
import { computeHa1, DIGEST_ALGORITHMS } from '../../../src/sip/digest.ts';
import type { Account, NewPhoneDevice, PhoneRegistration, PhoneRegistrationResult, PhoneStore, SaltedHash } from '../../../src/storage/ports.ts';
import { useStores, type KnownDrift, type OpenStores, type Stores } from './stores.ts';

const REALM = 'example.test';
const DAY = 86_400_000;
const T0 = 1_700_000_000_000;

let seq = 0;
const nextNumber = () => `+1555${String(1_000_000 + ++seq).slice(1)}`;
const salted = (tag: string): SaltedHash => ({ salt: `salt-${tag}`, hash: `hash-${tag}` });

function device(over: Partial<NewPhoneDevice> = {}): NewPhoneDevice {
  return {
    name: 'phone',
    auth: salted('device'),
    capabilities: { storage: true, transfer: false },
    fetchesMessages: true,
    registrationId: 4242,
    createdAt: T0,
    lastSeen: T0 - (T0 % DAY),
    ...over,
  };
}

/** Device credentials for `password`, in the realm given (the store fills in the account's realm for ''). */
const credentialsFor = (password: string, realm = REALM) => (authUser: string) => digestCredentialsFor(authUser, realm, password).map((c) => ({ ...c, realm }));

function registration(number: string, over: Partial<PhoneRegistration> = {}): PhoneRegistration {
  return {
    number,
    realm: REALM,
    expectedAccountId: null,
    primary: device(),
    credentials: credentialsFor('device-password-1'),
    registrationLock: salted('lock'),
    recoveryPassword: salted('recovery'),
    identityKeys: { aciIdentityKey: 'BXk1', pniSignedPreKey: { keyId: 7, publicKey: 'BQ2', signature: 'c2ln' } },
    attributes: { fetchesMessages: true, name: 'Ünïcode ✓ \u0000 nul', nested: { list: [1, 'two', null, false] } },
    now: T0,
    ...over,
  };
}

async function created(phone: PhoneStore, number: string, over: Partial<PhoneRegistration> = {}) {
  const r = await phone.register(registration(number, over));
  assert.equal(r.outcome, 'created');
  if (r.outcome !== 'created') throw new Error('unreachable');
  return r.account;
}

/** Whether the auth user has an HA1 for `password` (MD5, in REALM). */
async function credentialFor(s: Stores, authUser: string, password?: string): Promise<boolean> {
  const found = await s.accounts.findSipCredential(authUser, REALM, 'MD5');
  if (!found) return false;
  return password === undefined || found.credential.ha1 === computeHa1('MD5', authUser, REALM, password);
}

const byId = <T extends { accountId: string }>(xs: T[]) => [...xs].sort((a, b) => (a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : 0));

export function phoneStoreContract(open: OpenStores, drift: KnownDrift = {}): void {
  describe('PhoneStore contract', () => {
    const env = useStores(open);
    const todo = (id: string) => ({ todo: drift[id] });

    it('creates the account, its phone row and its primary device with credentials, in one registration', async () => {
      const s = env();
      const number = nextNumber();
      const r = await s.phone.register(registration(number));
      assert.equal(r.outcome, 'created');
      if (r.outcome !== 'created') return;
      assert.deepEqual(r.removedAuthUsers, []);
      const a = r.account;
      assert.match(a.accountId, /^[0-9a-f-]{36}$/);
      assert.match(a.pni, /^[0-9a-f-]{36}$/);
      assert.notEqual(a.pni, a.accountId);
      assert.deepEqual(
        { ...a, accountId: '', pni: '' },
        {
          accountId: '', pni: '', number, realm: REALM, disabled: false, registrationLock: salted('lock'), recoveryPassword: salted('recovery'),
          identityKeys: registration(number).identityKeys, attributes: registration(number).attributes, createdAt: T0,
          devices: [{ ...device(), accountId: a.accountId, deviceId: 1, locked: false }],
        },
      );
      assert.deepEqual(await s.phone.findByNumber(number, REALM), a);
      assert.deepEqual(await s.phone.findById(a.accountId), a);
      // The accounts row: named by the number, no password of its own.
      const acc = await s.accounts.findById(a.accountId);
      assert.deepEqual([acc?.username, acc?.realm, acc?.aor, acc?.passwordHash, acc?.roles, acc?.disabled], [number, REALM, `${number}@${REALM}`, null, [], false]);
      for (const algorithm of DIGEST_ALGORITHMS) {
        const found = await s.accounts.findSipCredential(`${a.accountId}.1`, REALM, algorithm);
        assert.equal(found?.credential.ha1, computeHa1(algorithm, `${a.accountId}.1`, REALM, 'device-password-1'), algorithm);
        assert.deepEqual(found?.aors, [`${number}@${REALM}`]);
      }
      assert.equal(await s.phone.findByNumber(number, 'other.test'), null);
      assert.equal(await s.phone.findByNumber(nextNumber(), REALM), null);
      assert.equal(await s.phone.findById('00000000-0000-0000-0000-000000000000'), null);
    });

    it('keeps null locks and empty documents as such', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber(), {
        registrationLock: null, recoveryPassword: null, identityKeys: {}, attributes: {},
        primary: device({ name: null, registrationId: null, capabilities: {}, fetchesMessages: false }),
      });
      const got = (await s.phone.findById(a.accountId))!;
      assert.deepEqual([got.registrationLock, got.recoveryPassword, got.identityKeys, got.attributes], [null, null, {}, {}]);
      assert.deepEqual(got.devices[0], { ...device({ name: null, registrationId: null, capabilities: {}, fetchesMessages: false }), accountId: a.accountId, deviceId: 1, locked: false });
    });

    it('finds one device with its account’s number, realm and disabled flag', async () => {
      const s = env();
      const number = nextNumber();
      const a = await created(s.phone, number);
      const found = await s.phone.findDevice(a.accountId, 1);
      assert.deepEqual(found, { device: a.devices[0], disabled: false, number, realm: REALM });
      assert.equal(await s.phone.findDevice(a.accountId, 2), null);
      assert.equal(await s.phone.findDevice('00000000-0000-0000-0000-000000000000', 1), null);
      await s.accounts.update(a.accountId, { disabled: true });
      assert.equal((await s.phone.findDevice(a.accountId, 1))?.disabled, true);
      assert.equal((await s.phone.findById(a.accountId))?.disabled, true);
    });

    it('refuses a number held by a non-phone account (taken) and a stale expectation (conflict), changing nothing', async () => {
      const s = env();
      const plain = nextNumber();
      await s.accounts.create({ username: plain, realm: REALM, passwordHash: null, credentials: [] });
      assert.deepEqual(await s.phone.register(registration(plain)), { outcome: 'taken' });
      const someId = (await s.accounts.findByName(plain, REALM))!.id;
      assert.deepEqual(await s.phone.register(registration(plain, { expectedAccountId: someId })), { outcome: 'taken' }, 'taken is decided first');
      assert.equal(await s.phone.findByNumber(plain, REALM), null);

      const number = nextNumber();
      const a = await created(s.phone, number);
      assert.deepEqual(await s.phone.register(registration(number)), { outcome: 'conflict' }, 'expected none, found one');
      assert.deepEqual(await s.phone.register(registration(number, { expectedAccountId: someId })), { outcome: 'conflict' }, 'expected another');
      assert.deepEqual(await s.phone.register(registration(nextNumber(), { expectedAccountId: a.accountId })), { outcome: 'conflict' }, 'expected one, found none');
      assert.deepEqual(await s.phone.findById(a.accountId), a);
    });

    it('re-registers: same account and PNI, every device and its credentials replaced, device ids start again at 2', async () => {
      const s = env();
      const number = nextNumber();
      const a = await created(s.phone, number);
      const d2 = await s.phone.addDevice(a.accountId, device({ name: 'tablet' }), credentialsFor('linked-2'), 5);
      const d3 = await s.phone.addDevice(a.accountId, device({ name: 'laptop' }), credentialsFor('linked-3'), 5);
      assert.deepEqual([typeof d2 === 'object' && d2.deviceId, typeof d3 === 'object' && d3.deviceId], [2, 3]);
      // The account's own password (set by an admin) is not a device's: re-registration leaves it.
      await s.accounts.setPassword(a.accountId, null, digestCredentialsFor(number, REALM, 'account-password'));

      const later = T0 + 5 * DAY;
      const r = await s.phone.register(registration(number, {
        expectedAccountId: a.accountId, now: later, primary: device({ name: 'new phone', auth: salted('new'), createdAt: later, lastSeen: later }),
        credentials: credentialsFor('device-password-2'), registrationLock: null, recoveryPassword: salted('recovery-2'), identityKeys: { k: 2 }, attributes: { a: 2 },
      }));
      assert.equal(r.outcome, 'reregistered');
      if (r.outcome !== 'reregistered') return;
      assert.deepEqual(r.removedAuthUsers, [1, 2, 3].map((d) => `${a.accountId}.${d}`));
      assert.deepEqual(r.account, {
        accountId: a.accountId, number, realm: REALM, pni: a.pni, disabled: false, registrationLock: null, recoveryPassword: salted('recovery-2'),
        identityKeys: { k: 2 }, attributes: { a: 2 }, createdAt: T0,
        devices: [{ ...device({ name: 'new phone', auth: salted('new'), createdAt: later, lastSeen: later }), accountId: a.accountId, deviceId: 1, locked: false }],
      });
      assert.deepEqual(await s.phone.findById(a.accountId), r.account);
      assert.equal(await credentialFor(s, `${a.accountId}.1`, 'device-password-2'), true);
      assert.equal(await credentialFor(s, `${a.accountId}.2`), false);
      assert.equal(await credentialFor(s, `${a.accountId}.3`), false);
      assert.equal(await credentialFor(s, number, 'account-password'), true);
      assert.equal((await s.accounts.findById(a.accountId))?.updatedAt, later);
      const again = await s.phone.addDevice(a.accountId, device(), credentialsFor('linked-again'), 5);
      assert.equal(typeof again === 'object' && again.deviceId, 2);
    });

    it('links devices with increasing ids up to the limit, never reusing one, and refuses unknown accounts', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber());
      const d2 = await s.phone.addDevice(a.accountId, device({ name: 'tablet', createdAt: T0 + 1 }), credentialsFor('linked-2'), 3);
      assert.deepEqual(d2, { ...device({ name: 'tablet', createdAt: T0 + 1 }), accountId: a.accountId, deviceId: 2, locked: false });
      assert.equal(await credentialFor(s, `${a.accountId}.2`, 'linked-2'), true);
      const d3 = await s.phone.addDevice(a.accountId, device(), credentialsFor('linked-3'), 3);
      assert.equal(typeof d3 === 'object' && d3.deviceId, 3);
      assert.equal(await s.phone.addDevice(a.accountId, device(), credentialsFor('x'), 3), 'full');
      assert.equal(await credentialFor(s, `${a.accountId}.4`), false);
      assert.equal(await s.phone.removeDevice(a.accountId, 3), true);
      const d4 = await s.phone.addDevice(a.accountId, device(), credentialsFor('linked-4'), 3);
      assert.equal(typeof d4 === 'object' && d4.deviceId, 4, 'a removed id is not handed out again');
      assert.deepEqual((await s.phone.findById(a.accountId))!.devices.map((d) => d.deviceId), [1, 2, 4]);

      assert.equal(await s.phone.addDevice('00000000-0000-0000-0000-000000000000', device(), credentialsFor('x'), 3), 'no-account');
      const plain = await s.accounts.create({ username: 'plain', realm: REALM, passwordHash: null, credentials: [] });
      assert.equal(await s.phone.addDevice(plain.id, device(), credentialsFor('x'), 3), 'no-account', 'an account not made by phone sign-up');
    });

    it('stores device credentials without a realm under the account’s realm', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber(), { credentials: credentialsFor('pw-1', '') });
      assert.equal(await credentialFor(s, `${a.accountId}.1`), true);
      const d = await s.phone.addDevice(a.accountId, device(), credentialsFor('pw-2', ''), 5);
      assert.equal(await credentialFor(s, `${a.accountId}.${typeof d === 'object' ? d.deviceId : 0}`), true);
    });

    it('removes a device with its credentials, and only that one', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber());
      await s.phone.addDevice(a.accountId, device(), credentialsFor('linked-2'), 5);
      await s.phone.addDevice(a.accountId, device(), credentialsFor('linked-3'), 5);
      assert.equal(await s.phone.removeDevice(a.accountId, 2), true);
      assert.equal(await s.phone.removeDevice(a.accountId, 2), false);
      assert.equal(await s.phone.removeDevice('00000000-0000-0000-0000-000000000000', 1), false);
      assert.equal(await credentialFor(s, `${a.accountId}.2`), false);
      assert.equal(await credentialFor(s, `${a.accountId}.3`, 'linked-3'), true);
      assert.equal(await credentialFor(s, `${a.accountId}.1`, 'device-password-1'), true);
      assert.deepEqual((await s.phone.findById(a.accountId))!.devices.map((d) => d.deviceId), [1, 3]);
    });

    it('sets and clears the registration lock', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber(), { registrationLock: null });
      await s.phone.setRegistrationLock(a.accountId, salted('reglock'));
      assert.deepEqual((await s.phone.findById(a.accountId))!.registrationLock, salted('reglock'));
      await s.phone.setRegistrationLock(a.accountId, null);
      assert.equal((await s.phone.findById(a.accountId))!.registrationLock, null);
      await s.phone.setRegistrationLock('00000000-0000-0000-0000-000000000000', null);
    });

    it('locks every device of an account and drops their credentials, returning their auth users', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber());
      const other = await created(s.phone, nextNumber());
      await s.phone.addDevice(a.accountId, device(), credentialsFor('linked-2'), 5);
      assert.deepEqual(await s.phone.lockDevices(a.accountId), [`${a.accountId}.1`, `${a.accountId}.2`]);
      const after = (await s.phone.findById(a.accountId))!;
      assert.deepEqual(after.devices.map((d) => [d.deviceId, d.locked]), [[1, true], [2, true]]);
      assert.equal((await s.phone.findDevice(a.accountId, 2))?.device.locked, true);
      assert.equal(await credentialFor(s, `${a.accountId}.1`), false);
      assert.equal(await credentialFor(s, `${a.accountId}.2`), false);
      assert.equal(await credentialFor(s, `${other.accountId}.1`), true, 'other accounts keep theirs');
      assert.equal((await s.phone.findById(other.accountId))!.devices[0].locked, false);
      assert.deepEqual(await s.phone.lockDevices('00000000-0000-0000-0000-000000000000'), []);
    });

    it('raises a device’s last-seen day and never lowers it', async () => {
      const s = env();
      const a = await created(s.phone, nextNumber());
      const day0 = a.devices[0].lastSeen;
      await s.phone.touchDevice(a.accountId, 1, day0 + 2 * DAY);
      assert.equal((await s.phone.findDevice(a.accountId, 1))!.device.lastSeen, day0 + 2 * DAY);
      await s.phone.touchDevice(a.accountId, 1, day0 + DAY);
      assert.equal((await s.phone.findDevice(a.accountId, 1))!.device.lastSeen, day0 + 2 * DAY);
      await s.phone.touchDevice(a.accountId, 9, day0 + 3 * DAY);
      await s.phone.touchDevice('00000000-0000-0000-0000-000000000000', 1, day0 + 3 * DAY);
    });

    it('expires idle linked devices, and accounts idle as a whole or by their primary', async () => {
      const s = env();
      const now = T0 + 400 * DAY;
      const c = { linkedBefore: now - 45 * DAY, primaryBefore: now - 180 * DAY, accountBefore: now - 120 * DAY };
      const seen = (daysAgo: number) => now - daysAgo * DAY;
      const make = async (primaryDaysAgo: number, linkedDaysAgo: number[]) => {
        const number = nextNumber();
        const a = await created(s.phone, number, { primary: device({ lastSeen: seen(primaryDaysAgo) }) });
        for (const d of linkedDaysAgo) await s.phone.addDevice(a.accountId, device({ lastSeen: seen(d) }), credentialsFor('linked'), 10);
        await s.sealed.putSealedSipPassword(a.accountId, 'sealed');
        return { id: a.accountId, aor: `${number}@${REALM}` };
      };
      const active = await make(1, [50, 2]); // linked device 2 idle: removed
      const idle = await make(130, [125]); // every device idle past accountBefore: account removed
      const primaryIdle = await make(190, [1]); // primary idle past primaryBefore: account removed
      const fresh = await make(0, [44]);
      const empty = await created(s.phone, nextNumber(), { now: seen(121) }); // no devices left: its creation time counts
      await s.phone.removeDevice(empty.accountId, 1);
      const emptyRecent = await created(s.phone, nextNumber(), { now: seen(10) });
      await s.phone.removeDevice(emptyRecent.accountId, 1);

      const r = await s.phone.expire(c);
      assert.deepEqual(byId(r.devices), [{ accountId: active.id, deviceId: 2 }]);
      assert.deepEqual(byId(r.accounts), byId([
        { accountId: idle.id, aor: idle.aor, authUsers: [`${idle.id}.1`, `${idle.id}.2`] },
        { accountId: primaryIdle.id, aor: primaryIdle.aor, authUsers: [`${primaryIdle.id}.1`, `${primaryIdle.id}.2`] },
        { accountId: empty.accountId, aor: `${empty.number}@${REALM}`, authUsers: [] },
      ]));
      for (const gone of [idle.id, primaryIdle.id, empty.accountId]) {
        assert.equal(await s.phone.findById(gone), null);
        assert.equal(await s.accounts.findById(gone), null);
        assert.equal(await credentialFor(s, `${gone}.1`), false);
        assert.equal(await s.sealed.getSealedSipPassword(gone), null, 'the account’s rows go with it');
      }
      assert.deepEqual((await s.phone.findById(active.id))!.devices.map((d) => d.deviceId), [1, 3]);
      assert.equal(await credentialFor(s, `${active.id}.2`), false);
      assert.equal(await credentialFor(s, `${active.id}.3`), true);
      assert.deepEqual((await s.phone.findById(fresh.id))!.devices.map((d) => d.deviceId), [1, 2]);
      assert.ok(await s.phone.findById(emptyRecent.accountId));
      assert.deepEqual(await s.phone.expire(c), { devices: [], accounts: [] }, 'nothing twice');
    });

    // --- several nodes at once ------------------------------------------------------------------------------

    it('two nodes registering the same new number: one creates, the other is told of the conflict', async () => {
      const s = env();
      const nodes = [s, await s.node(), await s.node()];
      const numbers = Array.from({ length: 8 }, nextNumber);
      const results = await Promise.all(numbers.flatMap((n) => nodes.map((x, i) => x.phone.register(registration(n, { credentials: credentialsFor(`pw-${i}`) })))));
      for (const [k, n] of numbers.entries()) {
        const mine = results.slice(k * nodes.length, (k + 1) * nodes.length);
        assert.deepEqual(mine.map((r) => r.outcome).sort(), ['conflict', 'conflict', 'created'], n);
        const winner = mine.findIndex((r) => r.outcome === 'created');
        const a = (await s.phone.findByNumber(n, REALM))!;
        assert.deepEqual(a.devices.map((d) => d.deviceId), [1]);
        assert.equal(await credentialFor(s, `${a.accountId}.1`, `pw-${winner}`), true);
      }
      assert.equal(await s.accounts.count(), numbers.length);
    });

    it('a phone registration racing an account of the same name: exactly one of them gets it', async () => {
      const s = env();
      const peer = await s.node();
      for (let i = 0; i < 6; i++) {
        const n = nextNumber();
        const register = () => (i % 2 ? s : peer).phone.register(registration(n));
        const create = () => (i % 2 ? peer : s).accounts.create({ username: n, realm: REALM, passwordHash: null, credentials: [] });
        // Started in either order (an in-process adapter finishes the first before the second starts).
        let reg: PromiseSettledResult<PhoneRegistrationResult>;
        let acc: PromiseSettledResult<Account>;
        if (i % 3) [reg, acc] = await Promise.allSettled([register(), create()]);
        else [acc, reg] = await Promise.allSettled([create(), register()]);
        assert.equal(reg.status, 'fulfilled');
        const outcome = reg.status === 'fulfilled' ? reg.value.outcome : null;
        if (outcome === 'created') assert.ok(acc.status === 'rejected' && isSwitchboardError(acc.reason, 'ACCOUNT_ERR_EXISTS'));
        else assert.deepEqual([outcome, acc.status], ['taken', 'fulfilled']);
        assert.equal((await s.accounts.list({ search: n, limit: 10, offset: 0 })).total, 1);
      }
    });

    it('devices linked from several nodes at once get distinct ids and never exceed the limit', async () => {
      const s = env();
      const nodes = [s, await s.node(), await s.node()];
      const a = await created(s.phone, nextNumber());
      const max = 6;
      const results = await Promise.all(Array.from({ length: 15 }, (_, i) => nodes[i % nodes.length].phone.addDevice(a.accountId, device({ name: `d${i}` }), credentialsFor(`pw-${i}`), max)));
      const added = results.filter((r) => typeof r === 'object');
      assert.equal(added.length, max - 1);
      assert.equal(results.filter((r) => r === 'full').length, 15 - (max - 1));
      assert.deepEqual(added.map((d) => d.deviceId).sort((x, y) => x - y), [2, 3, 4, 5, 6]);
      const devices = (await s.phone.findById(a.accountId))!.devices;
      assert.deepEqual(devices.map((d) => d.deviceId), [1, 2, 3, 4, 5, 6]);
      for (const d of added) {
        assert.equal(devices.find((x) => x.deviceId === d.deviceId)?.name, d.name);
        assert.equal(await credentialFor(s, `${a.accountId}.${d.deviceId}`, `pw-${d.name!.slice(1)}`), true);
      }
    });

    it('a re-registration racing a device link leaves no linked device behind, nor a used id to hand out', async () => {
      const s = env();
      const peer = await s.node();
      for (let i = 0; i < 6; i++) {
        const n = nextNumber();
        const a = await created(s.phone, n);
        const [rereg, link] = await Promise.all([
          (i % 2 ? s : peer).phone.register(registration(n, { expectedAccountId: a.accountId, credentials: credentialsFor('again') })),
          (i % 2 ? peer : s).phone.addDevice(a.accountId, device(), credentialsFor('linked'), 5),
        ]);
        assert.equal(rereg.outcome, 'reregistered');
        assert.equal(typeof link === 'object' && link.deviceId, 2);
        const ids = (await s.phone.findById(a.accountId))!.devices.map((d) => d.deviceId);
        // Serial either way: link then re-register ([1]), or re-register then link ([1, 2]).
        assert.ok(ids.length === 1 || ids.length === 2, `devices ${ids}`);
        assert.equal(await credentialFor(s, `${a.accountId}.2`), ids.length === 2);
        const next = await s.phone.addDevice(a.accountId, device(), credentialsFor('next'), 5);
        assert.equal(typeof next === 'object' && next.deviceId, ids.length + 1);
      }
    });

    it('expiry running on two nodes at once reports each removal once', async () => {
      const s = env();
      const peer = await s.node();
      const now = T0 + 400 * DAY;
      const c = { linkedBefore: now - 45 * DAY, primaryBefore: now - 180 * DAY, accountBefore: now - 120 * DAY };
      const idle: string[] = [];
      const linked: string[] = [];
      for (let i = 0; i < 10; i++) {
        const a = await created(s.phone, nextNumber(), { primary: device({ lastSeen: now - (i % 2 ? 200 : 1) * DAY }) });
        await s.phone.addDevice(a.accountId, device({ lastSeen: now - 60 * DAY }), credentialsFor('l'), 5);
        if (i % 2) idle.push(a.accountId);
        else linked.push(a.accountId);
      }
      const [r1, r2] = await Promise.all([s.phone.expire(c), peer.phone.expire(c)]);
      assert.deepEqual([...r1.accounts, ...r2.accounts].map((a) => a.accountId).sort(), idle.sort());
      assert.deepEqual([...r1.devices, ...r2.devices].map((d) => `${d.accountId}.${d.deviceId}`).sort(), linked.map((id) => `${id}.2`).sort());
      assert.equal(await s.accounts.count(), linked.length);
    });

    it('findById is one consistent snapshot of the account and its devices', todo('snapshot'), async () => {
      const s = env();
      const peer = await s.node();
      const n = nextNumber();
      const a = await created(s.phone, n);
      for (let i = 0; i < 10; i++) {
        const [, seenBy] = await Promise.all([
          peer.phone.register(registration(n, { expectedAccountId: a.accountId, now: T0 + i + 1, identityKeys: { round: i }, primary: device({ name: `round ${i}` }) })),
          s.phone.findById(a.accountId),
        ]);
        const d1 = seenBy!.devices.find((d) => d.deviceId === 1);
        // Keys and devices come from the same registration (the first read may see the original one).
        if (seenBy!.identityKeys.round !== undefined) assert.equal(d1?.name, `round ${seenBy!.identityKeys.round}`);
      }
    });
  });
}
