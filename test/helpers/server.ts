// Running Switchboard for tests: in-process (fast, for most tests) or as a child process (for signals and
// restarts). Both listen on free ports on 127.0.0.1 with a fresh data directory.
//
// Test stacks: by default the embedded one (SQLite file in the data directory, in-process cache, location index and
// bus). With SWITCHBOARD_TEST_STACK=distributed every server gets the scale-out adapters instead: the machine's
// PostgreSQL (a fresh schema), Redis (a fresh key prefix) and RabbitMQ (SWITCHBOARD_TEST_AMQP_URL, else a fresh
// vhost for this test file), keyed by data directory so that a restart on the same directory finds its state
// again. A missing server fails the file (npm test's runner skips the whole pass instead, unless
// SWITCHBOARD_REQUIRE_PEERS=1). Schemas and keys are removed when the test server closes (or, for a data directory
// the test keeps for a restart, when the file ends).

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openDurable } from '../../src/adapters.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { newAccount } from '../../src/identity/accounts.ts';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { postgresMissing, PG_URL } from './postgres.ts';
import { createVhost, missingRabbit, type TestVhost } from './rabbitmq.ts';
import { redisMissing, REDIS_URL } from './redis.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export function tempDir(prefix = 'sb-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Flags as the CLI takes them; list options may be arrays. */
export type Flags = Record<string, string | string[] | boolean>;

export type TestStack = 'embedded' | 'distributed';

/** The adapters test servers run on (SWITCHBOARD_TEST_STACK). */
export function testStack(): TestStack {
  return process.env.SWITCHBOARD_TEST_STACK === 'distributed' ? 'distributed' : 'embedded';
}

/**
 * For node:test's `skip` option, on tests that are about the SQLite file itself (its journal, opening it
 * directly): false on the embedded stack, else the reason.
 */
export function sqliteOnly(what: string): string | false {
  return testStack() === 'distributed' ? `SQLite-specific (${what}): not run on the distributed stack` : false;
}

/** Test resources on the distributed stack: ids start with the time (base 36), so leftovers of killed runs can be told by age. */
export function testResourceId(): string {
  return `${Date.now().toString(36)}_${randomBytes(5).toString('hex')}`;
}

interface DistributedState {
  schema: string;
  prefix: string;
  nodeId: string;
}

/** Per data directory: the schema, key prefix and node id of the servers that use it. */
const distributed = new Map<string, DistributedState>();
let amqpUrl = process.env.SWITCHBOARD_TEST_AMQP_URL ?? '';
let vhost: TestVhost | null = null;

if (testStack() === 'distributed') {
  const missing = (await postgresMissing()) || (await redisMissing()) || (!amqpUrl && (await missingRabbit()));
  if (missing) throw new Error(`SWITCHBOARD_TEST_STACK=distributed needs PostgreSQL, Redis and RabbitMQ: ${missing}`);
  if (!amqpUrl) {
    vhost = await createVhost('sb-test');
    amqpUrl = vhost.url;
  }
  // Whatever the file's tests left (data directories kept for restarts, servers started from testConfig directly).
  after(async () => {
    for (const dir of [...distributed.keys()]) await releaseStack(dir);
    await vhost?.delete();
  });
}

function stateFor(dataDir: string): DistributedState {
  const key = path.resolve(dataDir);
  let s = distributed.get(key);
  if (!s) {
    const id = testResourceId();
    s = { schema: `t_${id}`, prefix: `sbt:${id}:`, nodeId: `t-${id}` };
    distributed.set(key, s);
  }
  return s;
}

/** The flags that put a server (or a CLI command) on the test stack for this data directory; none on the embedded one. */
export function stackFlags(dataDir: string): Flags {
  if (testStack() === 'embedded') return {};
  const s = stateFor(dataDir);
  return {
    database: PG_URL,
    'database-schema': s.schema,
    cache: REDIS_URL,
    'cache-prefix': s.prefix,
    bus: amqpUrl,
    'node-id': s.nodeId,
  };
}

/** Drops the data directory's schema and Redis keys (distributed stack); the next server on it starts empty. */
export async function releaseStack(dataDir: string): Promise<void> {
  const key = path.resolve(dataDir);
  const s = distributed.get(key);
  if (!s) return;
  distributed.delete(key);
  await dropTestResources(s.schema, s.prefix);
}

/** DROP SCHEMA … CASCADE and UNLINK of every key under the prefix. */
export async function dropTestResources(schema: string | null, prefix: string | null): Promise<void> {
  if (schema !== null) {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      // A server left running by a failed test holds locks: give up after a while rather than hang the file.
      await c.query("SET lock_timeout = '10s'");
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } catch (e) {
      process.stderr.write(`could not drop test schema ${schema}: ${(e as Error).message}\n`);
    } finally {
      await c.end();
    }
  }
  if (prefix !== null) {
    const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    r.on('error', () => {});
    try {
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await r.unlink(...keys);
      } while (cursor !== '0');
    } finally {
      r.disconnect();
    }
  }
}

/** `--data-dir <dir>` and the test stack's flags, for a `switchboard` command run on a test server's state. */
export function cliDataArgs(dataDir: string): string[] {
  return ['--data-dir', dataDir, ...flagArgs(stackFlags(dataDir))];
}

/** Flags as command-line arguments. */
export function flagArgs(flags: Flags): string[] {
  const args: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item === true) args.push(`--${k}`);
      else if (item !== false) args.push(`--${k}`, String(item));
    }
  }
  return args;
}

