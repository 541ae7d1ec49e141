// What only the PostgreSQL adapters have, against the machine's server (the behaviour they share with SQLite is in
// postgres-contracts.test.ts): migrations applied once by nodes starting together, the same schema as SQLite, and
// the concurrency guarantees with racing transactions made to overlap for certain: each is held at a lock that
// another connection owns until every racer is waiting there, then all are let go at once.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { digestCredentialsFor } from '../../src/identity/accounts.ts';
import { isSwitchboardError } from '../../src/errors.ts';
import type { NewPhoneDevice, PhoneRegistration } from '../../src/storage/ports.ts';
import { PostgresAccountStore } from '../../src/storage/postgres/account-store.ts';
import { openPostgres, type Db } from '../../src/storage/postgres/database.ts';
import { PG_MIGRATIONS } from '../../src/storage/postgres/migrations.ts';
import { PostgresPhoneStore } from '../../src/storage/postgres/phone-store.ts';
import { PostgresPresenceStore } from '../../src/storage/postgres/presence-store.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';

const REALM = 'example.test';
const DAY = 86_400_000;

const device = (over: Partial<NewPhoneDevice> = {}): NewPhoneDevice => ({
  name: null, auth: { salt: 's', hash: 'h' }, capabilities: {}, fetchesMessages: false, registrationId: null, createdAt: 1, lastSeen: 0, ...over,
});
const credentials = (password: string) => (authUser: string) => digestCredentialsFor(authUser, REALM, password);
const registration = (number: string, over: Partial<PhoneRegistration> = {}): PhoneRegistration => ({
  number, realm: REALM, expectedAccountId: null, primary: device(), credentials: credentials('pw'), registrationLock: null, recoveryPassword: null,
  identityKeys: {}, attributes: {}, now: 1, ...over,
});

