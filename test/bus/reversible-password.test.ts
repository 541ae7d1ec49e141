// Reversible SIP passwords, the operator's opt-in for Kazoo's `Auth-Method: password`: `switchboard user add
// --reversible-sip-password` stores the password sealed (never in plaintext at rest), bound to its account; the
// directory hands it out over the bus and no log line ever holds it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ReversibleSipPasswords, REVERSIBLE_SIP_PASSWORD_KEY } from '../../src/identity/reversible-passwords.ts';
import { deriveKey, loadMasterKey } from '../../src/secrets.ts';
import { startServer } from '../../src/server.ts';
import { computeHa1 } from '../../src/sip/digest.ts';
import type { SealedSipPasswordStore } from '../../src/storage/ports.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqliteSealedSipPasswordStore } from '../../src/storage/sqlite/sealed-sip-password-store.ts';
import { KazooPeer } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit } from '../helpers/rabbitmq.ts';
import { ROOT, tempDir, testConfig } from '../helpers/server.ts';

const run = promisify(execFile);
const cli = (args: string[]) => run(process.execPath, [path.join(ROOT, 'src/cli.ts'), ...args], { env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
const rabbit = await missingRabbit();

class MemoryStore implements SealedSipPasswordStore {
  readonly m = new Map<string, string>();
  async getSealedSipPassword(id: string) {
    return this.m.get(id) ?? null;
  }
  async putSealedSipPassword(id: string, s: string) {
    this.m.set(id, s);
  }
  async deleteSealedSipPassword(id: string) {
    return this.m.delete(id);
  }
}

describe('reversible SIP passwords', () => {
  it('seal per account: a sealed value moved to another account, or a changed password, is never revealed', async () => {
    const store = new MemoryStore();
    const p = new ReversibleSipPasswords({ store, key: randomBytes(32), cacheTtlSeconds: 0 });
    await p.enable('acc-1', 'pw-one');
    const ha1 = computeHa1('MD5', 'alice', 'example.test', 'pw-one');
    assert.deepEqual(await p.reveal('acc-1', 'alice', 'example.test', ha1), { status: 'ok', password: 'pw-one' });
    assert.deepEqual(await p.reveal('acc-1', 'alice', 'example.test', computeHa1('MD5', 'alice', 'example.test', 'new-pw')), { status: 'stale' });
    store.m.set('acc-2', store.m.get('acc-1')!);
    assert.deepEqual(await p.reveal('acc-2', 'alice', 'example.test', ha1), { status: 'stale' }, 'bound to its account');
    assert.deepEqual(await p.reveal('acc-3', 'alice', 'example.test', ha1), { status: 'off' });
    assert.equal(await p.disable('acc-1'), true);
    assert.deepEqual(await p.reveal('acc-1', 'alice', 'example.test', ha1), { status: 'off' });
    await assert.rejects(p.enable('acc-1', ''));
  });

  it('`user add --reversible-sip-password` stores it sealed; nothing in the data directory holds the plaintext', async () => {
    const dir = tempDir();
    const secret = `Pw-${randomBytes(6).toString('hex')}`;
    try {
      const out = await cli(['user', 'add', 'carol@example.test', '--password', secret, '--reversible-sip-password', '--data-dir', dir]);
      assert.match(out.stdout, /created carol@example\.test .*SIP password kept sealed/);
      await cli(['user', 'add', 'dave@example.test', '--password', secret, '--data-dir', dir]);
      for (const f of readdirSync(dir)) {
        const bytes = readFileSync(path.join(dir, f));
        assert.equal(bytes.indexOf(secret), -1, `${f} holds the plaintext`);
        assert.equal(bytes.indexOf(Buffer.from(secret).toString('base64').slice(0, 12)), -1, `${f} holds it in base64`);
      }
      const db = openDatabase({ file: path.join(dir, 'switchboard.db'), durability: 'os' });
      try {
        const rows = db.prepare('SELECT a.username, s.sealed FROM sip_passwords_sealed s JOIN accounts a ON a.id = s.account_id').all() as Array<{ username: string; sealed: string }>;
        assert.deepEqual(rows.map((r) => r.username), ['carol'], 'only the account opted in');
        const id = (db.prepare("SELECT id FROM accounts WHERE username = 'carol'").get() as { id: string }).id;
        const p = new ReversibleSipPasswords({ store: new SqliteSealedSipPasswordStore(db), key: deriveKey(loadMasterKey(dir), REVERSIBLE_SIP_PASSWORD_KEY) });
        assert.deepEqual(await p.reveal(id, 'carol', 'example.test', computeHa1('MD5', 'carol', 'example.test', secret)), { status: 'ok', password: secret });
        db.prepare('DELETE FROM accounts WHERE id = ?').run(id);
        assert.equal((db.prepare('SELECT COUNT(*) AS n FROM sip_passwords_sealed').get() as { n: number }).n, 0, 'gone with the account');
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is handed out over the bus as Auth-Method password, and no log line holds it or the HA1', { skip: rabbit }, async () => {
    const dir = tempDir();
    const secret = `Pw-${randomBytes(6).toString('hex')}`;
    const vhost = await createVhost();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    try {
      await cli(['user', 'add', 'erin@example.test', '--password', secret, '--reversible-sip-password', '--data-dir', dir]);
      const server = await startServer(testConfig(dir, { bus: vhost.url, 'log-level': 'trace' }), { log: pino({ level: 'trace' }, sink) });
      const kazoo = await KazooPeer.open(vhost.url);
      try {
        const req = { ...kazoo.envelope('authn_req'), 'Auth-User': 'erin', 'Auth-Realm': 'example.test', From: 'sip:erin@example.test', To: 'sip:erin@example.test' };
        const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', req);
        assert.equal(resp['Auth-Method'], 'password');
        assert.equal(resp['Auth-Password'], secret);
      } finally {
        await kazoo.close();
        await server.stop();
      }
      const all = lines.join('');
      assert.ok(all.includes('AMQP bus ready'), 'the log was captured');
      assert.ok(!all.includes(':guest@'), 'the AMQP password is not logged');
      assert.equal(all.indexOf(secret), -1, 'the SIP password is not logged');
      assert.equal(all.indexOf(computeHa1('MD5', 'erin', 'example.test', secret)), -1, 'the HA1 is not logged');
    } finally {
      await vhost.delete();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('follows a password change over HTTP: the switch gets the new password, never a stale one', { skip: rabbit }, async () => {
    const dir = tempDir();
    const vhost = await createVhost();
    try {
      await cli(['user', 'add', 'frank@example.test', '--password', 'first-password', '--reversible-sip-password', '--data-dir', dir]);
      const server = await startServer(testConfig(dir, { bus: vhost.url, 'argon2-memory': '1024', 'argon2-passes': '1' }), { log: pino({ level: 'silent' }) });
      const kazoo = await KazooPeer.open(vhost.url);
      try {
        const account = (await server.accounts.findByName('frank', 'example.test'))!;
        const admin = await server.accountService.create('root@example.test', 'root-password', ['admin']);
        const token = (await server.tokens.issue(admin)).token;
        const r = await fetch(`http://127.0.0.1:${server.http.port}/users/${account.id}/password`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ password: 'second-password' }),
        });
        assert.equal(r.status, 204);
        const req = { ...kazoo.envelope('authn_req'), 'Auth-User': 'frank', 'Auth-Realm': 'example.test', From: 'sip:frank@example.test', To: 'sip:frank@example.test' };
        const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', req);
        assert.equal(resp['Auth-Method'], 'password');
        assert.equal(resp['Auth-Password'], 'second-password');
      } finally {
        await kazoo.close();
        await server.stop();
      }
    } finally {
      await vhost.delete();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