export function testConfig(dataDir: string, flags: Flags = {}): Config {
  return loadConfig({
    env: {},
    flags: {
      'data-dir': dataDir,
      realm: ['example.test'],
      'sip-host': ['127.0.0.1'],
      'sip-port': '0',
      'sip-tls-port': '0',
      'sip-ws-port': '0',
      'sip-wss-port': '0',
      'http-host': '127.0.0.1',
      'http-port': '0',
      'log-level': process.env.SWITCHBOARD_TEST_LOG ?? 'silent',
      ...stackFlags(dataDir),
      ...flags,
    },
  });
}

export interface TestServer extends RunningServer {
  dataDir: string;
  /** UDP and TCP port. */
  sipPort: number;
  /** The port of one transport (TLS, WS and WSS have their own). */
  portOf(transport: 'UDP' | 'TCP' | 'TLS' | 'WS' | 'WSS'): number;
  httpUrl: string;
  close(): Promise<void>;
}

/** Starts a server in this process; `users` are created first as user@realm → password. */
export async function startTestServer(opts: { flags?: Flags; users?: Record<string, string>; dataDir?: string } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir();
  const config = testConfig(dataDir, opts.flags);
  if (opts.users) await addUsers(config, opts.users);
  const server = await startServer(config, { log: createLogger(config.logLevel) });
  const sipPort = server.sip[0].port;
  return {
    ...server,
    dataDir,
    sipPort,
    portOf: (t) => {
      const l = server.sip.find((x) => x.transport === t);
      if (!l) throw new Error(`the test server does not listen on ${t}`);
      return l.port;
    },
    httpUrl: `http://127.0.0.1:${server.http.port}`,
    async close() {
      await server.stop();
      // A data directory the test chose may be started on again: its state stays until the file ends.
      if (!opts.dataDir) {
        rmSync(dataDir, { recursive: true, force: true });
        await releaseStack(dataDir);
      }
    },
  };
}

/** Creates accounts directly in the configured durable store (as `switchboard user add` does). */
export async function addUsers(config: Config, users: Record<string, string>): Promise<void> {
  const durable = await openDurable(config);
  const list = Object.entries(users).map(([name, pw]) => {
    const at = name.lastIndexOf('@');
    return newAccount(name.slice(0, at), name.slice(at + 1), pw);
  });
  try {
    await durable.accounts.createMany(list);
  } finally {
    await durable.close();
  }
}

/**
 * Runs one SQL statement (`?` placeholders) straight on the data directory's durable store, behind the server's
 * back: the SQLite file, or the PostgreSQL schema on the distributed stack. Tests that check what is stored use it.
 */
export async function storeQuery<T = Record<string, unknown>>(dataDir: string, sql: string, ...params: Array<string | number | null>): Promise<T[]> {
  if (testStack() === 'embedded') {
    const db = new DatabaseSync(path.join(dataDir, 'switchboard.db'));
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${stateFor(dataDir).schema}` });
  await c.connect();
  try {
    let n = 0;
    const r = await c.query(sql.replace(/\?/g, () => `$${++n}`), params);
    // BIGINT (epoch ms and days) as numbers, as the adapters read them.
    return r.rows.map((row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'string' && r.fields.find((f) => f.name === k)?.dataTypeID === 20 ? Number(v) : v]))) as T[];
  } finally {
    await c.end();
  }
}

export interface ChildServer {
  proc: ChildProcess;
  sipPort: number;
  httpPort: number;
  /** Every log line so far (JSON objects). */
  logs: Array<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The flags of a child-process server: loopback, free ports, the test stack's adapters, then `flags`. */
export function childFlags(dataDir: string, flags: Flags = {}): Flags {
  return {
    'data-dir': dataDir,
    realm: 'example.test',
    'sip-host': '127.0.0.1',
    'sip-port': '0',
    'sip-tls-port': '0',
    'sip-ws-port': '0',
    'sip-wss-port': '0',
    'http-host': '127.0.0.1',
    'http-port': '0',
    'log-level': 'info',
    ...stackFlags(dataDir),
    ...flags,
  };
}

/** Starts `switchboard start` as a child process on the project's Node and waits until it is serving. */
export async function spawnServer(dataDir: string, flags: Flags = {}): Promise<ChildServer> {
  const args = [path.join(ROOT, 'src/cli.ts'), 'start', ...flagArgs(childFlags(dataDir, flags))];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      // Not left running behind the failed test, holding its ports and data directory.
      proc.kill('SIGKILL');
      reject(new Error(`server did not start within 15 s; stderr: ${stderr}`));
    }, 15000);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const obj = JSON.parse(line) as Record<string, unknown>;
          logs.push(obj);
          if (obj.msg === 'Switchboard started') {
            clearTimeout(timer);
            resolve(obj);
          }
        } catch {
          // not JSON
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting; stderr: ${stderr}`));
    });
  });
  const sip = (started.sip as string[])[0];
  const http = started.http as string;
  return {
    proc,
    sipPort: Number(sip.slice(sip.lastIndexOf(':') + 1)),
    httpPort: Number(http.slice(http.lastIndexOf(':') + 1)),
    logs,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      return new Promise((resolve) => {
        // A process ended by a signal keeps exitCode null (signalCode is set): it has exited all the same, and
        // no 'exit' event will come again.
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      });
    },
  };
}

/** Creates an admin account in a running test server and returns an access token for it. */
export async function adminToken(server: RunningServer, login = 'admin@example.test'): Promise<string> {
  let account = await server.accounts.findByName(login.split('@')[0], login.split('@')[1]);
  account ??= await server.accountService.create(login, 'admin-password', ['admin']);
  return (await server.tokens.issue(account)).token;
}
