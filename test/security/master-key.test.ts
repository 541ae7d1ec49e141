// Misconfiguration: a node started with another master key than the one that sealed the signing keys in the
// database used to die with "Unsupported state or unable to authenticate data" and a stack trace. It must say what
// is wrong and exit non-zero, without a stack trace.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { childFlags, flagArgs, releaseStack, ROOT, tempDir } from '../helpers/server.ts';

function start(dataDir: string, key: string): Promise<{ code: number | null; stdout: string; stderr: string; started: boolean }> {
  const flags = childFlags(dataDir, { 'sip-transports': 'UDP' });
  const proc = spawn(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'start', ...flagArgs(flags)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHBOARD_MASTER_KEY: key },
  });
  let stdout = '';
  let stderr = '';
  let started = false;
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    // The first start only has to seal the keys: stop it once it serves.
    if (!started && stdout.includes('"Switchboard started"')) {
      started = true;
      proc.kill('SIGTERM');
    }
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, started });
    }),
  );
}

describe('security: a node started with another master key', () => {
  const dataDir = tempDir();
  after(async () => {
    rmSync(dataDir, { recursive: true, force: true });
    await releaseStack(dataDir);
  });

  it('exits non-zero saying the signing keys were sealed under another master key, without a stack trace', async () => {
    const a = randomBytes(32).toString('hex');
    const b = randomBytes(32).toString('hex');
    const first = await start(dataDir, a);
    assert.ok(first.started, `the first node (key A) starts: ${first.stderr}`);
    assert.equal(first.code, 0);

    const second = await start(dataDir, b);
    assert.equal(second.started, false);
    assert.notEqual(second.code, 0);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /the signing keys in the database were sealed under another master key; give every node the same SWITCHBOARD_MASTER_KEY/);
    assert.doesNotMatch(second.stderr, /unable to authenticate data/);
    assert.doesNotMatch(second.stderr, /^\s+at /m, 'no stack trace');

    // The right key still works.
    const third = await start(dataDir, a);
    assert.ok(third.started, third.stderr);
  });
});
