// Running Switchboard for tests: in-process (fast, for most tests) or as a child process (for signals and
// restarts). Both listen on free ports on 127.0.0.1 with a fresh data directory.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/config.ts';
import { newAccount } from '../../src/identity/accounts.ts';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer, databaseFile } from '../../src/server.ts';
import { SqliteAccountStore } from '../../src/storage/sqlite/account-store.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export function tempDir(prefix = 'sb-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Flags as the CLI takes them; list options may be arrays. */
export type Flags = Record<string, string | string[] | boolean>;

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
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Creates accounts directly in the data directory's database (as `switchboard user add` does). */
export async function addUsers(config: Config, users: Record<string, string>): Promise<void> {
  const db = openDatabase({ file: databaseFile(config), durability: 'os' });
  const store = new SqliteAccountStore(db);
  const list = Object.entries(users).map(([name, pw]) => {
    const at = name.lastIndexOf('@');
    return newAccount(name.slice(0, at), name.slice(at + 1), pw);
  });
  try {
    await store.createMany(list);
  } finally {
    db.close();
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

/** Starts `switchboard start` as a child process on the project's Node and waits until it is serving. */
export async function spawnServer(dataDir: string, flags: Flags = {}): Promise<ChildServer> {
  const all: Flags = {
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
    ...flags,
  };
  const args = [path.join(ROOT, 'src/cli.ts'), 'start'];
  for (const [k, v] of Object.entries(all)) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item === true) args.push(`--${k}`);
      else if (item !== false) args.push(`--${k}`, String(item));
    }
  }
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
