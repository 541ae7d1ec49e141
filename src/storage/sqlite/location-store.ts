// Location bindings in SQLite, log-structured (see migration 2): an append-only journal written by group commit
// and compacted by rewrite.
//
// Group commit: the writes requested during one event-loop turn become ONE journal row (a JSON array of writes)
// appended in one transaction at the end of the turn (setImmediate); every waiter is released after the COMMIT.
// A REGISTER's 200 OK therefore follows its own durable write without paying a commit, or even a statement, of
// its own. Measured (bench/RESULTS.md): one row per write cost 4.9 us each at 480 bytes of JSON; batching the
// writes of a turn into one row of positional arrays costs about 2 us per write.
// A group is also committed as soon as it has been open for `groupMs` of the turn: SIPp, like a busy edge proxy,
// delivers REGISTERs in bursts, and every 200 OK of a burst waited for its last REGISTER and then the commit. With
// 0.25 ms the server's own REGISTER → 200 p50 went from 0.45–0.60 to 0.20–0.23 ms and its p99 from 2.0–2.7 to
// 0.8–1.0 ms at 10,000 REGISTERs a second (bench:latency, bench/RESULTS.md); a commit's own cost is a few µs.
//
// Compaction: when the journal holds more superseded writes than live bindings (and at least `minGarbage`), the
// live set is appended afresh in slices of `sliceRows` (one row each, so the event loop is never held for long),
// then every row older than the rewrite is deleted, again in slices. A crash at any point leaves a journal whose
// replay (latest write per binding wins) gives the same bindings.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { sbError } from '../../errors.ts';
import { decodePut, encodePut, type StoredWrite } from '../binding-codec.ts';
import type { BindingRecord, BindingWrite, LiveBindings, LocationStore } from '../ports.ts';

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface SqliteLocationStoreOptions {
  /** Bindings per compaction slice at most; each slice is one row in one short transaction. */
  sliceRows?: number;
  /** Event-loop time a compaction slice may take (ms): a slice ends at sliceRows or at this, whichever comes first. */
  sliceMs?: number;
  /** Superseded writes to accumulate before compacting, at least. */
  minGarbage?: number;
  /** Event-loop time a group of writes may wait for company before it is committed (ms). */
  groupMs?: number;
}

export class SqliteLocationStore implements LocationStore {
  private readonly db: DatabaseSync;
  private readonly append: StatementSync;
  private pending: StoredWrite[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** performance.now() of the pending group's first write. */
  private groupStarted = 0;
  private readonly groupMs: number;
  /** Writes held in the journal (live and superseded); -1 until counted. */
  private writesInJournal = -1;
  private compacting = false;
  private readonly sliceRows: number;
  private readonly sliceMs: number;
  private readonly minGarbage: number;
  /** Commits so far and the writes they carried: the group-commit ratio. */
  commits = 0;
  appended = 0;
  compactions = 0;

  constructor(db: DatabaseSync, opts: SqliteLocationStoreOptions = {}) {
    this.db = db;
    this.append = db.prepare('INSERT INTO binding_journal (writes) VALUES (?)');
    this.sliceRows = opts.sliceRows ?? 1000;
    this.sliceMs = opts.sliceMs ?? 1;
    this.minGarbage = opts.minGarbage ?? 50_000;
    this.groupMs = opts.groupMs ?? 0.25;
  }

  write(ops: BindingWrite[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      this.pending.push(op.op === 'put' ? encodePut(op.binding) : ['d', op.aor, op.key]);
    }
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      this.groupStarted = performance.now();
      setImmediate(this.flush);
    } else if (performance.now() - this.groupStarted >= this.groupMs) {
      // Committed now; the waiters' continuations (the 200 OKs) run as soon as the current request's handler
      // returns, before the rest of the burst. The immediate already queued commits the next group.
      this.flush();
      this.scheduled = true;
      this.groupStarted = performance.now();
    }
    return done;
  }

  /** Appends every pending write as one row in one transaction, then releases the waiters. */
  private readonly flush = (): void => {
    this.scheduled = false;
    const writes = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    if (writes.length === 0) return;
    try {
      this.appendRow(writes);
    } catch (e) {
      const err = sbError('STORE_ERR_WRITE', `binding write failed: ${(e as Error).message}`);
      for (const w of waiters) w.reject(err);
      return;
    }
    this.commits++;
    this.appended += writes.length;
    for (const w of waiters) w.resolve();
  };

  private appendRow(writes: StoredWrite[]): void {
    // One statement in autocommit: SQLite makes it its own transaction, as durable as BEGIN … COMMIT around it,
    // and rolled back whole if it fails. The explicit pair cost two more statements compiled from text per group
    // commit (db.exec prepares each time).
    this.append.run(JSON.stringify(writes));
    if (this.writesInJournal >= 0) this.writesInJournal += writes.length;
  }

