// A 200 OK to REGISTER is sent only once the binding is durable (DESIGN.md, "State, caching and durability"):
// the server runs as a child process, 1,000 accounts register over real sockets, the server is killed (SIGKILL, or
// a graceful SIGTERM while registrations are in flight, over UDP and over TCP) and restarted on the same data
// directory, and every address of record that received a 200 OK must still have its binding, seen both by the new
// process (GET /v1/registrations) and by `switchboard reg list` reading the database.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { createLogger } from '../../src/log.ts';
import { MemoryLocationIndex } from '../../src/storage/memory/location-index.ts';
import { LocationConflict, LocationService, type BindingChange } from '../../src/registrar/location-service.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqliteLocationStore } from '../../src/storage/sqlite/location-store.ts';
import { addUsers, cliDataArgs, ROOT, spawnServer, sqliteOnly, tempDir, testConfig, type ChildServer } from '../helpers/server.ts';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const run = promisify(execFile);
const DOMAIN = 'example.test';
const N = 1000;
const user = (i: number) => `dur${i}`;
const contactOf = (i: number) => `sip:${user(i)}@192.0.2.${1 + (i % 250)}:${5060 + Math.floor(i / 250)}`;

async function createUsers(dataDir: string): Promise<void> {
  const users: Record<string, string> = {};
  for (let i = 0; i < N; i++) users[`${user(i)}@${DOMAIN}`] = `pw-${user(i)}`;
  await addUsers(testConfig(dataDir), users);
  // GET /v1/registrations is for admins: one, made as an operator would.
  await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'user', 'add', `admin@${DOMAIN}`, '--password', 'admin-pw', '--role', 'admin', ...cliDataArgs(dataDir)]);
}

/** An admin's access token from the running server (POST /auth/login). */
async function login(server: ChildServer): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: `admin@${DOMAIN}`, password: 'admin-pw' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { access_token: string }).access_token;
}

interface Registration {
  /** Indexes of the accounts whose REGISTER was answered 200 OK. */
  acked: Set<number>;
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  /** Makes the workers stop after their current request (and fail any request still waiting). */
  stop(): void;
}

/**
 * Registers accounts 0..N-1 through `concurrency` clients (UDP sockets or TCP connections), each running one digest
 * REGISTER (401, answer, 200) after another. A request lost or unanswered is tried once more with a new transaction.
 */
function registerAll(port: number, concurrency: number, transport: 'UDP' | 'TCP' = 'UDP'): Registration {
  const acked = new Set<number>();
  let next = 0;
  let stopped = false;
  const clients: SipTestClient[] = [];
  async function once(c: SipTestClient, i: number, attempt: number): Promise<boolean> {
    const res = await register(c, {
      user: user(i),
      password: `pw-${user(i)}`,
      domain: DOMAIN,
      contact: `<${contactOf(i)}>`,
      expires: 3600,
      // A retry is another registration (new Call-ID): the first may have been stored with its answer lost.
      callId: `durability-${i}-${attempt}@test`,
    });
    return res.status === 200;
  }
  async function worker(): Promise<void> {
    const c = await SipTestClient.open(transport, port);
    clients.push(c);
    try {
      while (!stopped && next < N) {
        const i = next++;
        for (let attempt = 0; attempt < 2 && !stopped; attempt++) {
          try {
            if (await once(c, i, attempt)) acked.add(i);
            break;
          } catch {
            // timed out (or stopped): retried once with fresh transactions
          }
        }
      }
    } finally {
      c.close();
    }
  }
  const done = Promise.all(Array.from({ length: concurrency }, worker)).then(() => undefined);
  return {
    acked,
    done,
    stop() {
      stopped = true;
      for (const c of clients) c.close();
    },
  };
}

interface HttpRegistrations {
  total: number;
  registrations: Array<{ aor: string; bindings: Array<{ contact: string; cseq: number }> }>;
}

/** The new process's view: aor → contacts. */
async function httpBindings(server: ChildServer): Promise<Map<string, string[]>> {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1/registrations?realm=${DOMAIN}&limit=10000`, {
    headers: { authorization: `Bearer ${await login(server)}` },
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as HttpRegistrations;
  return new Map(body.registrations.map((r) => [r.aor, r.bindings.map((b) => b.contact)]));
}

/** `switchboard reg list --json` on the data directory: aor → contacts. */
async function cliBindings(dataDir: string): Promise<Map<string, string[]>> {
  const { stdout } = await run(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'reg', 'list', '--json', ...cliDataArgs(dataDir)], { maxBuffer: 64 << 20 });
  const rows = JSON.parse(stdout) as Array<{ aor: string; contact: string }>;
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.aor, [...(out.get(r.aor) ?? []), r.contact]);
  return out;
}

/** Every acknowledged account has exactly its own binding in `view`. */
function assertAllKept(view: Map<string, string[]>, acked: Set<number>, where: string): void {
  const missing: string[] = [];
  for (const i of acked) {
    const contacts = view.get(`${user(i)}@${DOMAIN}`);
    if (!contacts || contacts.length !== 1 || contacts[0] !== contactOf(i)) missing.push(`${user(i)}: ${JSON.stringify(contacts ?? null)}`);
  }
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} acknowledged registrations not found in ${where}`);
}

