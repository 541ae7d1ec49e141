// PostgreSQL (node-postgres pool) for the distributed deployment: the same schema versions as SQLite, migrated
// at start under an advisory lock so that several nodes starting together migrate once.

import pg from 'pg';
import { sbError } from '../../errors.ts';
import { PG_MIGRATIONS } from './migrations.ts';

export interface PostgresOptions {
  url: string;
  /** Schema to work in (created if missing); lets several deployments or test runs share a database. */
  schema: string;
  poolSize?: number;
}

export type Db = pg.Pool;

/** A stable 64-bit key for pg_advisory_lock, per schema. */
function lockKey(schema: string): string {
  let h = 0n;
  for (const c of Buffer.from('switchboard-migrate:' + schema)) h = (h * 131n + BigInt(c)) & 0x7fffffffffffffffn;
  return h.toString();
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export async function openPostgres(o: PostgresOptions): Promise<Db> {
  if (!IDENT.test(o.schema)) throw sbError('CONFIG_ERR_INVALID', `invalid database schema name ${JSON.stringify(o.schema)}`);
  // BIGINT epoch-milliseconds come back as numbers (they fit in 2^53); COUNT(*) too.
  pg.types.setTypeParser(20, (v: string) => Number(v));
  // Schema and migrations on one plain connection under an advisory lock (nodes starting together would race
  // even on CREATE SCHEMA IF NOT EXISTS); then every pooled connection starts with its search_path.
  const setup = new pg.Client({ connectionString: o.url });
  await setup.connect();
  try {
    await setup.query('SELECT pg_advisory_lock($1)', [lockKey(o.schema)]);
    try {
      await setup.query(`CREATE SCHEMA IF NOT EXISTS "${o.schema}"`);
      await setup.query(`SET search_path TO "${o.schema}"`);
      await migrate(setup);
    } finally {
      await setup.query('SELECT pg_advisory_unlock($1)', [lockKey(o.schema)]);
    }
  } finally {
    await setup.end();
  }
  const pool = new pg.Pool({ connectionString: o.url, max: o.poolSize ?? 10, options: `-c search_path=${o.schema}` });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it. Queries report their own errors.
  });
  return pool;
}

async function migrate(client: pg.Client): Promise<void> {
  await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
  for (const m of PG_MIGRATIONS) {
    if (applied.has(m.version)) continue;
    try {
      await client.query('BEGIN');
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK');
      throw sbError('STORE_ERR_MIGRATION', `migration ${m.version} (${m.name}) failed: ${(e as Error).message}`);
    }
  }
}

/** Runs `fn` in a transaction on one pooled client. */
export async function transaction<T>(db: Db, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await db.connect();
  try {
    await c.query('BEGIN');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}
