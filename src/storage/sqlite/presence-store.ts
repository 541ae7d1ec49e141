// Presence state in SQLite (migration 5): subscriptions and publications upserted by key with the record as JSON
// (a subscription as a positional array, presence-rows.ts), watcher policies as rows. The presence service holds everything in memory; these tables are read only at
// startup.
//
// Group commit, as for bindings (location-store.ts): the writes requested during one event-loop turn are applied
// in ONE transaction at the end of the turn, and every waiter is released after the COMMIT. A burst of thousands
// of SUBSCRIBEs costs a few commits, not one each.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { sbError } from '../../errors.ts';
import type { PresenceStore, PresenceWrite, PublicationRecord, SubscriptionRecord, WatcherPolicyRecord } from '../ports.ts';
import { subscriptionFromRow, subscriptionRow } from '../presence-rows.ts';

export class SqlitePresenceStore implements PresenceStore {
  private readonly db: DatabaseSync;
  private readonly putSub: StatementSync;
  private readonly delSub: StatementSync;
  private readonly putPub: StatementSync;
  private readonly delPub: StatementSync;
  private readonly putPol: StatementSync;
  private readonly delPol: StatementSync;
  private pending: PresenceWrite[] = [];
  /**
   * The commit the pending writes wait for: one promise for the whole turn's writes rather than one (with its two
   * functions and a waiter record) per write; they all meet the same COMMIT or the same failure anyway.
   */
  private batch: PromiseWithResolvers<void> | null = null;
  commits = 0;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.putSub = db.prepare('INSERT INTO presence_subscriptions (id, presentity, expires_at, data) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET presentity = excluded.presentity, expires_at = excluded.expires_at, data = excluded.data');
    this.delSub = db.prepare('DELETE FROM presence_subscriptions WHERE id = ?');
    this.putPub = db.prepare('INSERT INTO presence_publications (etag, aor, expires_at, data) VALUES (?, ?, ?, ?) ON CONFLICT (etag) DO UPDATE SET aor = excluded.aor, expires_at = excluded.expires_at, data = excluded.data');
    this.delPub = db.prepare('DELETE FROM presence_publications WHERE etag = ?');
    this.putPol = db.prepare('INSERT INTO presence_policies (aor, mode, allow, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (aor) DO UPDATE SET mode = excluded.mode, allow = excluded.allow, updated_at = excluded.updated_at');
    this.delPol = db.prepare('DELETE FROM presence_policies WHERE aor = ?');
  }

  async loadSubscriptions(): Promise<SubscriptionRecord[]> {
    return (this.db.prepare('SELECT data FROM presence_subscriptions').all() as Array<{ data: string }>).map((r) => subscriptionFromRow(r.data));
  }

  async loadPublications(): Promise<PublicationRecord[]> {
    return (this.db.prepare('SELECT data FROM presence_publications').all() as Array<{ data: string }>).map((r) => JSON.parse(r.data) as PublicationRecord);
  }

  async loadPolicies(): Promise<WatcherPolicyRecord[]> {
    const rows = this.db.prepare('SELECT aor, mode, allow, updated_at FROM presence_policies').all() as Array<{ aor: string; mode: string; allow: string; updated_at: number }>;
    return rows.map((r) => ({ aor: r.aor, mode: r.mode as WatcherPolicyRecord['mode'], allow: JSON.parse(r.allow) as string[], updatedAt: r.updated_at }));
  }

  write(ops: PresenceWrite[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    for (const op of ops) this.pending.push(op);
    if (this.batch === null) {
      this.batch = Promise.withResolvers<void>();
      setImmediate(this.flush);
    }
    return this.batch.promise;
  }

  private readonly flush = (): void => {
    const ops = this.pending;
    const batch = this.batch;
    this.pending = [];
    this.batch = null;
    if (batch === null) return;
    try {
      this.db.exec('BEGIN');
      try {
        for (const op of ops) this.apply(op);
        this.db.exec('COMMIT');
      } catch (e) {
        this.db.exec('ROLLBACK');
        throw e;
      }
    } catch (e) {
      batch.reject(sbError('STORE_ERR_WRITE', `presence write failed: ${(e as Error).message}`));
      return;
    }
    this.commits++;
    batch.resolve();
  };

  private apply(op: PresenceWrite): void {
    switch (op.op) {
      case 'put-subscription': {
        const s = op.subscription;
        this.putSub.run(s.id, s.presentity, s.expiresAt, subscriptionRow(s));
        break;
      }
      case 'delete-subscription':
        this.delSub.run(op.id);
        break;
      case 'put-publication': {
        const p = op.publication;
        if (op.replaces !== undefined && op.replaces !== p.etag) this.delPub.run(op.replaces);
        this.putPub.run(p.etag, p.aor, p.expiresAt, JSON.stringify(p));
        break;
      }
      case 'delete-publication':
        this.delPub.run(op.etag);
        break;
    }
  }

  async putPolicy(p: WatcherPolicyRecord): Promise<void> {
    this.putPol.run(p.aor, p.mode, JSON.stringify(p.allow), p.updatedAt);
  }

  async deletePolicy(aor: string): Promise<void> {
    this.delPol.run(aor);
  }

  close(): void {
    if (this.batch !== null) this.flush();
  }
}