/** Until `pred` holds, polling. */
async function until(pred: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
}

describe('durability of acknowledged registrations', { timeout: 180_000 }, () => {
  it('1,000 registrations acknowledged, SIGKILL, restart: every binding is there (HTTP and CLI)', async () => {
    const dataDir = tempDir('sb-durability-');
    let server: ChildServer | null = null;
    try {
      await createUsers(dataDir);
      server = await spawnServer(dataDir);
      const reg = registerAll(server.sipPort, 20);
      await reg.done;
      assert.equal(reg.acked.size, N, 'every registration answered 200 OK');
      // Killed right after the last 200 OK: the last group commit is the one at stake.
      await server.kill('SIGKILL');
      server = await spawnServer(dataDir);
      const primed = server.logs.find((l) => l.msg === 'location service primed from the store');
      assert.equal(primed?.bindings, N);
      assertAllKept(await httpBindings(server), reg.acked, 'GET /v1/registrations');
      assertAllKept(await cliBindings(dataDir), reg.acked, 'switchboard reg list');
    } finally {
      await server?.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  for (const [signal, transport] of [
    ['SIGKILL', 'UDP'],
    ['SIGTERM', 'UDP'],
    ['SIGKILL', 'TCP'],
    ['SIGTERM', 'TCP'],
  ] as const) {
    it(`${signal} while registrations are in flight over ${transport} loses none that was acknowledged`, async () => {
      const dataDir = tempDir('sb-durability-');
      let server: ChildServer | null = null;
      try {
        await createUsers(dataDir);
        server = await spawnServer(dataDir);
        const reg = registerAll(server.sipPort, 20, transport);
        // Strike mid-stream: some hundreds acknowledged, twenty more in flight.
        await until(() => reg.acked.size >= 300, 60_000);
        assert.ok(reg.acked.size >= 300 && reg.acked.size < N, `${reg.acked.size} acknowledged when the signal was sent`);
        const code = await server.kill(signal);
        if (signal === 'SIGTERM') assert.equal(code, 0, 'a graceful stop exits 0');
        reg.stop();
        await reg.done;
        const acked = new Set(reg.acked); // nothing can be acknowledged after the process is gone
        server = await spawnServer(dataDir);
        const http = await httpBindings(server);
        assertAllKept(http, acked, 'GET /v1/registrations');
        assertAllKept(await cliBindings(dataDir), acked, 'switchboard reg list');
        if (signal === 'SIGTERM') {
          // A graceful stop answers what it made durable before it goes.
          assert.equal(http.size, acked.size, 'every binding stored was acknowledged');
        } else {
          // Whatever else survived was in flight when the process died (durable, its 200 OK lost with it).
          assert.ok(http.size - acked.size <= 20, `${http.size - acked.size} bindings beyond those acknowledged`);
        }
      } finally {
        await server?.kill('SIGKILL');
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});

// The SQLite location store is a journal compacted by rewriting the live set in slices, yielding to the event loop
// between slices while REGISTERs go on. Whatever the interleaving, the journal must replay to exactly what the
// location service holds: a binding removed or refreshed while the compaction runs must not come back in its old
// form (a removal undone, an acknowledged refresh rolled back), and one the compaction walks past must not be lost.
describe('location journal compaction while bindings change', { skip: sqliteOnly('the SQLite location journal and its compaction') }, () => {
  const log = createLogger('silent');
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

  /** A location service on a journal file compacting in slices of one row, and a clock the test moves. */
  async function open(dir: string, clock: { t: number }) {
    const db = openDatabase({ file: path.join(dir, 'location.db'), durability: 'os' });
    const store = new SqliteLocationStore(db, { sliceRows: 1, minGarbage: 1 });
    const location = new LocationService({ index: new MemoryLocationIndex(), store, bus: new InProcessBus(log), log, now: () => clock.t });
    await location.prime();
    return {
      location,
      store,
      close() {
        location.close();
        db.close();
      },
    };
  }

  let seq = 0;
  function binding(aor: string, key: string, expiresAt: number): BindingRecord {
    return {
      aor, key, contact: `sip:${key}@192.0.2.1`, params: '', q: null, expiresAt, callId: 'c', cseq: ++seq, path: [],
      instanceId: null, regId: null, transport: 'UDP', sourceAddress: '192.0.2.1', sourcePort: 5060,
      localAddress: '127.0.0.1', localPort: 5060, connectionId: null, node: 'test', userAgent: null, createdAt: 0,
      updatedAt: 0, accountId: null,
    };
  }

  /** What the registrar does: the AOR's next bindings and the changes leading there. */
  /** One REGISTER's worth of change, done as the registrar does: read, compute, compare-and-set, retry on conflict. */
  async function change(location: LocationService, aor: string, key: string, op: 'put' | 'remove', expiresAt: number): Promise<void> {
    for (;;) {
      const state = await location.read(aor);
      const next = state.bindings.slice();
      const changes: BindingChange[] = [];
      const i = next.findIndex((b) => b.key === key);
      if (op === 'remove') {
        if (i < 0) return;
        changes.push({ event: 'removed', binding: next[i] });
        next.splice(i, 1);
      } else {
        const b = binding(aor, key, expiresAt);
        if (i >= 0) next[i] = b;
        else next.push(b);
        changes.push({ event: i >= 0 ? 'refreshed' : 'added', binding: b });
      }
      try {
        return await location.apply(aor, state, next, changes);
      } catch (e) {
        if (!(e instanceof LocationConflict)) throw e;
      }
    }
  }

  const describeAll = async (location: LocationService) => {
    const out: string[] = [];
    for await (const [, list] of location.entries()) for (const b of list) out.push(`${b.aor}/${b.key}:${b.cseq}`);
    return out.sort();
  };

  /** The journal as a restarted server would see it. */
  async function afterRestart(dir: string, clock: { t: number }): Promise<string[]> {
    const again = await open(dir, clock);
    try {
      return await describeAll(again.location);
    } finally {
      again.close();
    }
  }

  it('a refresh and a removal made while the compaction runs are what a restart finds', async () => {
    const dir = tempDir('sb-compaction-');
    const clock = { t: Date.now() };
    const far = clock.t + 3_600_000;
    const { location, store, close } = await open(dir, clock);
    try {
      // One address of record with eight devices, each registered twice (garbage for the compaction to drop).
      for (let round = 0; round < 2; round++) for (let k = 0; k < 8; k++) await change(location, 'multi@x', `k${k}`, 'put', far);
      const done = location.maintain();
      await tick(); // the compaction has written a slice or two and yields; the last devices are still ahead of it
      await Promise.all([change(location, 'multi@x', 'k7', 'put', far), change(location, 'multi@x', 'k6', 'remove', far)]);
      await done;
      assert.equal(store.compactions, 1, 'the compaction ran');
      assert.deepEqual(await afterRestart(dir, clock), await describeAll(location));
      assert.ok(!(await describeAll(location)).some((d) => d.startsWith('multi@x/k6:')), 'k6 was removed');
    } finally {
      close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a binding expiring while the compaction runs does not make it skip (and lose) the next one', async () => {
    const dir = tempDir('sb-compaction-');
    const clock = { t: Date.now() };
    const far = clock.t + 3_600_000;
    const { location, store, close } = await open(dir, clock);
    try {
      await change(location, 'multi@x', 'k0', 'put', clock.t + 2_000);
      for (let round = 0; round < 3; round++) for (let k = 1; k < 8; k++) await change(location, 'multi@x', `k${k}`, 'put', far);
      const done = location.maintain();
      await tick();
      clock.t += 5_000;
      await location.expire(); // takes k0 out of the AOR's array in place
      await done;
      assert.equal(store.compactions, 1, 'the compaction ran');
      const live = await describeAll(location);
      assert.equal(live.length, 7);
      assert.deepEqual(await afterRestart(dir, clock), live);
    } finally {
      close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('under random churn during compactions, the journal always replays to the live set', async () => {
    const dir = tempDir('sb-compaction-');
    const clock = { t: Date.now() };
    const far = clock.t + 3_600_000;
    const { location, store, close } = await open(dir, clock);
    // A fixed pseudo-random sequence (xorshift32): failures reproduce.
    let x = 0x9e3779b9;
    const rand = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const churn = (n: number) =>
      Promise.all(
        Array.from({ length: n }, () => change(location, `a${rand(8)}@x`, `k${rand(4)}`, rand(10) < 3 ? 'remove' : 'put', far)),
      );
    try {
      for (let round = 0; round < 150; round++) {
        await churn(20);
        const done = location.maintain();
        for (let k = 0; k < 6; k++) {
          await tick();
          await churn(3);
        }
        await done;
        const disk = (await store.list()).map((b) => `${b.aor}/${b.key}:${b.cseq}`).sort();
        assert.deepEqual(disk, await describeAll(location), `round ${round}`);
      }
      assert.ok(store.compactions > 100);
    } finally {
      close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
