// npm test: two passes of node:test, one file at a time.
//  1. Every test on the embedded stack (SQLite file, in-process cache, location index and bus).
//  2. The registrar, identity and presence suites again on the distributed stack (SWITCHBOARD_TEST_STACK=distributed:
//     the machine's PostgreSQL, Redis and RabbitMQ; test/helpers/server.ts). Without those servers the pass is
//     skipped with the reason, unless SWITCHBOARD_REQUIRE_PEERS=1 (CI), which fails it instead.
// Exits non-zero when either pass failed. SWITCHBOARD_TEST_PASSES=embedded or =distributed runs one pass only.

import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { PG_URL, postgresMissing } from '../test/helpers/postgres.ts';
import { createVhost, missingRabbit } from '../test/helpers/rabbitmq.ts';
import { REDIS_URL, redisMissing } from '../test/helpers/redis.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

const EMBEDDED = ['test/**/*.test.ts'];

/** What runs on PostgreSQL, Redis and RabbitMQ too: everything that starts the registrar, identity, presence or the call proxy. */
const DISTRIBUTED = [
  'test/registrar/*.test.ts',
  'test/http/*.test.ts',
  'test/presence/*.test.ts',
  'test/phone/*.test.ts',
  'test/messaging/*.test.ts',
  'test/bridge/*.test.ts',
  'test/console/api.test.ts',
  'test/sip/tls-ws.test.ts',
  'test/interop/register.sipp.test.ts',
  'test/interop/presence.sipp.test.ts',
  'test/interop/sipsak.test.ts',
  'test/interop/baresip.test.ts',
  'test/interop/presence.baresip.test.ts',
  'test/interop/message.baresip.test.ts',
  'test/security/disabled-accounts.test.ts',
  'test/proxy/*.test.ts',
  'test/interop/calls.baresip.test.ts',
  'test/interop/calls.sipp.test.ts',
];

function runNodeTest(files: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = ['--test', '--test-concurrency=1', '--test-timeout=600000', ...files];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit', env });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** Test schemas and key prefixes are named t_<base-36 ms>_<hex> and sbt:<base-36 ms>_<hex>: those of runs killed over six hours ago go. */
async function dropStaleTestResources(): Promise<void> {
  const cutoff = Date.now() - 6 * 3600_000;
  const stale = (ts36: string) => parseInt(ts36, 36) < cutoff;
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const { rows } = await c.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'");
    for (const { nspname } of rows) {
      const m = /^t_([0-9a-z]{6,10})_[0-9a-f]{10}$/.exec(nspname);
      if (m && stale(m[1])) await c.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`).catch(() => {});
    }
  } finally {
    await c.end();
  }
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', 'sbt:*', 'COUNT', 1000);
      cursor = next;
      const old = keys.filter((k) => {
        const m = /^sbt:([0-9a-z]{6,10})_[0-9a-f]{10}:/.exec(k);
        return m !== null && stale(m[1]);
      });
      if (old.length) await r.unlink(...old);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

async function distributedPass(): Promise<number> {
  let missing: string | false;
  try {
    missing = (await postgresMissing()) || (await redisMissing()) || (await missingRabbit());
  } catch (e) {
    // SWITCHBOARD_REQUIRE_PEERS=1: a missing server fails the run.
    console.error(`distributed pass: ${(e as Error).message}`);
    return 1;
  }
  if (missing) {
    console.log(`distributed pass skipped: ${missing} (SWITCHBOARD_REQUIRE_PEERS=1 makes this a failure)`);
    return 0;
  }
  await dropStaleTestResources().catch((e: unknown) => console.error(`could not remove stale test schemas and keys: ${(e as Error).message}`));
  // One vhost for the pass: its exchanges and queues meet no other run's.
  const vhost = await createVhost('sb-test');
  try {
    return await runNodeTest(DISTRIBUTED, { ...process.env, SWITCHBOARD_TEST_STACK: 'distributed', SWITCHBOARD_TEST_AMQP_URL: vhost.url });
  } finally {
    await vhost.delete();
  }
}

const passes = (process.env.SWITCHBOARD_TEST_PASSES ?? 'embedded,distributed').split(',').map((p) => p.trim());
const results: string[] = [];
let failed = false;
for (const pass of passes) {
  const started = Date.now();
  let code: number;
  if (pass === 'embedded') code = await runNodeTest(EMBEDDED, { ...process.env, SWITCHBOARD_TEST_STACK: 'embedded' });
  else if (pass === 'distributed') {
    console.log('\n# distributed pass: the registrar, identity and presence suites on PostgreSQL, Redis and RabbitMQ\n');
    code = await distributedPass();
  } else throw new Error(`SWITCHBOARD_TEST_PASSES: unknown pass ${pass} (embedded, distributed)`);
  results.push(`${pass} pass: ${code === 0 ? 'ok' : `failed (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (code !== 0) failed = true;
}
console.log(`\n# ${results.join('; ')}`);
process.exit(failed ? 1 : 0);
