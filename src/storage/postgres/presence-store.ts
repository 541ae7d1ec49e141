// Presence state in PostgreSQL (migration 5; same contract as storage/sqlite/presence-store.ts): subscriptions and
// publications upserted by key with the record as JSON, watcher policies as rows.
//
// Group commit, as for bindings (location-store.ts): the writes requested during one event-loop turn are applied
// in ONE transaction, in order, and every waiter is released after the COMMIT. While a commit is in flight the
// next group waits for it (so groups commit in the order they were requested) and takes in every write requested
// meanwhile: under load the groups grow instead of queueing one transaction per turn.
//
// Applying in order: every write sets or removes one row (a publication replacing another removes the old entity
// tag, then sets the new one), so the group is folded to the last write per row, which leaves the same rows as
// applying each in turn; the fold is then one delete and one upsert per table, whatever the group's size.

import { sbError } from '../../errors.ts';
import type { PresenceStore, PresenceWrite, PublicationRecord, SubscriptionRecord, WatcherPolicyRecord } from '../ports.ts';
import { transaction, type Db } from './database.ts';

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

type Folded =
  | { table: 'sub'; key: string; put: SubscriptionRecord | null }
  | { table: 'pub'; key: string; put: PublicationRecord | null };

export class PostgresPresenceStore implements PresenceStore {
  private readonly db: Db;
  private pending: PresenceWrite[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** The commit in flight, if any: the next group starts when it has settled. */
  private inFlight: Promise<void> | null = null;
  commits = 0;

  constructor(db: Db) {
    this.db = db;
  }

  async loadSubscriptions(): Promise<SubscriptionRecord[]> {
    return (await this.db.query<{ data: SubscriptionRecord }>('SELECT data FROM presence_subscriptions')).rows.map((r) => r.data);
  }

  async loadPublications(): Promise<PublicationRecord[]> {
    return (await this.db.query<{ data: PublicationRecord }>('SELECT data FROM presence_publications')).rows.map((r) => r.data);
  }

  async loadPolicies(): Promise<WatcherPolicyRecord[]> {
    const r = await this.db.query<{ aor: string; mode: WatcherPolicyRecord['mode']; allow: string[]; updated_at: number }>(
      'SELECT aor, mode, allow, updated_at FROM presence_policies',
    );
    return r.rows.map((x) => ({ aor: x.aor, mode: x.mode, allow: x.allow, updatedAt: x.updated_at }));
  }

  write(ops: PresenceWrite[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    for (const op of ops) this.pending.push(op);
    if (!this.scheduled && this.inFlight === null) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Starts committing every pending write, unless a commit is in flight (its end starts the next one). */
  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.inFlight !== null || this.pending.length === 0) return;
    const ops = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    this.inFlight = this.commit(ops).then(
      () => {
        this.commits++;
        for (const w of waiters) w.resolve();
      },
      (e: unknown) => {
        const err = sbError('STORE_ERR_WRITE', `presence write failed: ${(e as Error).message}`);
        for (const w of waiters) w.reject(err);
      },
    ).finally(() => {
      this.inFlight = null;
      this.flush();
    });
  };

  private async commit(ops: PresenceWrite[]): Promise<void> {
    const last = new Map<string, Folded>();
    const set = (f: Folded) => last.set(f.table + '\u0000' + f.key, f);
    for (const op of ops) {
      switch (op.op) {
        case 'put-subscription':
          set({ table: 'sub', key: op.subscription.id, put: op.subscription });
          break;
        case 'delete-subscription':
          set({ table: 'sub', key: op.id, put: null });
          break;
        case 'put-publication':
          if (op.replaces !== undefined && op.replaces !== op.publication.etag) set({ table: 'pub', key: op.replaces, put: null });
          set({ table: 'pub', key: op.publication.etag, put: op.publication });
          break;
        case 'delete-publication':
          set({ table: 'pub', key: op.etag, put: null });
          break;
      }
    }
    const subDel: string[] = [];
    const pubDel: string[] = [];
    const subs: SubscriptionRecord[] = [];
    const pubs: PublicationRecord[] = [];
    for (const f of last.values()) {
      if (f.table === 'sub') {
        if (f.put) subs.push(f.put);
        else subDel.push(f.key);
      } else if (f.put) pubs.push(f.put);
      else pubDel.push(f.key);
    }
    await transaction(this.db, async (c) => {
      if (subDel.length) await c.query('DELETE FROM presence_subscriptions WHERE id = ANY($1::text[])', [subDel]);
      if (pubDel.length) await c.query('DELETE FROM presence_publications WHERE etag = ANY($1::text[])', [pubDel]);
      if (subs.length) {
        await c.query(
          `INSERT INTO presence_subscriptions (id, presentity, expires_at, data) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::json[])
           ON CONFLICT (id) DO UPDATE SET presentity = EXCLUDED.presentity, expires_at = EXCLUDED.expires_at, data = EXCLUDED.data`,
          [subs.map((s) => s.id), subs.map((s) => s.presentity), subs.map((s) => s.expiresAt), subs.map((s) => JSON.stringify(s))],
        );
      }
      if (pubs.length) {
        await c.query(
          `INSERT INTO presence_publications (etag, aor, expires_at, data) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::json[])
           ON CONFLICT (etag) DO UPDATE SET aor = EXCLUDED.aor, expires_at = EXCLUDED.expires_at, data = EXCLUDED.data`,
          [pubs.map((p) => p.etag), pubs.map((p) => p.aor), pubs.map((p) => p.expiresAt), pubs.map((p) => JSON.stringify(p))],
        );
      }
    });
  }

  async putPolicy(p: WatcherPolicyRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO presence_policies (aor, mode, allow, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (aor) DO UPDATE SET mode = EXCLUDED.mode, allow = EXCLUDED.allow, updated_at = EXCLUDED.updated_at`,
      [p.aor, p.mode, JSON.stringify(p.allow), p.updatedAt],
    );
  }

  async deletePolicy(aor: string): Promise<void> {
    await this.db.query('DELETE FROM presence_policies WHERE aor = $1', [aor]);
  }

  /** Waits until every write requested so far has committed (or failed). */
  async drain(): Promise<void> {
    if (this.scheduled) this.flush();
    while (this.inFlight !== null) {
      await this.inFlight;
      if (this.scheduled) this.flush();
    }
  }

  /** Starts committing what is pending; drain() waits for it (the pool must stay open until then). */
  close(): void {
    if (this.scheduled) this.flush();
  }
}
