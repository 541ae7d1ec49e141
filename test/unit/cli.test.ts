// The CLI as an operator runs it: user add, user import (100,000 users), reg list — against a real data dir.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { ROOT, startTestServer, tempDir } from '../helpers/server.ts';

const run = promisify(execFile);
const cli = (args: string[], input?: string) => {
  const p = run(process.execPath, [path.join(ROOT, 'src/cli.ts'), ...args], { env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
  if (input !== undefined) {
    p.child.stdin!.end(input);
  }
  return p;
};

describe('switchboard CLI', () => {
  it('adds a user that can then register over SIP, without storing the password', async () => {
    const dir = tempDir();
    const out = await cli(['user', 'add', 'alice@example.test', '--password', 's3cret!', '--data-dir', dir]);
    assert.match(out.stdout, /created alice@example\.test/);
    // Read the password from stdin as well.
    await cli(['user', 'add', 'bob@example.test', '--password', '-', '--data-dir', dir], 'from-stdin\n');
    await assert.rejects(cli(['user', 'add', 'alice@example.test', '--password', 'x', '--data-dir', dir]), /already exists/);
    await assert.rejects(cli(['user', 'add', 'no realm@', '--password', 'x', '--data-dir', dir]), /invalid/);
    const { readFileSync } = await import('node:fs');
    const db = readFileSync(path.join(dir, 'switchboard.db'));
    assert.equal(db.indexOf('s3cret!'), -1, 'the password is nowhere in the database file');

    const server = await startTestServer({ dataDir: dir });
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(c, { user: 'alice', password: 's3cret!', domain: 'example.test' })).status, 200);
      assert.equal((await register(c, { user: 'bob', password: 'from-stdin', domain: 'example.test' })).status, 200);
      const list = await cli(['reg', 'list', '--data-dir', dir]);
      assert.match(list.stdout, /alice@example\.test\t<sip:alice@127\.0\.0\.1:\d+;transport=udp>\texpires=\d+\tUDP 127\.0\.0\.1:\d+/);
      assert.match(list.stdout, /2 binding\(s\)/);
      const one = await cli(['reg', 'list', 'sip:bob@example.test', '--json', '--data-dir', dir]);
      const rows = JSON.parse(one.stdout) as Array<{ aor: string }>;
      assert.deepEqual(rows.map((r) => r.aor), ['bob@example.test']);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('imports 100,000 users from CSV with progress, skipping existing ones and reporting bad lines', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'users.csv');
    const lines = ['user,realm,password'];
    for (let i = 0; i < 100_000; i++) lines.push(`user${i},example.test,pw${i}`);
    lines.push('"quoted,user",example.test,"pa""ss"', 'broken line without fields', 'user5,example.test,dup');
    writeFileSync(file, lines.join('\n') + '\n');
    const started = Date.now();
    const r = await cli(['user', 'import', file, '--data-dir', dir]).catch((e: { stdout: string; stderr: string; code: number }) => e);
    const seconds = (Date.now() - started) / 1000;
    assert.match(r.stdout, /imported 100001 new accounts, 1 already existed, 1 bad lines/);
    assert.match(r.stderr, /line 100003: expected user,realm,password/);
    assert.match(r.stderr, /100002 imported/);
    process.stdout.write(`# imported 100,000 users in ${seconds.toFixed(1)} s\n`);

    const server = await startTestServer({ dataDir: dir });
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(c, { user: 'user99999', password: 'pw99999', domain: 'example.test' })).status, 200);
      assert.equal((await register(c, { user: 'user5', password: 'pw5', domain: 'example.test' })).status, 200, 'the duplicate line did not overwrite');
    } finally {
      c.close();
      await server.close();
    }
  });

  it('prints usage for unknown commands and exits 2', async () => {
    await assert.rejects(cli(['frobnicate']), (e: { code: number; stderr: string }) => e.code === 2 && /Usage:/.test(e.stderr));
    const help = await cli(['--help']);
    assert.match(help.stdout, /switchboard start/);
  });
});
