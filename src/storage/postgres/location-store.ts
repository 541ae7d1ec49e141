// Location bindings in PostgreSQL: a bindings table written with group commit. The writes of one event-loop
// turn are folded by binding (the last write of each wins, as if applied in order) and committed as one
// multi-row upsert plus one delete in a single transaction; every waiter is released after the COMMIT.
//
// Under load (the last commit carried 4 writes or more) a commit waits 2 ms for more writes to join it (gathering.ts):
// with several worker processes each one's commits are small (measured, --workers 2 on 2 cores: 7 bindings a commit
// against 33 with one process).

import { sbError } from '../../errors.ts';
import type { BindingRecord, BindingWrite, LocationStore } from '../ports.ts';
import { transaction, type Db } from './database.ts';
import { Gathering } from './gathering.ts';

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

const COLUMNS = [
  'aor', 'binding_key', 'contact', 'params', 'q', 'expires_at', 'call_id', 'cseq', 'path', 'instance_id', 'reg_id', 'transport',
  'source_address', 'source_port', 'local_address', 'local_port', 'connection_id', 'node', 'user_agent', 'created_at', 'updated_at', 'account_id',
] as const;

function values(b: BindingRecord): unknown[] {
  return [b.aor, b.key, b.contact, b.params, b.q, b.expiresAt, b.callId, b.cseq, JSON.stringify(b.path), b.instanceId, b.regId, b.transport,
    b.sourceAddress, b.sourcePort, b.localAddress, b.localPort, b.connectionId, b.node, b.userAgent, b.createdAt, b.updatedAt, b.accountId];
}

interface Row {
  aor: string;
  binding_key: string;
  contact: string;
  params: string;
  q: number | null;
  expires_at: number;
  call_id: string;
  cseq: number;
  path: string[];
  instance_id: string | null;
  reg_id: number | null;
  transport: string;
  source_address: string;
  source_port: number;
  local_address: string;
  local_port: number;
  connection_id: number | null;
  node: string;
  user_agent: string | null;
  created_at: number;
  updated_at: number;
  account_id: string | null;
}

function fromRow(r: Row): BindingRecord {
  return {
    aor: r.aor,
    key: r.binding_key,
    contact: r.contact,
    params: r.params,
    q: r.q,
    expiresAt: r.expires_at,
    callId: r.call_id,
    cseq: r.cseq,
    path: r.path,
    instanceId: r.instance_id,
    regId: r.reg_id,
    transport: r.transport,
    sourceAddress: r.source_address,
    sourcePort: r.source_port,
    localAddress: r.local_address,
    localPort: r.local_port,
    connectionId: r.connection_id,
    node: r.node,
    userAgent: r.user_agent,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    accountId: r.account_id,
  };
}

const UPSERT_SET = COLUMNS.filter((c) => c !== 'aor' && c !== 'binding_key')
  .map((c) => `${c} = EXCLUDED.${c}`)
  .join(', ');

const DELETE = 'DELETE FROM bindings WHERE (aor, binding_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))';

/** PostgreSQL types of COLUMNS, for the array parameters of the upsert. */
const TYPES = ['text', 'text', 'text', 'text', 'float8', 'int8', 'text', 'int8', 'jsonb', 'text', 'int4', 'text', 'text', 'int4', 'text', 'int4', 'int8', 'text', 'text', 'int8', 'int8', 'text'];

/**
 * One upsert for any number of bindings: a column of values per parameter, unnested into rows. Its text never
 * changes, so it is a named prepared statement, parsed and planned once per connection (measured: the multi-row
 * VALUES form, re-planned for every group commit with 22 parameters a row, cost PostgreSQL more CPU than the
 * writes themselves under the scale-out benchmark).
 */
const UPSERT = {
  name: 'switchboard_bindings_upsert',
  text: `INSERT INTO bindings (${COLUMNS.join(', ')}) SELECT * FROM unnest(${TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')}) ON CONFLICT (aor, binding_key) DO UPDATE SET ${UPSERT_SET}`,
};

