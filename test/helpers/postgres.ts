// PostgreSQL for tests: the machine's server at 127.0.0.1:5432 (or SWITCHBOARD_TEST_PG), one fresh schema per
// use, dropped afterwards. Missing server: skip, or fail under SWITCHBOARD_REQUIRE_PEERS=1.

import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.SWITCHBOARD_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: boolean | null = null;

export async function postgresMissing(): Promise<string | false> {
  if (reachable === null) {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      reachable = true;
    } catch {
      reachable = false;
    } finally {
      await c.end().catch(() => {});
    }
  }
  if (reachable) return false;
  if (process.env.SWITCHBOARD_REQUIRE_PEERS === '1') throw new Error(`PostgreSQL required at ${PG_URL}`);
  return `PostgreSQL not reachable at ${PG_URL}`;
}

export function freshSchema(): string {
  return 'sbtest_' + randomBytes(6).toString('hex');
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}
