// The embedded database: one SQLite file (node:sqlite) in WAL mode, migrated on open.
//
// Durability: in WAL mode a COMMIT appends to the write-ahead log. With synchronous=NORMAL ("os") the append
// reaches the OS before COMMIT returns, so it survives the process being killed (kill -9) but not a power cut;
// with synchronous=FULL ("fsync") COMMIT also waits for the disk. Group commit (location-store.ts) amortises
// either over every REGISTER that arrived in the same event-loop turn.

import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { sbError } from '../../errors.ts';
import { MIGRATIONS } from './migrations.ts';

export interface SqliteOptions {
  file: string;
  durability: 'os' | 'fsync';
  /** A WalCheckpointer (checkpointer.ts) checkpoints this file off the event loop: this connection never does. */
  checkpointsElsewhere?: boolean;
}

export function openDatabase(opts: SqliteOptions): DatabaseSync {
  if (opts.file !== ':memory:') {
    // 0700/0600 whatever the umask (the file holds HA1s and password hashes): SQLite creates a new database with
    // 0644 & ~umask, so the file is created here first; SQLite gives its -wal and -shm the database file's mode.
    mkdirSync(path.dirname(opts.file), { recursive: true, mode: 0o700 });
    closeSync(openSync(opts.file, 'a', 0o600));
  }
  const db = new DatabaseSync(opts.file);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(`PRAGMA synchronous = ${opts.durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
  db.exec('PRAGMA foreign_keys = ON');
  // Another process (the CLI) may hold the write lock briefly; wait for it rather than fail.
  db.exec('PRAGMA busy_timeout = 5000');
  db.exec('PRAGMA temp_store = MEMORY');
  if (opts.checkpointsElsewhere) db.exec('PRAGMA wal_autocheckpoint = 0');
  migrate(db);
  return db;
}

/** Applies pending migrations, each in its own transaction, recording them in schema_migrations. */
export function migrate(db: DatabaseSync): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
  let count = 0;
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    try {
      db.exec('BEGIN IMMEDIATE');
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      db.exec('COMMIT');
      count++;
    } catch (e) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // no transaction open
      }
      // Another process may have applied it meanwhile.
      const done = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version);
      if (!done) throw sbError('STORE_ERR_MIGRATION', `migration ${m.version} (${m.name}) failed: ${(e as Error).message}`);
    }
  }
  return count;
}

/** Runs `fn` in one write transaction (BEGIN IMMEDIATE: one writer at a time, across connections and processes). */
export function immediate<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const r = fn();
    db.exec('COMMIT');
    return r;
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}
