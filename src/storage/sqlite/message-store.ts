// Stored messages and app sessions in SQLite (migration 8; same contracts as storage/postgres/message-store.ts).
// One writer at a time (BEGIN IMMEDIATE) makes enqueue's duplicate and quota checks atomic with its insert, across
// connections (the CLI, another process) too.

import { randomUUID } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { messageFromRow, sessionFromRow, type MessageRow, type SessionRow } from '../message-rows.ts';
import type { AppSessionRecord, AppSessionStore, EnqueueResult, MessageStatus, MessageStore, NewMessage, StoredMessage } from '../ports/messaging.ts';

export class SqliteMessageStore implements MessageStore, AppSessionStore {
  private readonly db: DatabaseSync;
  private readonly byClientId: StatementSync;
  private readonly countPending: StatementSync;
  private readonly insert: StatementSync;
  private readonly pendingAll: StatementSync;
  private readonly pendingDevice: StatementSync;
  private readonly ackOne: StatementSync;
  private readonly expireSome: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.byClientId = db.prepare('SELECT id, delivered_at FROM messages WHERE account_id = ? AND sender = ? AND client_id = ?');
    this.countPending = db.prepare('SELECT COUNT(*) AS n FROM messages WHERE account_id = ? AND delivered_at IS NULL AND expires_at > ?');
    this.insert = db.prepare(`INSERT INTO messages (id, account_id, device_id, sender, content_type, body, client_id, created_at, expires_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const pending = 'SELECT * FROM messages WHERE account_id = ? AND delivered_at IS NULL AND expires_at > ? AND seq > ?';
    this.pendingAll = db.prepare(`${pending} ORDER BY seq LIMIT ?`);
    this.pendingDevice = db.prepare(`${pending} AND (device_id IS NULL OR device_id = ?) ORDER BY seq LIMIT ?`);
    this.ackOne = db.prepare(`UPDATE messages SET body = X'', delivered_at = ? WHERE id = ? AND account_id = ? AND delivered_at IS NULL`);
    this.expireSome = db.prepare('DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE expires_at <= ? LIMIT ?) RETURNING *');
  }

  async enqueue(m: NewMessage, quota: number): Promise<EnqueueResult> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      let result: EnqueueResult;
      const prior = m.clientId === null ? undefined : (this.byClientId.get(m.accountId, m.sender, m.clientId) as { id: string; delivered_at: number | null } | undefined);
      if (prior) {
        result = { outcome: 'duplicate', id: prior.id, delivered: prior.delivered_at !== null };
      } else if ((this.countPending.get(m.accountId, m.createdAt) as { n: number }).n >= quota) {
        result = { outcome: 'quota' };
      } else {
        const id = randomUUID();
        const r = this.insert.run(id, m.accountId, m.deviceId, m.sender, m.contentType, m.body, m.clientId, m.createdAt, m.expiresAt);
        result = { outcome: 'stored', message: { ...m, id, seq: Number(r.lastInsertRowid) } };
      }
      this.db.exec('COMMIT');
      return result;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  async pending(accountId: string, deviceId: number | null, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    const rows = deviceId === null ? this.pendingAll.all(accountId, now, afterSeq, limit) : this.pendingDevice.all(accountId, now, afterSeq, deviceId, limit);
    return (rows as unknown as MessageRow[]).map(messageFromRow);
  }

  async ack(accountId: string, id: string, now: number): Promise<boolean> {
    return this.ackOne.run(now, id, accountId).changes > 0;
  }

  async count(accountId: string, now: number): Promise<number> {
    return (this.countPending.get(accountId, now) as { n: number }).n;
  }

  async status(id: string): Promise<MessageStatus | null> {
    const r = this.db.prepare('SELECT account_id, sender, delivered_at, expires_at FROM messages WHERE id = ?').get(id) as
      | { account_id: string; sender: string; delivered_at: number | null; expires_at: number }
      | undefined;
    return r ? { accountId: r.account_id, sender: r.sender, deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at), expiresAt: Number(r.expires_at) } : null;
  }

  async queuedByAccount(now: number, limit: number): Promise<Array<{ accountId: string; queued: number }>> {
    const rows = this.db
      .prepare('SELECT account_id, COUNT(*) AS n FROM messages WHERE delivered_at IS NULL AND expires_at > ? GROUP BY account_id ORDER BY n DESC, account_id LIMIT ?')
      .all(now, limit) as Array<{ account_id: string; n: number }>;
    return rows.map((r) => ({ accountId: r.account_id, queued: Number(r.n) }));
  }

  async accountsWaiting(now: number, limit: number): Promise<string[]> {
    const rows = this.db.prepare('SELECT DISTINCT account_id FROM messages WHERE delivered_at IS NULL AND expires_at > ? LIMIT ?').all(now, limit) as Array<{ account_id: string }>;
    return rows.map((r) => r.account_id);
  }

  async expire(now: number, limit: number): Promise<StoredMessage[]> {
    const rows = this.expireSome.all(now, limit) as unknown as MessageRow[];
    return rows.filter((r) => r.delivered_at === null).map(messageFromRow);
  }

  async createSession(s: AppSessionRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO app_sessions (kid, account_id, device_id, sealed_key, push, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(s.kid, s.accountId, s.deviceId, s.sealedKey, s.push === null ? null : JSON.stringify(s.push), s.createdAt, s.expiresAt);
  }

  async getSession(kid: string): Promise<AppSessionRecord | null> {
    const r = this.db.prepare('SELECT * FROM app_sessions WHERE kid = ?').get(kid) as SessionRow | undefined;
    return r ? sessionFromRow(r) : null;
  }

  async listSessions(accountId: string, deviceId?: number | null): Promise<AppSessionRecord[]> {
    const rows =
      deviceId === undefined
        ? this.db.prepare('SELECT * FROM app_sessions WHERE account_id = ? ORDER BY created_at DESC, kid').all(accountId)
        : deviceId === null
          ? this.db.prepare('SELECT * FROM app_sessions WHERE account_id = ? AND device_id IS NULL ORDER BY created_at DESC, kid').all(accountId)
          : this.db.prepare('SELECT * FROM app_sessions WHERE account_id = ? AND device_id = ? ORDER BY created_at DESC, kid').all(accountId, deviceId);
    return (rows as unknown as SessionRow[]).map(sessionFromRow);
  }

  async setSessionPush(kid: string, push: AppSessionRecord['push']): Promise<boolean> {
    return this.db.prepare('UPDATE app_sessions SET push = ? WHERE kid = ?').run(push === null ? null : JSON.stringify(push), kid).changes > 0;
  }

  async shortenSession(kid: string, expiresAt: number): Promise<boolean> {
    return this.db.prepare('UPDATE app_sessions SET expires_at = MIN(expires_at, ?) WHERE kid = ?').run(expiresAt, kid).changes > 0;
  }

  async deleteSession(kid: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM app_sessions WHERE kid = ?').run(kid).changes > 0;
  }

  async deleteSessions(accountId: string, deviceId?: number): Promise<number> {
    const r =
      deviceId === undefined
        ? this.db.prepare('DELETE FROM app_sessions WHERE account_id = ?').run(accountId)
        : this.db.prepare('DELETE FROM app_sessions WHERE account_id = ? AND device_id = ?').run(accountId, deviceId);
    return Number(r.changes);
  }

  async expireSessions(now: number): Promise<number> {
    return Number(this.db.prepare('DELETE FROM app_sessions WHERE expires_at <= ?').run(now).changes);
  }
}
