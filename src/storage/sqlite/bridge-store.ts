// The vault and linked accounts in SQLite (migration 9; same contract as storage/postgres/bridge-store.ts). One
// writer at a time (BEGIN IMMEDIATE) makes createVault's and createLinked's checks atomic with their inserts.

import type { DatabaseSync } from 'node:sqlite';
import { immediate } from './database.ts';
import { LINKED_COLUMNS, linkedFromRow, linkedValues, wrapFromRow, type LinkedRow } from '../bridge-rows.ts';
import type { LinkedAccountRecord, LinkedAccountStore, LinkStateName, LinkType, NewLinkedAccount, VaultSlot, VaultStore, VaultWrap } from '../ports/bridge.ts';

export class SqliteBridgeStore implements VaultStore, LinkedAccountStore {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  private atomically<T>(f: () => T): T {
    return immediate(this.db, f);
  }

  async getWraps(accountId: string): Promise<VaultWrap[]> {
    const rows = this.db.prepare('SELECT slot, salt, kdf, wrapped FROM vault_wraps WHERE account_id = ? ORDER BY slot').all(accountId);
    return (rows as unknown as Array<{ slot: string; salt: string; kdf: string; wrapped: string }>).map(wrapFromRow);
  }

  async createVault(accountId: string, wraps: VaultWrap[]): Promise<boolean> {
    return this.atomically(() => {
      if (this.db.prepare('SELECT 1 FROM vault_wraps WHERE account_id = ? LIMIT 1').get(accountId)) return false;
      const ins = this.db.prepare('INSERT INTO vault_wraps (account_id, slot, salt, kdf, wrapped) VALUES (?, ?, ?, ?, ?)');
      for (const w of wraps) ins.run(accountId, w.slot, w.salt, w.kdf, w.wrapped);
      return true;
    });
  }

  async putWrap(accountId: string, w: VaultWrap): Promise<void> {
    this.db
      .prepare(`INSERT INTO vault_wraps (account_id, slot, salt, kdf, wrapped) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (account_id, slot) DO UPDATE SET salt = excluded.salt, kdf = excluded.kdf, wrapped = excluded.wrapped`)
      .run(accountId, w.slot, w.salt, w.kdf, w.wrapped);
  }

  async deleteWrap(accountId: string, slot: VaultSlot): Promise<boolean> {
    return this.db.prepare('DELETE FROM vault_wraps WHERE account_id = ? AND slot = ?').run(accountId, slot).changes > 0;
  }

  async deleteVault(accountId: string): Promise<void> {
    this.atomically(() => {
      this.db.prepare('DELETE FROM linked_accounts WHERE account_id = ?').run(accountId);
      this.db.prepare('DELETE FROM vault_wraps WHERE account_id = ?').run(accountId);
    });
  }

  async createLinked(r: NewLinkedAccount, max: number): Promise<boolean> {
    return this.atomically(() => {
      const n = (this.db.prepare('SELECT COUNT(*) AS n FROM linked_accounts WHERE account_id = ?').get(r.accountId) as { n: number }).n;
      if (n >= max) return false;
      this.db.prepare(`INSERT INTO linked_accounts (${LINKED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...linkedValues(r));
      return true;
    });
  }

  async getLinked(id: string): Promise<LinkedAccountRecord | null> {
    const row = this.db.prepare('SELECT * FROM linked_accounts WHERE id = ?').get(id) as LinkedRow | undefined;
    return row ? linkedFromRow(row) : null;
  }

  async listLinked(accountId: string): Promise<LinkedAccountRecord[]> {
    return (this.db.prepare('SELECT * FROM linked_accounts WHERE account_id = ? ORDER BY created_at, id').all(accountId) as unknown as LinkedRow[]).map(linkedFromRow);
  }

  async deleteLinked(accountId: string, id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM linked_accounts WHERE id = ? AND account_id = ?').run(id, accountId).changes > 0;
  }

  async setLinkState(id: string, state: LinkStateName, reason: string | null, at: number): Promise<boolean> {
    return this.db.prepare('UPDATE linked_accounts SET state = ?1, reason = ?2, updated_at = ?3 WHERE id = ?4 AND updated_at <= ?3').run(state, reason, at, id).changes > 0;
  }

  async setStaySealed(id: string, staySealed: string | null, at: number): Promise<void> {
    this.db.prepare('UPDATE linked_accounts SET stay_sealed = ?, updated_at = ? WHERE id = ?').run(staySealed, at, id);
  }

  async assignConnector(id: string, from: string | null, to: string | null): Promise<boolean> {
    return this.db.prepare('UPDATE linked_accounts SET connector = ? WHERE id = ? AND connector IS ?').run(to, id, from).changes > 0;
  }

  async listStayConnected(type: LinkType, limit: number): Promise<LinkedAccountRecord[]> {
    return (this.db.prepare('SELECT * FROM linked_accounts WHERE type = ? AND stay_sealed IS NOT NULL ORDER BY id LIMIT ?').all(type, limit) as unknown as LinkedRow[]).map(linkedFromRow);
  }

  async listByConnector(connector: string): Promise<LinkedAccountRecord[]> {
    return (this.db.prepare('SELECT * FROM linked_accounts WHERE connector = ?').all(connector) as unknown as LinkedRow[]).map(linkedFromRow);
  }
}