describe('PostgreSQL adapters: migrations and schema', { skip: await postgresMissing() }, () => {
  let schema: string;
  beforeEach(() => {
    schema = freshSchema();
  });
  afterEach(() => dropSchema(schema));

  it('nodes starting together apply every migration once, with SQLite’s numbers and names', async () => {
    // The advisory lock serialises them.
    const pools = await Promise.all([1, 2, 3].map(() => openPostgres({ url: PG_URL, schema })));
    try {
      const r = await pools[0].query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
      assert.deepEqual(r.rows.map((x) => [x.version, x.name]), PG_MIGRATIONS.map((m) => [m.version, m.name]));
      assert.deepEqual(PG_MIGRATIONS.map((m) => [m.version, m.name]).filter(([v]) => v !== 2), MIGRATIONS.map((m) => [m.version, m.name]).filter(([v]) => v !== 2));
      assert.deepEqual(PG_MIGRATIONS.map((m) => m.version), MIGRATIONS.map((m) => m.version));
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('has the tables, columns and indexes of the SQLite schema (bindings aside, a table here, a journal there)', async () => {
    const db = await openPostgres({ url: PG_URL, schema });
    const lite = openDatabase({ file: ':memory:', durability: 'os' });
    try {
      // sqlite_sequence is SQLite's own (AUTOINCREMENT's counters: messages.seq must never be reused).
      const liteTables = (lite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'binding_journal' AND name <> 'sqlite_sequence' ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
      const liteColumns = Object.fromEntries(liteTables.map((t) => [t, (lite.prepare(`PRAGMA table_info(${t})`).all() as Array<{ name: string }>).map((c) => c.name)]));
      const cols = await db.query<{ table_name: string; column_name: string }>(
        `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name <> 'bindings' ORDER BY table_name, ordinal_position`,
        [schema],
      );
      const pgColumns: Record<string, string[]> = {};
      for (const c of cols.rows) (pgColumns[c.table_name] ??= []).push(c.column_name);
      assert.deepEqual(pgColumns, liteColumns);
      const liteIndexes = (lite.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as Array<{ name: string }>).map((i) => i.name);
      const pgIndexes = (await db.query<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename <> 'bindings' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' ORDER BY indexname`,
        [schema],
      )).rows.map((i) => i.indexname);
      assert.deepEqual(pgIndexes, liteIndexes);
    } finally {
      lite.close();
      await db.end();
    }
  });
});

describe('PostgreSQL adapters: racing transactions', { skip: await postgresMissing() }, () => {
  let schema: string;
  let app: string;
  let nodes: Db[];
  /** A connection of its own, to hold the locks the racers queue on. */
  let holder: pg.Client;

  beforeEach(async () => {
    schema = freshSchema();
    app = schema; // racers are found in pg_stat_activity by application name
    const url = new URL(PG_URL);
    url.searchParams.set('application_name', app);
    nodes = await Promise.all([1, 2, 3].map(() => openPostgres({ url: url.toString(), schema, poolSize: 4 })));
    holder = new pg.Client({ connectionString: PG_URL });
    await holder.connect();
    await holder.query(`SET search_path TO "${schema}"`);
  });
  afterEach(async () => {
    await holder.end();
    await Promise.all(nodes.map((n) => n.end()));
    await dropSchema(schema);
  });

  /** Resolves once `n` of the nodes' connections wait for a lock. */
  async function waiting(n: number): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      // The holder is inside a transaction, where statistics views are a snapshot taken once: refresh it.
      await holder.query('SELECT pg_stat_clear_snapshot()');
      const r = await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [app]);
      if (r.rows[0].n >= n) return;
      await sleep(5);
    }
    throw new Error(`${n} transactions never waited together`);
  }

  it('registrations of one new number that both found it free: one created, the other a conflict, no error', async () => {
    for (let round = 0; round < 3; round++) {
      const number = `+1555000100${round}`;
      // Inserting into accounts waits; the SELECTs before it do not: every racer has decided the number is free.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE');
      const racing = nodes.map((db, i) => new PostgresPhoneStore(db).register(registration(number, { credentials: credentials(`pw${i}`) })));
      await waiting(nodes.length);
      await holder.query('COMMIT');
      const results = await Promise.all(racing);
      assert.deepEqual(results.map((r) => r.outcome).sort(), ['conflict', 'conflict', 'created']);
      const a = await new PostgresPhoneStore(nodes[0]).findByNumber(number, REALM);
      assert.deepEqual(a?.devices.map((d) => d.deviceId), [1]);
    }
  });

  it('a registration and an account creation that both found the name free: one of them gets it, the other a clean refusal', async () => {
    const number = '+15550002000';
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE');
    const reg = new PostgresPhoneStore(nodes[0]).register(registration(number));
    const acc = new PostgresAccountStore(nodes[1]).create({ username: number, realm: REALM, passwordHash: null, credentials: [] });
    const settled = Promise.allSettled([reg, acc]);
    await waiting(2);
    await holder.query('COMMIT');
    const [r, a] = await settled;
    assert.equal(r.status, 'fulfilled');
    if (r.status === 'fulfilled' && r.value.outcome === 'created') assert.ok(a.status === 'rejected' && isSwitchboardError(a.reason, 'ACCOUNT_ERR_EXISTS'));
    else assert.deepEqual([r.status === 'fulfilled' && r.value.outcome, a.status], ['taken', 'fulfilled']);
  });

  it('device links queued on one account from three nodes: distinct ids, never past the limit', async () => {
    const phone = new PostgresPhoneStore(nodes[0]);
    const r = await phone.register(registration('+15550003000'));
    assert.equal(r.outcome, 'created');
    const id = r.outcome === 'created' ? r.account.accountId : '';
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [id]);
    const racing = Array.from({ length: 9 }, (_, i) => new PostgresPhoneStore(nodes[i % 3]).addDevice(id, device({ name: `d${i}` }), credentials(`pw${i}`), 4));
    await waiting(9);
    await holder.query('COMMIT');
    const results = await Promise.all(racing);
    assert.deepEqual(results.filter((x) => typeof x === 'object').map((d) => d.deviceId).sort(), [2, 3, 4]);
    assert.equal(results.filter((x) => x === 'full').length, 6);
    assert.deepEqual((await phone.findById(id))!.devices.map((d) => d.deviceId), [1, 2, 3, 4]);
  });

  it('expiry leaves an account that a transaction holds for the next sweep, without waiting for it', async () => {
    const phone = new PostgresPhoneStore(nodes[0]);
    const now = 400 * DAY;
    const c = { linkedBefore: now - 45 * DAY, primaryBefore: now - 180 * DAY, accountBefore: now - 120 * DAY };
    const ids: string[] = [];
    for (const number of ['+15550004000', '+15550004001']) {
      const r = await phone.register(registration(number, { primary: device({ lastSeen: now - 200 * DAY }) }));
      const id = r.outcome === 'created' ? r.account.accountId : '';
      await phone.addDevice(id, device({ lastSeen: now - 60 * DAY }), credentials('l'), 5);
      ids.push(id);
    }
    const [held, free] = ids;
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [held]);
    const first = await new PostgresPhoneStore(nodes[1]).expire(c);
    assert.deepEqual(first.accounts.map((a) => a.accountId), [free]);
    assert.deepEqual(first.devices, []);
    await holder.query('ROLLBACK');
    const second = await new PostgresPhoneStore(nodes[2]).expire(c);
    assert.deepEqual(second.accounts.map((a) => [a.accountId, a.authUsers]), [[held, [`${held}.1`, `${held}.2`]]]);
  });

  it('presence: a group waits for the commit in flight, then the writes of the turns meanwhile commit as one', async () => {
    const store = new PostgresPresenceStore(nodes[0]);
    const other = new PostgresPresenceStore(nodes[1]);
    const sub = (id: string, localCseq = 1) => ({
      id, event: 'presence', eventId: null, presentity: 'alice@example.test', watcher: 'bob@example.test', watcherAccountId: null, state: 'active' as const,
      callId: id, localTag: id, remoteTag: 'r', localUri: 'sip:alice@example.test', remoteNameAddr: '<sip:bob@example.test>', remoteTarget: 'sip:bob@192.0.2.1',
      routeSet: [], localCseq, remoteCseq: 1, accept: [], flow: { transport: 'UDP', address: '192.0.2.1', port: 5060, connectionId: null, node: 'n' },
      expiresAt: 10, createdAt: 1, updatedAt: 1,
    });
    await store.write([{ op: 'put-subscription', subscription: sub('x') }]);
    const commits = store.commits;
    await holder.query('BEGIN');
    await holder.query("SELECT 1 FROM presence_subscriptions WHERE id = 'x' FOR UPDATE");
    const done: string[] = [];
    const g1 = store.write([{ op: 'put-subscription', subscription: sub('x', 2) }]).then(() => done.push('g1'));
    await waiting(1); // g1's transaction is held at the row
    const g2 = store.write([{ op: 'put-subscription', subscription: sub('y') }]).then(() => done.push('g2'));
    await sleep(1);
    const g3 = store.write([{ op: 'put-subscription', subscription: sub('z') }]).then(() => done.push('g3'));
    await sleep(50);
    assert.deepEqual(done, []);
    assert.deepEqual((await other.loadSubscriptions()).map((s) => [s.id, s.localCseq]), [['x', 1]], 'nothing of a later group committed first');
    await holder.query('COMMIT');
    await Promise.all([g1, g2, g3]);
    assert.deepEqual(done, ['g1', 'g2', 'g3']);
    assert.equal(store.commits - commits, 2, 'the turns that waited went in one transaction');
    assert.deepEqual((await other.loadSubscriptions()).map((s) => [s.id, s.localCseq]).sort(), [['x', 2], ['y', 1], ['z', 1]]);
  });
});

