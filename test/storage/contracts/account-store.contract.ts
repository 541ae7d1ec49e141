// The AccountStore, AccountAdmin and CredentialStore contract (src/storage/ports.ts), run against every adapter:
// accounts with their Digest credentials, password changes that keep device credentials ("<account-id>.<device>"),
// listing, updates, and deletion with everything that hangs off an account.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestCredentialsFor } from '../../../src/identity/accounts.ts';
import { isSwitchboardError } from '../../../src/errors.ts';
import { computeHa1, DIGEST_ALGORITHMS } from '../../../src/sip/digest.ts';
import type { NewAccount } from '../../../src/storage/ports.ts';
import { useStores, type KnownDrift, type OpenStores } from './stores.ts';

const REALM = 'example.test';

const newAccount = (username: string, password: string | null = 'pw', realm = REALM, roles?: string[]): NewAccount => ({
  username, realm, roles, passwordHash: password === null ? null : `$argon2id$${password}`, credentials: password === null ? [] : digestCredentialsFor(username, realm, password),
});

const rejectsWith = (code: 'ACCOUNT_ERR_EXISTS' | 'ACCOUNT_ERR_NOT_FOUND') => (e: unknown) => isSwitchboardError(e, code);

export function accountStoreContract(open: OpenStores, drift: KnownDrift = {}): void {
  describe('AccountStore contract', () => {
    const env = useStores(open);
    const todo = (id: string) => ({ todo: drift[id] });

    it('creates an account and finds it by name and by id', async () => {
      const { accounts } = env();
      const before = Date.now();
      const a = await accounts.create(newAccount('alice', 'pw', REALM, ['admin', 'users.read']));
      assert.match(a.id, /^[0-9a-f-]{36}$/);
      assert.deepEqual({ ...a, id: '', createdAt: 0, updatedAt: 0 }, {
        id: '', username: 'alice', realm: REALM, aor: `alice@${REALM}`, roles: ['admin', 'users.read'], passwordHash: '$argon2id$pw', disabled: false, credentialsValidAfter: 0, createdAt: 0, updatedAt: 0,
      });
      assert.ok(a.createdAt >= before && a.createdAt <= Date.now() && a.updatedAt === a.createdAt);
      assert.deepEqual(await accounts.findByName('alice', REALM), a);
      assert.deepEqual(await accounts.findById(a.id), a);
      assert.equal(await accounts.findByName('alice', 'other.test'), null);
      assert.equal(await accounts.findByName('Alice', REALM), null, 'names are exact');
      assert.equal(await accounts.findById('00000000-0000-0000-0000-000000000000'), null);
      const bare = await accounts.create(newAccount('bare', null));
      assert.deepEqual([bare.roles, bare.passwordHash], [[], null]);
    });

    it('refuses a second account of the same name and realm, storing none of its credentials', async () => {
      const { accounts } = env();
      await accounts.create(newAccount('alice'));
      const dup = { ...newAccount('alice'), credentials: digestCredentialsFor('alice-2', REALM, 'x') };
      await assert.rejects(accounts.create(dup), rejectsWith('ACCOUNT_ERR_EXISTS'));
      assert.equal(await accounts.findSipCredential('alice-2', REALM, 'MD5'), null);
      await accounts.create(newAccount('alice', 'pw', 'other.test'));
      assert.equal(await accounts.count(), 2);
    });

    it('finds a credential with its account’s AOR, for each algorithm; none for a disabled account', async () => {
      const { accounts } = env();
      const a = await accounts.create(newAccount('alice', 'secret'));
      for (const algorithm of DIGEST_ALGORITHMS) {
        assert.deepEqual(await accounts.findSipCredential('alice', REALM, algorithm), {
          credential: { accountId: a.id, authUser: 'alice', realm: REALM, algorithm, ha1: computeHa1(algorithm, 'alice', REALM, 'secret') },
          aors: [`alice@${REALM}`],
        });
      }
      assert.equal(await accounts.findSipCredential('alice', 'other.test', 'MD5'), null);
      assert.equal(await accounts.findSipCredential('nobody', REALM, 'MD5'), null);
      await accounts.update(a.id, { disabled: true });
      assert.equal(await accounts.findSipCredential('alice', REALM, 'MD5'), null);
      await accounts.update(a.id, { disabled: false });
      assert.ok(await accounts.findSipCredential('alice', REALM, 'MD5'));
    });

    it('creates many in one go, skipping names that exist or repeat', async () => {
      const { accounts } = env();
      await accounts.create(newAccount('alice'));
      const r = await accounts.createMany([newAccount('bob', 'b'), newAccount('alice', 'other'), newAccount('carol', 'c'), newAccount('bob', 'again')]);
      assert.deepEqual(r, { created: 2, skipped: 2 });
      assert.equal(await accounts.count(), 3);
      assert.equal((await accounts.findSipCredential('bob', REALM, 'MD5'))?.credential.ha1, computeHa1('MD5', 'bob', REALM, 'b'), 'the first of a repeated name');
      assert.equal((await accounts.findSipCredential('alice', REALM, 'MD5'))?.credential.ha1, computeHa1('MD5', 'alice', REALM, 'pw'), 'an existing account is left alone');
      assert.deepEqual(await accounts.createMany([]), { created: 0, skipped: 0 });
    });

    it('changes the password and the account’s own HA1s, keeping its devices’ credentials', async () => {
      const s = env();
      const number = '+15550001111';
      const r = await s.phone.register({
        number, realm: REALM, expectedAccountId: null, credentials: (u) => digestCredentialsFor(u, REALM, 'device-pw'),
        primary: { name: null, auth: { salt: 's', hash: 'h' }, capabilities: {}, fetchesMessages: false, registrationId: null, createdAt: 1, lastSeen: 0 },
        registrationLock: null, recoveryPassword: null, identityKeys: {}, attributes: {}, now: 1,
      });
      assert.equal(r.outcome, 'created');
      const id = r.outcome === 'created' ? r.account.accountId : '';
      await s.accounts.setPassword(id, '$argon2id$one', digestCredentialsFor(number, REALM, 'one'));
      const before = (await s.accounts.findById(id))!.updatedAt;
      await s.accounts.setPassword(id, '$argon2id$two', digestCredentialsFor(number, REALM, 'two').filter((c) => c.algorithm === 'MD5'));
      const after = (await s.accounts.findById(id))!;
      assert.equal(after.passwordHash, '$argon2id$two');
      assert.ok(after.updatedAt >= before);
      assert.equal((await s.accounts.findSipCredential(number, REALM, 'MD5'))?.credential.ha1, computeHa1('MD5', number, REALM, 'two'));
      assert.equal(await s.accounts.findSipCredential(number, REALM, 'SHA-256'), null, 'HA1s of the old password are gone');
      for (const algorithm of DIGEST_ALGORITHMS) {
        const device = await s.accounts.findSipCredential(`${id}.1`, REALM, algorithm);
        assert.equal(device?.credential.ha1, computeHa1(algorithm, `${id}.1`, REALM, 'device-pw'), `device credential ${algorithm}`);
      }
      await s.accounts.setPassword(id, null, []);
      assert.equal((await s.accounts.findById(id))!.passwordHash, null);
      assert.equal(await s.accounts.findSipCredential(number, REALM, 'MD5'), null);
      assert.ok(await s.accounts.findSipCredential(`${id}.1`, REALM, 'MD5'));
      await assert.rejects(s.accounts.setPassword('00000000-0000-0000-0000-000000000000', null, []), rejectsWith('ACCOUNT_ERR_NOT_FOUND'));
    });

    it('lists by realm and by case-insensitive substring of user@realm, ordered by realm then name, paged', async () => {
      const { accounts } = env();
      await accounts.createMany(['carol', 'alice', 'bob', 'alina'].map((u) => newAccount(u, null)));
      await accounts.createMany(['alice', 'zed'].map((u) => newAccount(u, null, 'b.example')));
      const names = (r: { accounts: Array<{ username: string; realm: string }> }) => r.accounts.map((a) => `${a.username}@${a.realm}`);
      const all = await accounts.list({ limit: 100, offset: 0 });
      assert.equal(all.total, 6);
      assert.deepEqual(names(all), ['alice@b.example', 'zed@b.example', 'alice@example.test', 'alina@example.test', 'bob@example.test', 'carol@example.test']);
      const page = await accounts.list({ limit: 2, offset: 1 });
      assert.deepEqual([page.total, names(page)], [6, ['zed@b.example', 'alice@example.test']]);
      assert.deepEqual(names(await accounts.list({ search: 'ALI', limit: 10, offset: 0 })), ['alice@b.example', 'alice@example.test', 'alina@example.test']);
      assert.deepEqual(names(await accounts.list({ search: 'e@b.EX', limit: 10, offset: 0 })), ['alice@b.example']);
      const inRealm = await accounts.list({ realm: 'B.Example', limit: 1, offset: 0 });
      assert.deepEqual([inRealm.total, names(inRealm)], [2, ['alice@b.example']]);
      assert.deepEqual(names(await accounts.list({ search: 'ali', realm: 'example.test', limit: 10, offset: 0 })), ['alice@example.test', 'alina@example.test']);
      assert.deepEqual(await accounts.list({ search: 'nobody', limit: 10, offset: 0 }), { total: 0, accounts: [] });
    });

    it('updates roles and the disabled flag', async () => {
      const { accounts } = env();
      const a = await accounts.create(newAccount('alice'));
      const u1 = await accounts.update(a.id, { roles: ['admin'] });
      assert.deepEqual([u1.roles, u1.disabled], [['admin'], false]);
      assert.ok(u1.updatedAt >= a.updatedAt);
      const u2 = await accounts.update(a.id, { disabled: true });
      assert.deepEqual([u2.roles, u2.disabled], [['admin'], true]);
      assert.deepEqual(await accounts.findById(a.id), u2);
      const u3 = await accounts.update(a.id, { roles: [], disabled: false });
      assert.deepEqual([u3.roles, u3.disabled], [[], false]);
      await assert.rejects(accounts.update('00000000-0000-0000-0000-000000000000', { disabled: true }), rejectsWith('ACCOUNT_ERR_NOT_FOUND'));
    });

    it('keeps the instant credentials are valid after, durable, and only ever moving forward', async () => {
      const s = env();
      const a = await s.accounts.create(newAccount('alice'));
      assert.equal(a.credentialsValidAfter, 0);
      const u1 = await s.accounts.update(a.id, { disabled: true, credentialsValidAfter: 1_700_000_000_123 });
      assert.deepEqual([u1.disabled, u1.credentialsValidAfter], [true, 1_700_000_000_123]);
      // An earlier instant (a node with a late clock) never revives what a later one revoked.
      const u2 = await s.accounts.update(a.id, { disabled: false, credentialsValidAfter: 1_600_000_000_000 });
      assert.deepEqual([u2.disabled, u2.credentialsValidAfter], [false, 1_700_000_000_123]);
      assert.equal((await s.accounts.update(a.id, { roles: ['admin'] })).credentialsValidAfter, 1_700_000_000_123);
      // Seen the same from another node, and by name.
      const peer = await s.node();
      assert.equal((await peer.accounts.findById(a.id))!.credentialsValidAfter, 1_700_000_000_123);
      assert.equal((await peer.accounts.findByName('alice', REALM))!.credentialsValidAfter, 1_700_000_000_123);
    });

    it('deletes an account with its credentials, tokens, API keys and sealed password', todo('delete-cascade'), async () => {
      const s = env();
      const a = await s.accounts.create(newAccount('alice'));
      const b = await s.accounts.create(newAccount('bob'));
      for (const x of [a, b]) {
        await s.tokens.insertRefresh({ id: `r-${x.username}`, familyId: 'f', accountId: x.id, secretHash: 'h', createdAt: 1, expiresAt: 2, revokedAt: null, replacedBy: null });
        await s.tokens.insertApiKey({ id: `k-${x.username}`, accountId: x.id, name: 'n', secretHash: 's', permissions: [], createdAt: 1, expiresAt: null, revokedAt: null, lastUsedAt: null });
        await s.sealed.putSealedSipPassword(x.id, 'sealed');
      }
      assert.equal(await s.accounts.delete(a.id), true);
      assert.equal(await s.accounts.delete(a.id), false);
      assert.equal(await s.accounts.findById(a.id), null);
      assert.equal(await s.accounts.findSipCredential('alice', REALM, 'MD5'), null);
      assert.equal(await s.tokens.findRefresh('r-alice'), null);
      assert.equal(await s.tokens.findApiKey('k-alice'), null);
      assert.equal(await s.sealed.getSealedSipPassword(a.id), null);
      assert.equal(await s.accounts.count(), 1);
      assert.ok(await s.accounts.findSipCredential('bob', REALM, 'MD5'));
      assert.ok(await s.tokens.findRefresh('r-bob'));
      assert.ok(await s.tokens.findApiKey('k-bob'));
      assert.equal(await s.sealed.getSealedSipPassword(b.id), 'sealed');
    });

    it('two nodes creating the same name at once: one account, the other told it exists', async () => {
      const s = env();
      const peer = await s.node();
      for (let i = 0; i < 5; i++) {
        const r = await Promise.allSettled([s, peer, s, peer].map((x, k) => x.accounts.create(newAccount(`race${i}`, `pw${k}`))));
        assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
        assert.ok(r.every((x) => x.status === 'fulfilled' || rejectsWith('ACCOUNT_ERR_EXISTS')(x.reason)));
        const winner = r.findIndex((x) => x.status === 'fulfilled');
        assert.equal((await s.accounts.findSipCredential(`race${i}`, REALM, 'MD5'))?.credential.ha1, computeHa1('MD5', `race${i}`, REALM, `pw${winner}`));
      }
      assert.equal(await s.accounts.count(), 5);
    });
  });
}
