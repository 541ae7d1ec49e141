// Stored messages and app sessions in PostgreSQL (migration 8; same contracts as storage/sqlite/message-store.ts).
// Several nodes enqueue for the same account at once, so enqueue first locks the account's row (FOR NO KEY UPDATE,
// as phone-store.ts does) and only then reads the duplicate and the quota: one account's sends are serial across
// nodes, the quota is never overshot, and an account's seqs commit in increasing order (a reader paging by seq,
// messaging/stream.ts, never skips one that commits late). An ack is one conditional UPDATE (one winner); expiry
// deletes with SKIP LOCKED and reports only what its own DELETE removed.

import { randomUUID } from 'node:crypto';
import type { AppSessionRecord, AppSessionStore, EnqueueResult, MessageStatus, MessageStore, NewMessage, StoredMessage } from '../ports/messaging.ts';
import { messageFromRow, sessionFromRow, type MessageRow, type SessionRow } from '../message-rows.ts';
import { transaction, type Db } from './database.ts';

export class PostgresMessageStore implements MessageStore, AppSessionStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  async enqueue(m: NewMessage, quota: number): Promise<EnqueueResult> {
    return transaction(this.db, async (c) => {
      await c.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [m.accountId]);
      if (m.clientId !== null) {
        const prior = await c.query<{ id: string; delivered_at: number | null }>(
          'SELECT id, delivered_at FROM messages WHERE account_id = $1 AND sender = $2 AND client_id = $3',
          [m.accountId, m.sender, m.clientId],
        );
        const p = prior.rows[0];
        if (p) return { outcome: 'duplicate', id: p.id, delivered: p.delivered_at !== null };
      }
      const n = await c.query<{ n: number }>('SELECT COUNT(*) AS n FROM messages WHERE account_id = $1 AND delivered_at IS NULL AND expires_at > $2', [
        m.accountId,
        m.createdAt,
      ]);
      if (n.rows[0]!.n >= quota) return { outcome: 'quota' };
      const id = randomUUID();
      const r = await c.query<{ seq: number }>(
        `INSERT INTO messages (id, account_id, device_id, sender, content_type, body, client_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`,
        [id, m.accountId, m.deviceId, m.sender, m.contentType, m.body, m.clientId, m.createdAt, m.expiresAt],
      );
      return { outcome: 'stored', message: { ...m, id, seq: r.rows[0]!.seq } };
    });
  }

  async pending(accountId: string, deviceId: number | null, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    const base = 'SELECT * FROM messages WHERE account_id = $1 AND delivered_at IS NULL AND expires_at > $2 AND seq > $3';
    const r =
      deviceId === null
        ? await this.db.query<MessageRow>(`${base} ORDER BY seq LIMIT $4`, [accountId, now, afterSeq, limit])
        : await this.db.query<MessageRow>(`${base} AND (device_id IS NULL OR device_id = $4) ORDER BY seq LIMIT $5`, [accountId, now, afterSeq, deviceId, limit]);
    return r.rows.map(messageFromRow);
  }

  async ack(accountId: string, id: string, now: number): Promise<boolean> {
    const r = await this.db.query(`UPDATE messages SET body = '', delivered_at = $1 WHERE id = $2 AND account_id = $3 AND delivered_at IS NULL`, [now, id, accountId]);
    return (r.rowCount ?? 0) > 0;
  }

  async count(accountId: string, now: number): Promise<number> {
    const r = await this.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM messages WHERE account_id = $1 AND delivered_at IS NULL AND expires_at > $2', [accountId, now]);
    return r.rows[0]!.n;
  }

  async status(id: string): Promise<MessageStatus | null> {
    const r = await this.db.query<{ account_id: string; sender: string; delivered_at: number | null; expires_at: number }>(
      'SELECT account_id, sender, delivered_at, expires_at FROM messages WHERE id = $1',
      [id],
    );
    const row = r.rows[0];
    return row ? { accountId: row.account_id, sender: row.sender, deliveredAt: row.delivered_at === null ? null : Number(row.delivered_at), expiresAt: Number(row.expires_at) } : null;
  }

  async queuedByAccount(now: number, limit: number): Promise<Array<{ accountId: string; queued: number }>> {
    const r = await this.db.query<{ account_id: string; n: number }>(
      'SELECT account_id, COUNT(*) AS n FROM messages WHERE delivered_at IS NULL AND expires_at > $1 GROUP BY account_id ORDER BY n DESC, account_id LIMIT $2',
      [now, limit],
    );
    return r.rows.map((row) => ({ accountId: row.account_id, queued: Number(row.n) }));
  }

  async accountsWaiting(now: number, limit: number): Promise<string[]> {
    const r = await this.db.query<{ account_id: string }>('SELECT DISTINCT account_id FROM messages WHERE delivered_at IS NULL AND expires_at > $1 LIMIT $2', [now, limit]);
    return r.rows.map((row) => row.account_id);
  }

  async expire(now: number, limit: number): Promise<StoredMessage[]> {
    const r = await this.db.query<MessageRow>(
      'DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING *',
      [now, limit],
    );
    return r.rows.filter((row) => row.delivered_at === null).map(messageFromRow);
  }

  async createSession(s: AppSessionRecord): Promise<void> {
    await this.db.query('INSERT INTO app_sessions (kid, account_id, device_id, sealed_key, push, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      s.kid,
      s.accountId,
      s.deviceId,
      s.sealedKey,
      s.push === null ? null : JSON.stringify(s.push),
      s.createdAt,
      s.expiresAt,
    ]);
  }

  async getSession(kid: string): Promise<AppSessionRecord | null> {
    const r = await this.db.query<SessionRow>('SELECT * FROM app_sessions WHERE kid = $1', [kid]);
    return r.rows[0] ? sessionFromRow(r.rows[0]) : null;
  }

  async listSessions(accountId: string, deviceId?: number | null): Promise<AppSessionRecord[]> {
    const order = 'ORDER BY created_at DESC, kid';
    const r =
      deviceId === undefined
        ? await this.db.query<SessionRow>(`SELECT * FROM app_sessions WHERE account_id = $1 ${order}`, [accountId])
        : deviceId === null
          ? await this.db.query<SessionRow>(`SELECT * FROM app_sessions WHERE account_id = $1 AND device_id IS NULL ${order}`, [accountId])
          : await this.db.query<SessionRow>(`SELECT * FROM app_sessions WHERE account_id = $1 AND device_id = $2 ${order}`, [accountId, deviceId]);
    return r.rows.map(sessionFromRow);
  }

  async setSessionPush(kid: string, push: AppSessionRecord['push']): Promise<boolean> {
    const r = await this.db.query('UPDATE app_sessions SET push = $1 WHERE kid = $2', [push === null ? null : JSON.stringify(push), kid]);
    return (r.rowCount ?? 0) > 0;
  }

  async shortenSession(kid: string, expiresAt: number): Promise<boolean> {
    const r = await this.db.query('UPDATE app_sessions SET expires_at = LEAST(expires_at, $1) WHERE kid = $2', [expiresAt, kid]);
    return (r.rowCount ?? 0) > 0;
  }

  async deleteSession(kid: string): Promise<boolean> {
    return ((await this.db.query('DELETE FROM app_sessions WHERE kid = $1', [kid])).rowCount ?? 0) > 0;
  }

  async deleteSessions(accountId: string, deviceId?: number): Promise<number> {
    const r =
      deviceId === undefined
        ? await this.db.query('DELETE FROM app_sessions WHERE account_id = $1', [accountId])
        : await this.db.query('DELETE FROM app_sessions WHERE account_id = $1 AND device_id = $2', [accountId, deviceId]);
    return r.rowCount ?? 0;
  }

  async expireSessions(now: number): Promise<number> {
    return (await this.db.query('DELETE FROM app_sessions WHERE expires_at <= $1', [now])).rowCount ?? 0;
  }
}