describe('PostgreSQL adapters: grouped credential lookups', { skip: await postgresMissing() }, () => {
  let schema: string;
  let db: Db;
  beforeEach(async () => {
    schema = freshSchema();
    db = await openPostgres({ url: PG_URL, schema });
  });
  afterEach(async () => {
    await db.end();
    await dropSchema(schema);
  });

  it('answers many concurrent lookups, each right, in a few queries', async () => {
    const store = new PostgresAccountStore(db);
    await store.createMany(Array.from({ length: 40 }, (_, i) => ({ username: `u${i}`, realm: REALM, passwordHash: null, credentials: credentials(`pw${i}`)(`u${i}`) })));
    const off = await store.findByName('u7', REALM);
    await store.update(off!.id, { disabled: true });
    let queries = 0;
    const counting = new Proxy(db, {
      get(target, prop, receiver) {
        if (prop === 'query') return (...args: unknown[]) => (queries++, (target.query as (...a: unknown[]) => unknown)(...args));
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const grouped = new PostgresAccountStore(counting as Db);
    const asks = [...Array.from({ length: 40 }, (_, i) => `u${i}`), 'u3', 'u3', 'nobody'];
    const found = await Promise.all(asks.map((u) => grouped.findSipCredential(u, REALM, 'MD5')));
    const want = (u: string) => credentials(`pw${u.slice(1)}`)(u).find((c) => c.algorithm === 'MD5')!.ha1;
    asks.forEach((u, i) => {
      if (u === 'nobody' || u === 'u7') assert.equal(found[i], null, `${u}: unknown or disabled`);
      else {
        assert.equal(found[i]?.credential.ha1, want(u), u);
        assert.deepEqual(found[i]?.aors, [`${u}@${REALM}`]);
      }
    });
    assert.ok(queries <= 2, `43 lookups took ${queries} queries`);
    const sha = await grouped.findSipCredential('u1', REALM, 'SHA-256');
    assert.equal(sha?.credential.algorithm, 'SHA-256');
    assert.equal(sha?.credential.ha1, credentials('pw1')('u1').find((c) => c.algorithm === 'SHA-256')!.ha1);
  });
});
