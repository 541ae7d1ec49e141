// Attack: another local user reads the HA1s, password hashes and the master key. The data directory and the
// database followed the umask (0755/0644 under the usual 022: world-readable) and an existing master.key's mode
// was never checked. Now: the directory 0700, master.key and the SQLite files (with -wal and -shm) 0600 whatever
// the umask, and a start on an existing secret file that others may read is refused (CONFIG_ERR_FILE_MODE), or
// warned about with --file-mode-check warn.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isSwitchboardError } from '../../src/errors.ts';
import { register } from '../helpers/register.ts';
import { flagArgs, ROOT, sqliteOnly, startTestServer, tempDir, testStack, type Flags } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';
const mode = (f: string) => statSync(f).mode & 0o777;
const octal = (m: number) => m.toString(8).padStart(3, '0');

describe('security: modes of the files that hold secrets', () => {
  const parent = tempDir();
  const dataDir = path.join(parent, 'data');
  const flags: Flags = { 'sip-transports': 'UDP,TLS' };
  let umask: number;
  before(() => {
    umask = process.umask(0o022);
  });
  after(() => {
    process.umask(umask);
    rmSync(parent, { recursive: true, force: true });
  });

  it('under umask 022 a new data directory is 0700 and master.key, the database, -wal and -shm are 0600', async () => {
    const s = await startTestServer({ dataDir, flags, users: { [`alice@${D}`]: 'alice-password' } });
    try {
      // A registration, so the WAL has writes in it.
      const c = await SipTestClient.open('UDP', s.sipPort);
      assert.equal((await register(c, { user: 'alice', password: 'alice-password', domain: D, expires: 60 })).status, 200);
      c.close();
      assert.equal(octal(mode(dataDir)), '700');
      assert.equal(octal(mode(path.join(dataDir, 'master.key'))), '600');
      assert.equal(octal(mode(path.join(dataDir, 'tls'))), '700');
      assert.equal(octal(mode(path.join(dataDir, 'tls', 'self-signed-key.pem'))), '600');
      if (testStack() === 'embedded') {
        for (const f of ['switchboard.db', 'switchboard.db-wal', 'switchboard.db-shm']) {
          assert.ok(existsSync(path.join(dataDir, f)), f);
          assert.equal(octal(mode(path.join(dataDir, f))), '600', f);
        }
      }
    } finally {
      await s.close();
    }
  });

  it('a master.key readable by others (0644) is refused with the chmod that fixes it; --file-mode-check warn starts', async () => {
    const key = path.join(dataDir, 'master.key');
    chmodSync(key, 0o644);
    await assert.rejects(startTestServer({ dataDir, flags }), (e) => isSwitchboardError(e, 'CONFIG_ERR_FILE_MODE') && e.message.includes(`${key} has mode 0644`) && e.message.includes(`chmod 600 ${key}`));
    // The CLI says so and exits 1, without a stack trace.
    const cli = spawnSync(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'start', ...flagArgs({ 'data-dir': dataDir, realm: D, 'sip-port': '0', 'http-port': '0', 'sip-transports': 'UDP', 'sip-host': '127.0.0.1', 'http-host': '127.0.0.1' })], {
      env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(cli.status, 1);
    assert.match(cli.stderr, /refusing to start: .*master\.key has mode 0644: readable to other users; chmod 600 .* \(CONFIG_ERR_FILE_MODE\)/);
    assert.doesNotMatch(cli.stderr, /^\s+at /m);

    const warned = await startTestServer({ dataDir, flags: { ...flags, 'file-mode-check': 'warn' } });
    await warned.close();
    chmodSync(key, 0o600);
  });

  it('a database file readable by others is refused', { skip: sqliteOnly('file modes of the database') }, async () => {
    for (const f of ['switchboard.db', 'switchboard.db-wal']) {
      const file = path.join(dataDir, f);
      if (!existsSync(file)) continue;
      chmodSync(file, 0o640);
      await assert.rejects(startTestServer({ dataDir, flags }), (e) => isSwitchboardError(e, 'CONFIG_ERR_FILE_MODE') && e.message.includes(`${file} has mode 0640`));
      chmodSync(file, 0o600);
    }
  });

  it('a data directory others may write to is refused; one they may only list is warned about', async () => {
    chmodSync(dataDir, 0o777);
    await assert.rejects(startTestServer({ dataDir, flags }), (e) => isSwitchboardError(e, 'CONFIG_ERR_FILE_MODE') && e.message.includes('replace files in it'));
    chmodSync(dataDir, 0o755);
    const s = await startTestServer({ dataDir, flags });
    await s.close();
    chmodSync(dataDir, 0o700);
  });
});