function upsertArgs(rows: BindingRecord[]): { name: string; text: string; values: unknown[][] } {
  const cols: unknown[][] = COLUMNS.map(() => new Array<unknown>(rows.length));
  for (let r = 0; r < rows.length; r++) {
    const v = values(rows[r]);
    for (let c = 0; c < v.length; c++) cols[c][r] = v[c];
  }
  return { ...UPSERT, values: cols };
}

export class PostgresLocationStore implements LocationStore {
  private readonly db: Db;
  private pending: BindingWrite[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  private committing = false;
  private readonly gathering = new Gathering(2, 4, 64);
  /** A commit in progress: the next group waits for it, keeping writes in order. */
  private inFlight: Promise<void> = Promise.resolve();
  commits = 0;
  appended = 0;

  constructor(db: Db) {
    this.db = db;
  }

  write(ops: BindingWrite[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    for (const op of ops) this.pending.push(op);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled && !this.committing) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return done;
  }

  /**
   * Group commit: one commit at a time, and everything requested while it runs goes into the next one (measured:
   * under 200 concurrent REGISTERs, a commit per event-loop turn queued dozens of one-row transactions behind each
   * other, each paying its round trips).
   */
  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.committing || this.pending.length === 0) return;
    if (this.gathering.wait(this.pending.length)) {
      this.scheduled = true;
      setTimeout(this.flush, this.gathering.ms);
      return;
    }
    const ops = this.pending;
    this.gathering.sent(ops.length);
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    this.committing = true;
    this.inFlight = this.commit(ops).then(
      () => {
        this.commits++;
        this.appended += ops.length;
        for (const w of waiters) w.resolve();
      },
      (e: unknown) => {
        const err = sbError('STORE_ERR_WRITE', `binding write failed: ${(e as Error).message}`);
        for (const w of waiters) w.reject(err);
      },
    ).finally(() => {
      this.committing = false;
      this.flush();
    });
  };

  private async commit(ops: BindingWrite[]): Promise<void> {
    // Fold by binding: only the last write of each (aor, key) matters, in the order they were requested.
    const last = new Map<string, BindingWrite>();
    for (const op of ops) {
      const id = op.op === 'put' ? op.binding.aor + '\u0000' + op.binding.key : op.aor + '\u0000' + op.key;
      last.delete(id);
      last.set(id, op);
    }
    const puts: BindingRecord[] = [];
    const dels: Array<[string, string]> = [];
    for (const op of last.values()) {
      if (op.op === 'put') puts.push(op.binding);
      else dels.push([op.aor, op.key]);
    }
    // The common case, a few puts or a few deletes, is one statement: atomic by itself, one round trip.
    if (dels.length === 0) return void (await this.db.query(upsertArgs(puts)));
    if (puts.length === 0) return void (await this.db.query(DELETE, [dels.map((d) => d[0]), dels.map((d) => d[1])]));
    await transaction(this.db, async (c) => {
      if (dels.length) await c.query(DELETE, [dels.map((d) => d[0]), dels.map((d) => d[1])]);
      if (puts.length) await c.query(upsertArgs(puts));
    });
  }

  async loadAll(): Promise<BindingRecord[]> {
    const r = await this.db.query<Row>('SELECT * FROM bindings');
    return r.rows.map(fromRow);
  }

  async list(aor?: string): Promise<BindingRecord[]> {
    const r = aor === undefined
      ? await this.db.query<Row>('SELECT * FROM bindings ORDER BY aor COLLATE "C", binding_key COLLATE "C"')
      : await this.db.query<Row>('SELECT * FROM bindings WHERE aor = $1 ORDER BY binding_key COLLATE "C"', [aor]);
    return r.rows.map(fromRow);
  }

  /** Waits for writes already requested to commit. */
  async drain(): Promise<void> {
    while (this.committing || this.pending.length) {
      if (!this.committing) this.flush();
      await this.inFlight;
    }
  }
}
