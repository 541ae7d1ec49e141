// Attack: take over a phone device's SIP credentials by creating an account named like the device's auth user
// ("<account-id>.<device-id>"): its HA1s were upserted over the device's in sip_credentials, re-pointing them to
// the new account and its password. The name shape is reserved (HTTP, CLI, import refuse it with
// ACCOUNT_ERR_NAME_RESERVED) and no credential upsert re-points another account's row (ACCOUNT_ERR_CREDENTIAL_TAKEN).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { digestCredentialsFor } from '../../src/identity/accounts.ts';
import { isSwitchboardError } from '../../src/errors.ts';
import { register } from '../helpers/register.ts';
import { adminToken, cliDataArgs, ROOT } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { call, nextNumber, signUp, startPhoneServer, type PhoneTestServer, type SignedUp } from '../phone/helpers.ts';

const REALM = 'example.test';
const run = promisify(execFile);

describe('security: account names shaped like device credentials', () => {
  let s: PhoneTestServer;
  let alice: SignedUp;
  let sip: SipTestClient;
  let admin: string;
  before(async () => {
    s = await startPhoneServer();
    sip = await SipTestClient.open('UDP', s.sipPort);
    alice = await signUp(s, nextNumber());
    admin = `Bearer ${await adminToken(s)}`;
  });
  after(async () => {
    sip.close();
    await s.close();
  });

  const deviceRegisters = async (password: string) =>
    (await register(sip, { user: alice.number, password, domain: REALM, authUser: `${alice.uuid}.1`, expires: 60 })).status;

  it('POST /users with a device auth user name is refused (400 ACCOUNT_ERR_NAME_RESERVED); the device keeps its credentials', async () => {
    assert.equal(await deviceRegisters(alice.password), 200);
    for (const username of [`${alice.uuid}.1@${REALM}`, `${alice.uuid}.2`, `${alice.uuid.toUpperCase()}.1@${REALM}`]) {
      const r = await call(s, 'POST', '/users', { auth: admin, body: { username, password: 'attacker-password' } });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal((r.body.error as { code: string }).code, 'ACCOUNT_ERR_NAME_RESERVED');
    }
    assert.equal(await deviceRegisters('attacker-password'), 401);
    assert.equal(await deviceRegisters(alice.password), 200);
    // Names that only look alike are still fine.
    const ok = await call(s, 'POST', '/users', { auth: admin, body: { username: `${alice.uuid}@${REALM}`, password: 'another-password' } });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  it('no store path re-points a device credential (an account created past the name check is refused)', async () => {
    await assert.rejects(
      s.accounts.create({ username: `${alice.uuid}.1`, realm: REALM, roles: [], passwordHash: null, credentials: digestCredentialsFor(`${alice.uuid}.1`, REALM, 'attacker-password') }),
      (e) => isSwitchboardError(e, 'ACCOUNT_ERR_CREDENTIAL_TAKEN'),
    );
    assert.equal(await s.accounts.findByName(`${alice.uuid}.1`, REALM), null, 'the refused account is rolled back');
    s.credentials.clear();
    assert.equal(await deviceRegisters('attacker-password'), 401);
    assert.equal(await deviceRegisters(alice.password), 200);
  });

  it('the CLI refuses the name in user add and in import', async () => {
    const add = await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'user', 'add', `${alice.uuid}.1@${REALM}`, '--password', 'x', ...cliDataArgs(s.dataDir)]).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    assert.ok(add, 'user add must fail');
    assert.match(add.stderr, /ACCOUNT_ERR_NAME_RESERVED/);
    const csv = path.join(s.dataDir, 'import.csv');
    writeFileSync(csv, `user,realm,password\n${alice.uuid}.1,${REALM},x\n`);
    const imp = await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'user', 'import', csv, ...cliDataArgs(s.dataDir)]).then(
      () => null,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.ok(imp, 'import must report the bad line');
    assert.match(imp.stderr, /line 2: .*reserved/);
    assert.match(imp.stdout, /imported 0 new accounts/);
    assert.equal(await deviceRegisters(alice.password), 200);
  });
});
