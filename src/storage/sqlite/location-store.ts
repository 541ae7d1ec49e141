// Location bindings in SQLite, log-structured (see migration 2): an append-only journal with group commit and
// compaction by rewrite.
//
// Group commit: writes requested during one event-loop turn are appended in one transaction at the end of the
// turn (setImmediate), and every waiter is released after the COMMIT. A REGISTER's 200 OK therefore follows its
// own durable write without paying one commit per REGISTER.
//
// Compaction: when the journal holds more garbage rows than live bindings (and at least `minGarbage`), the live
// set is appended afresh in small slices (so the event loop is never held for long), then every row older than
// the rewrite is deleted, again in slices. A crash at any point leaves a journal whose replay (latest row per
// key wins) gives the same bindings. Each change is thus written about twice in the long run, always by
// appending.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { sbError } from '../../errors.ts';
import type { BindingRecord, BindingWrite, LiveBindings, LocationStore } from '../ports.ts';

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface SqliteLocationStoreOptions {
  /** Rows per compaction slice; each slice is one short transaction. */
  sliceRows?: number;
  /** Garbage rows to accumulate before compacting, at least. */
  minGarbage?: number;
}

export class SqliteLocationStore implements LocationStore {
  private readonly db: DatabaseSync;
  private readonly append: StatementSync;
  private pending: BindingWrite[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  private rows = -1;
  private compacting = false;
  private readonly sliceRows: number;
  private readonly minGarbage: number;
  /** Commits so far and rows in them: the group-commit ratio. */
  commits = 0;
  appended = 0;
  compactions = 0;

  constructor(db: DatabaseSync, opts: SqliteLocationStoreOptions = {}) {
    this.db = db;
    this.append = db.prepare('INSERT INTO binding_journal (aor, binding_key, record) VALUES (?, ?, ?)');
    this.sliceRows = opts.sliceRows ?? 1000;
    this.minGarbage = opts.minGarbage ?? 50_000;
  }

  write(ops: BindingWrite[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    for (let i = 0; i < ops.length; i++) this.pending.push(ops[i]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Appends every pending write in one transaction, then releases the waiters. */
  private readonly flush = (): void => {
    this.scheduled = false;
    const ops = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      this.db.exec('BEGIN');
      try {
        for (let i = 0; i < ops.length; i++) {
          const op = ops[i];
          if (op.op === 'put') this.append.run(op.binding.aor, op.binding.key, JSON.stringify(op.binding));
          else this.append.run(op.aor, op.key, null);
        }
        this.db.exec('COMMIT');
      } catch (e) {
        this.db.exec('ROLLBACK');
        throw e;
      }
    } catch (e) {
      const err = sbError('STORE_ERR_WRITE', `binding write failed: ${(e as Error).message}`);
      for (const w of waiters) w.reject(err);
      return;
    }
    this.commits++;
    this.appended += ops.length;
    if (this.rows >= 0) this.rows += ops.length;
    for (const w of waiters) w.resolve();
  };

  /** Replays the journal: the latest row of each (aor, key) is the binding, a NULL record its removal. */
  private replay(aor?: string): BindingRecord[] {
    const stmt = aor === undefined
      ? this.db.prepare('SELECT aor, binding_key, record FROM binding_journal ORDER BY seq DESC')
      : this.db.prepare('SELECT aor, binding_key, record FROM binding_journal WHERE aor = ? ORDER BY seq DESC');
    const seen = new Set<string>();
    const out: BindingRecord[] = [];
    let count = 0;
    for (const row of (aor === undefined ? stmt.iterate() : stmt.iterate(aor)) as Iterable<{ aor: string; binding_key: string; record: string | null }>) {
      count++;
      const id = row.aor + '\u0000' + row.binding_key;
      if (seen.has(id)) continue;
      seen.add(id);
      if (row.record !== null) out.push(JSON.parse(row.record) as BindingRecord);
    }
    if (aor === undefined) this.rows = count;
    return out;
  }

  async loadAll(): Promise<BindingRecord[]> {
    return this.replay();
  }

  async list(aor?: string): Promise<BindingRecord[]> {
    return this.replay(aor).sort((a, b) => (a.aor < b.aor ? -1 : a.aor > b.aor ? 1 : a.key < b.key ? -1 : 1));
  }

  /** Journal rows, counted once at load and tracked after. */
  get journalRows(): number {
    if (this.rows < 0) this.rows = (this.db.prepare('SELECT COUNT(*) AS n FROM binding_journal').get() as { n: number }).n;
    return this.rows;
  }

  async maintain(live: LiveBindings): Promise<void> {
    if (this.compacting) return;
    const garbage = this.journalRows - live.count;
    if (garbage < this.minGarbage || garbage < live.count) return;
    this.compacting = true;
    try {
      await this.compact(live);
    } finally {
      this.compacting = false;
    }
  }

  /** Rewrites the live set after the journal's current end, then deletes everything before the rewrite. */
  async compact(live: LiveBindings): Promise<void> {
    const last = this.db.prepare('SELECT MAX(seq) AS s FROM binding_journal').get() as { s: number | null };
    if (last.s === null) return;
    const cutoff = last.s + 1;
    // Everything appended from here on (rewrite rows and new changes alike) has seq >= cutoff.
    let batch: BindingRecord[] = [];
    for (const b of live.all()) {
      batch.push(b);
      if (batch.length >= this.sliceRows) {
        this.appendSlice(batch);
        batch = [];
        await yieldToLoop();
      }
    }
    if (batch.length) this.appendSlice(batch);
    const del = this.db.prepare('DELETE FROM binding_journal WHERE seq < ? AND seq >= ?');
    const first = (this.db.prepare('SELECT MIN(seq) AS s FROM binding_journal').get() as { s: number }).s;
    for (let lo = first; lo < cutoff; lo += this.sliceRows * 5) {
      const hi = Math.min(cutoff, lo + this.sliceRows * 5);
      const r = del.run(hi, lo);
      if (this.rows >= 0) this.rows -= Number(r.changes);
      await yieldToLoop();
    }
    this.compactions++;
  }

  private appendSlice(batch: BindingRecord[]): void {
    this.db.exec('BEGIN');
    try {
      for (const b of batch) this.append.run(b.aor, b.key, JSON.stringify(b));
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    if (this.rows >= 0) this.rows += batch.length;
  }

  close(): void {
    if (this.scheduled) this.flush();
  }
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
