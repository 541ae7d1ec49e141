// The vault (src/bridge/vault.ts) on a real SQLite store: each way of opening it gives the same Secret, wrong keys are
// refused with their catalogue codes, a rewrap leaves the other wraps alone, and a phone device's key opens only its
// own wrap. (The HTTP flows, password change and reset included, are in xmpp.test.ts against Prosody.)

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatRecoveryKey, parseRecoveryKey, Vault } from '../../src/bridge/vault.ts';
import { isSwitchboardError } from '../../src/errors.ts';
import { SqliteAccountStore } from '../../src/storage/sqlite/account-store.ts';
import { SqliteBridgeStore } from '../../src/storage/sqlite/bridge-store.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { tempDir } from '../helpers/server.ts';

const COST = { memoryKiB: 1024, passes: 1 };
const code = (c: string) => (e: unknown) => isSwitchboardError(e) && e.code === c;

describe('the vault', () => {
  const dir = tempDir('sb-vault-');
  const db = openDatabase({ file: path.join(dir, 'db.sqlite'), durability: 'os' });
  const accounts = new SqliteAccountStore(db);
  const store = new SqliteBridgeStore(db);
  const vault = new Vault(store, COST);
  let id = '';
  before(async () => {
    id = (await accounts.create({ username: 'alice', realm: 'example.test', passwordHash: null, credentials: [] })).id;
  });
  after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('recovery keys round-trip their printed form, forgiving case, dashes and look-alikes', () => {
    const k = randomBytes(32);
    const shown = formatRecoveryKey(k);
    assert.deepEqual(parseRecoveryKey(shown), k);
    assert.deepEqual(parseRecoveryKey(shown.toLowerCase().replace(/-/g, ' ').replace(/0/g, 'o')), k);
    assert.equal(parseRecoveryKey(shown.slice(1)), null);
  });

  it('the password, and after a reset the recovery key, open the same Secret; wrong ones are refused', async () => {
    const made = await vault.openWithPassword(id, 'pw-one');
    assert.ok(made.recoveryKey);
    const again = await vault.openWithPassword(id, 'pw-one');
    assert.equal(again.recoveryKey, null, 'shown once');
    assert.deepEqual(again.secret, made.secret);
    await assert.rejects(vault.openWithPassword(id, 'pw-wrong'), code('BRIDGE_ERR_VAULT_PASSWORD'));
    assert.equal(await vault.rewrapPassword(id, 'pw-one', 'pw-two'), true);
    await assert.rejects(vault.openWithPassword(id, 'pw-one'), code('BRIDGE_ERR_VAULT_PASSWORD'));
    assert.deepEqual((await vault.openWithPassword(id, 'pw-two')).secret, made.secret);
    assert.equal(await vault.passwordReset(id), 'recoverable');
    await assert.rejects(vault.openWithPassword(id, 'pw-three'), code('BRIDGE_ERR_VAULT_RECOVERY'));
    await assert.rejects(vault.openWithPassword(id, 'pw-three', formatRecoveryKey(randomBytes(32))), code('BRIDGE_ERR_RECOVERY_KEY'));
    assert.deepEqual((await vault.openWithPassword(id, 'pw-three', made.recoveryKey!)).secret, made.secret);
    assert.deepEqual((await vault.openWithPassword(id, 'pw-three')).secret, made.secret, 'rewrapped under the new password');
  });

  it("a phone device's own key opens only its wrap", async () => {
    const phone = (await accounts.create({ username: '+15550001', realm: 'example.test', passwordHash: null, credentials: [] })).id;
    const key = randomBytes(32);
    const made = await vault.openWithDeviceKey(phone, 1, key);
    assert.ok(made.recoveryKey);
    assert.deepEqual((await vault.openWithDeviceKey(phone, 1, key)).secret, made.secret);
    await assert.rejects(vault.openWithDeviceKey(phone, 1, randomBytes(32)), code('BRIDGE_ERR_VAULT_PASSWORD'));
    await assert.rejects(vault.openWithDeviceKey(phone, 2, key), code('BRIDGE_ERR_VAULT_PASSWORD'), 'another device holds no wrap');
    const wraps = await store.getWraps(phone);
    assert.deepEqual(wraps.map((w) => w.slot).sort(), ['device:1', 'recovery']);
    assert.ok(!JSON.stringify(wraps).includes(made.secret.toString('base64url')));
  });
});
