// The log-structured SQLite location store against a real database file: group commit, replay (latest row per
// binding wins, NULL removes), compaction that keeps exactly the live set, and crash points inside compaction.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqliteLocationStore, type SqliteLocationStoreOptions } from '../../src/storage/sqlite/location-store.ts';
import { binding } from '../helpers/bindings.ts';
import { tempDir } from '../helpers/server.ts';

function open(dir: string) {
  const db = openDatabase({ file: path.join(dir, 'db.sqlite'), durability: 'os' });
  // groupMs: a turn's writes are one group whatever the machine's speed (the bound by time has a test of its own).
  return { db, store: new SqliteLocationStore(db, { sliceRows: 7, minGarbage: 10, groupMs: Infinity }) };
}

const sortKeys = (bs: BindingRecord[]) => bs.map((b) => `${b.aor}|${b.key}|${b.cseq}`).sort();

/** A store with these options on a database of its own, removed after `fn`. */
async function withStore(opts: SqliteLocationStoreOptions, fn: (db: DatabaseSync, store: SqliteLocationStore) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const db = openDatabase({ file: path.join(dir, 'db.sqlite'), durability: 'os' });
  try {
    await fn(db, new SqliteLocationStore(db, opts));
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same 200 bindings written twice (two journal rows), for a compaction to rewrite. */
async function twice(store: SqliteLocationStore): Promise<BindingRecord[]> {
  const live = Array.from({ length: 200 }, (_, i) => binding(`u${i}@d`, 'k'));
  await store.write(live.map((b) => ({ op: 'put' as const, binding: b })));
  await store.write(live.map((b) => ({ op: 'put' as const, binding: b })));
  return live;
}

describe('SqliteLocationStore', () => {
  it('commits every write of one event-loop turn as one journal row in one transaction, and each promise after it', async () => {
    const dir = tempDir();
    const { db, store } = open(dir);
    try {
      const writes = Array.from({ length: 50 }, (_, i) => store.write([{ op: 'put', binding: binding(`u${i}@d`, 'k') }]));
      await Promise.all(writes);
      assert.equal(store.commits, 1);
      assert.equal(store.appended, 50);
      assert.equal((db.prepare('SELECT COUNT(*) AS n FROM binding_journal').get() as { n: number }).n, 1);
      await store.write([{ op: 'put', binding: binding('late@d', 'k') }]);
      assert.equal(store.commits, 2);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replays the journal: the latest row of each binding wins and a removal deletes it', async () => {
    const dir = tempDir();
    let { db, store } = open(dir);
    try {
      await store.write([{ op: 'put', binding: binding('a@d', 'k1', { cseq: 1 }) }, { op: 'put', binding: binding('a@d', 'k2') }]);
      await store.write([{ op: 'put', binding: binding('a@d', 'k1', { cseq: 2 }) }]);
      await store.write([{ op: 'delete', aor: 'a@d', key: 'k2' }, { op: 'put', binding: binding('b@d', 'k1') }]);
      db.close();
      ({ db, store } = open(dir)); // a new process reads what the old one committed
      assert.deepEqual(sortKeys(await store.loadAll()), ['a@d|k1|2', 'b@d|k1|1']);
      assert.deepEqual(sortKeys(await store.list('a@d')), ['a@d|k1|2']);
      const row = await store.list('b@d');
      assert.equal(row[0].contact, 'sip:b@192.0.2.1:5060');
      assert.deepEqual(row[0].path, []);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compacts to exactly the live set once garbage outgrows it, with changes arriving during compaction', async () => {
    const dir = tempDir();
    let { db, store } = open(dir);
    try {
      const live = new Map<string, BindingRecord>();
      const put = async (b: BindingRecord) => {
        live.set(b.aor + '|' + b.key, b);
        await store.write([{ op: 'put', binding: b }]);
      };
      for (let round = 1; round <= 5; round++) for (let i = 0; i < 20; i++) await put(binding(`u${i}@d`, 'k', { cseq: round }));
      assert.equal(store.journalWrites, 100);
      // Like the location service: the live set is read lazily, so a slice always holds the current binding.
      const liveSet = { get count() { return live.size; }, *all() { yield* live.values(); } };
      const compaction = store.maintain(liveSet);
      // Changes while compaction runs (it yields between slices): one binding already rewritten and one not yet,
      // refreshed and removed.
      await put(binding('u3@d', 'k', { cseq: 9 }));
      await put(binding('u19@d', 'k', { cseq: 9 }));
      live.delete('u4@d|k');
      live.delete('u18@d|k');
      await store.write([{ op: 'delete', aor: 'u4@d', key: 'k' }, { op: 'delete', aor: 'u18@d', key: 'k' }]);
      await compaction;
      assert.equal(store.compactions, 1);
      assert.ok(store.journalWrites <= 24, `journal holds ${store.journalWrites} rows after compaction`);
      db.close();
      ({ db, store } = open(dir));
      const expected = sortKeys([...live.values()]);
      assert.deepEqual(sortKeys(await store.loadAll()), expected);
      assert.ok(expected.includes('u3@d|k|9') && expected.includes('u19@d|k|9'));
      assert.ok(!expected.some((k) => k.startsWith('u4@d|') || k.startsWith('u18@d|')));
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not compact while garbage is smaller than the live set', async () => {
    const dir = tempDir();
    const { db, store } = open(dir);
    try {
      const bs = Array.from({ length: 30 }, (_, i) => binding(`u${i}@d`, 'k'));
      await store.write(bs.map((b) => ({ op: 'put' as const, binding: b })));
      await store.write(bs.slice(0, 12).map((b) => ({ op: 'put' as const, binding: { ...b, cseq: 2 } })));
      await store.maintain({ count: 30, all: () => bs });
      assert.equal(store.compactions, 0);
      assert.equal(store.journalWrites, 42);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loses nothing when the process dies between the rewrite and the deletion of old rows', async () => {
    const dir = tempDir();
    let { db, store } = open(dir);
    try {
      const bs = Array.from({ length: 15 }, (_, i) => binding(`u${i}@d`, 'k'));
      for (let r = 0; r < 3; r++) await store.write(bs.map((b) => ({ op: 'put' as const, binding: { ...b, cseq: r } })));
      await store.write([{ op: 'delete', aor: 'u0@d', key: 'k' }]);
      const liveNow = bs.slice(1).map((b) => ({ ...b, cseq: 2 }));
      // The rewrite half of a compaction, as a crash right after it would leave the file: the live set appended
      // as one more journal row, nothing deleted yet.
      db.prepare('INSERT INTO binding_journal (writes) VALUES (?)').run(
        JSON.stringify(liveNow.map((b) => ['p', b.aor, b.key, b.contact, b.params, b.q, b.expiresAt, b.callId, b.cseq, b.path, b.instanceId,
          b.regId, b.transport, b.sourceAddress, b.sourcePort, b.localAddress, b.localPort, b.connectionId, b.node, b.userAgent, b.createdAt,
          b.updatedAt, b.accountId])),
      );
      db.close();
      ({ db, store } = open(dir));
      assert.deepEqual(sortKeys(await store.loadAll()), sortKeys(liveNow));
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends a compaction slice when it has held the event loop for sliceMs, before sliceRows', async () => {
    // sliceMs 0: every slice ends at the first check (each 64 bindings) instead of at 1,000.
    await withStore({ sliceRows: 1000, sliceMs: 0, minGarbage: 1 }, async (db, store) => {
      const live = await twice(store);
      await store.compact({ count: live.length, all: () => live });
      const rows = db.prepare('SELECT json_array_length(writes) AS n FROM binding_journal ORDER BY seq').all() as Array<{ n: number }>;
      assert.deepEqual(rows.map((r) => r.n), [64, 64, 64, 8]);
      assert.equal(sortKeys(await store.loadAll()).length, 200);
      assert.equal(store.journalWrites, 200);
    });
  });

  it('commits a write made during a compaction before the next slice, not after it', async () => {
    await withStore({ sliceRows: 1000, sliceMs: 0, minGarbage: 1 }, async (db, store) => {
      const rows = () => (db.prepare('SELECT COUNT(*) AS n FROM binding_journal').get() as { n: number }).n;
      const live = await twice(store);
      const compaction = store.compact({ count: live.length, all: () => live });
      // The first slice is written; a REGISTER's write arrives in the same turn. It is committed (and its waiter
      // released) before the second slice: two journal rows, one slice and the write, besides the two before.
      let atCommit = -1;
      const written = store.write([{ op: 'put', binding: binding('late@d', 'k') }]).then(() => (atCommit = rows()));
      await Promise.all([compaction, written]);
      assert.equal(atCommit, 2 + 1 + 1);
      assert.equal(sortKeys(await store.loadAll()).length, 201);
    });
  });

  it('commits a group that has been open for groupMs at the next write, without waiting for the end of the turn', async () => {
    await withStore({ groupMs: 5 }, async (_db, store) => {
      const settled: number[] = [];
      const busy = (ms: number) => {
        const until = performance.now() + ms;
        while (performance.now() < until);
      };
      // One turn: two writes, 6 ms of work, a third write (the group is 6 ms old: committed with it), a fourth.
      const w = [store.write([{ op: 'put', binding: binding('a@d', 'k') }]), store.write([{ op: 'put', binding: binding('b@d', 'k') }])];
      busy(6);
      w.push(store.write([{ op: 'put', binding: binding('c@d', 'k') }]));
      w.push(store.write([{ op: 'put', binding: binding('d@d', 'k') }]));
      w.forEach((p, i) => void p.then(() => settled.push(i)));
      assert.equal(store.commits, 1, 'the first three, at the third write');
      await Promise.all(w);
      assert.equal(store.commits, 2, 'the fourth at the end of the turn');
      assert.deepEqual(settled, [0, 1, 2, 3]);
      assert.equal(sortKeys(await store.loadAll()).length, 4);
    });
  });
});