  /** Replays the journal newest first: the latest write of each (aor, key) decides, a 'd' removes. */
  private replay(aor?: string): BindingRecord[] {
    const seen = new Set<string>();
    const out: BindingRecord[] = [];
    let count = 0;
    for (const row of this.db.prepare('SELECT writes FROM binding_journal ORDER BY seq DESC').iterate() as Iterable<{ writes: string }>) {
      const writes = JSON.parse(row.writes) as StoredWrite[];
      count += writes.length;
      for (let i = writes.length - 1; i >= 0; i--) {
        const w = writes[i];
        if (aor !== undefined && w[1] !== aor) continue;
        const id = (w[1] as string) + '\u0000' + (w[2] as string);
        if (seen.has(id)) continue;
        seen.add(id);
        if (w[0] === 'p') out.push(decodePut(w));
      }
    }
    if (aor === undefined) this.writesInJournal = count;
    return out;
  }

  async loadAll(): Promise<BindingRecord[]> {
    return this.replay();
  }

  async list(aor?: string): Promise<BindingRecord[]> {
    return this.replay(aor).sort((a, b) => (a.aor < b.aor ? -1 : a.aor > b.aor ? 1 : a.key < b.key ? -1 : 1));
  }

  /** Writes in the journal (live and superseded), counted once and tracked after. */
  get journalWrites(): number {
    if (this.writesInJournal < 0) {
      this.writesInJournal = (this.db.prepare('SELECT COALESCE(SUM(json_array_length(writes)), 0) AS n FROM binding_journal').get() as { n: number }).n;
    }
    return this.writesInJournal;
  }

  async maintain(live: LiveBindings): Promise<void> {
    if (this.compacting) return;
    const garbage = this.journalWrites - live.count;
    if (garbage < this.minGarbage || garbage < live.count) return;
    this.compacting = true;
    try {
      await this.compact(live);
    } finally {
      this.compacting = false;
    }
  }

  /** Rewrites the live set after the journal's current end, then deletes every row before the rewrite. */
  async compact(live: LiveBindings): Promise<void> {
    if (this.scheduled) this.flush(); // pending writes go before the cutoff, in order
    const last = this.db.prepare('SELECT MAX(seq) AS s FROM binding_journal').get() as { s: number | null };
    if (last.s === null) return;
    const cutoff = last.s + 1;
    // Everything appended from here on (rewrite rows and new changes alike) has seq >= cutoff. Each slice is
    // gathered and written in the same turn, so it holds the bindings as they are when written (the index changes
    // before the journal, so a slice is never older than a write it follows). A slice also ends when it has held the
    // event loop for sliceMs: 1,000 bindings took 1.2 ms alone (bench/tools/compaction-stalls.ts), but on a server
    // at 6,400 REGISTERs a second compaction filled stretches of 11–19 ms (bench/tools/cpuprofile-stalls.ts), and
    // every REGISTER arriving meanwhile waited for them.
    let batch: StoredWrite[] = [];
    let started = performance.now();
    for (const b of live.all()) {
      batch.push(encodePut(b));
      if (batch.length >= this.sliceRows || ((batch.length & 63) === 0 && performance.now() - started >= this.sliceMs)) {
        this.appendRow(batch);
        batch = [];
        await this.nextTurn();
        started = performance.now();
      }
    }
    if (batch.length) this.appendRow(batch);
    const count = this.db.prepare('SELECT COALESCE(SUM(json_array_length(writes)), 0) AS n FROM binding_journal WHERE seq >= ? AND seq < ?');
    const del = this.db.prepare('DELETE FROM binding_journal WHERE seq >= ? AND seq < ?');
    const first = (this.db.prepare('SELECT MIN(seq) AS s FROM binding_journal').get() as { s: number }).s;
    const step = 20;
    started = performance.now();
    for (let lo = first; lo < cutoff; lo += step) {
      const hi = Math.min(cutoff, lo + step);
      const n = (count.get(lo, hi) as { n: number }).n;
      del.run(lo, hi);
      if (this.writesInJournal >= 0) this.writesInJournal -= n;
      if (performance.now() - started >= this.sliceMs) {
        await this.nextTurn();
        started = performance.now();
      }
    }
    this.compactions++;
  }

  /**
   * Lets the event loop turn between compaction slices, and commits first what the turn's requests wrote: the
   * slice's immediate was queued a turn earlier than the group commit's, so without this every REGISTER of the turn
   * waited for the next slice before its 200 OK. After the commit the loop turns once more, so the requests'
   * continuations (their responses) run before the slice.
   */
  private async nextTurn(): Promise<void> {
    await yieldToLoop();
    if (this.scheduled) {
      this.flush();
      await yieldToLoop();
    }
  }

  close(): void {
    if (this.scheduled) this.flush();
  }
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
