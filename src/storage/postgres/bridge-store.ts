// The vault and linked accounts in PostgreSQL (migration 9; same contract as storage/sqlite/bridge-store.ts).
// createVault and createLinked lock the account's row first (FOR NO KEY UPDATE, as message-store.ts does), so two
// nodes creating at once serialise: one vault per account, the per-account limit never overshot.

import { LINKED_COLUMNS, linkedFromRow, linkedValues, wrapFromRow, type LinkedRow } from '../bridge-rows.ts';
import type { LinkedAccountRecord, LinkedAccountStore, LinkStateName, LinkType, NewLinkedAccount, VaultSlot, VaultStore, VaultWrap } from '../ports/bridge.ts';
import { transaction, type Db } from './database.ts';

export class PostgresBridgeStore implements VaultStore, LinkedAccountStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  async getWraps(accountId: string): Promise<VaultWrap[]> {
    const r = await this.db.query<{ slot: string; salt: string; kdf: string; wrapped: string }>('SELECT slot, salt, kdf, wrapped FROM vault_wraps WHERE account_id = $1 ORDER BY slot', [accountId]);
    return r.rows.map(wrapFromRow);
  }

  async createVault(accountId: string, wraps: VaultWrap[]): Promise<boolean> {
    return transaction(this.db, async (c) => {
      await c.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [accountId]);
      if ((await c.query('SELECT 1 FROM vault_wraps WHERE account_id = $1 LIMIT 1', [accountId])).rowCount) return false;
      for (const w of wraps) await c.query('INSERT INTO vault_wraps (account_id, slot, salt, kdf, wrapped) VALUES ($1, $2, $3, $4, $5)', [accountId, w.slot, w.salt, w.kdf, w.wrapped]);
      return true;
    });
  }

  async putWrap(accountId: string, w: VaultWrap): Promise<void> {
    await this.db.query(
      `INSERT INTO vault_wraps (account_id, slot, salt, kdf, wrapped) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (account_id, slot) DO UPDATE SET salt = excluded.salt, kdf = excluded.kdf, wrapped = excluded.wrapped`,
      [accountId, w.slot, w.salt, w.kdf, w.wrapped],
    );
  }

  async deleteWrap(accountId: string, slot: VaultSlot): Promise<boolean> {
    return ((await this.db.query('DELETE FROM vault_wraps WHERE account_id = $1 AND slot = $2', [accountId, slot])).rowCount ?? 0) > 0;
  }

  async deleteVault(accountId: string): Promise<void> {
    await transaction(this.db, async (c) => {
      await c.query('DELETE FROM linked_accounts WHERE account_id = $1', [accountId]);
      await c.query('DELETE FROM vault_wraps WHERE account_id = $1', [accountId]);
    });
  }

  async createLinked(r: NewLinkedAccount, max: number): Promise<boolean> {
    return transaction(this.db, async (c) => {
      await c.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [r.accountId]);
      const n = await c.query<{ n: number }>('SELECT COUNT(*) AS n FROM linked_accounts WHERE account_id = $1', [r.accountId]);
      if (n.rows[0]!.n >= max) return false;
      await c.query(`INSERT INTO linked_accounts (${LINKED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, [...linkedValues(r)]);
      return true;
    });
  }

  async getLinked(id: string): Promise<LinkedAccountRecord | null> {
    const r = await this.db.query<LinkedRow>('SELECT * FROM linked_accounts WHERE id = $1', [id]);
    return r.rows[0] ? linkedFromRow(r.rows[0]) : null;
  }

  async listLinked(accountId: string): Promise<LinkedAccountRecord[]> {
    return (await this.db.query<LinkedRow>('SELECT * FROM linked_accounts WHERE account_id = $1 ORDER BY created_at, id', [accountId])).rows.map(linkedFromRow);
  }

  async deleteLinked(accountId: string, id: string): Promise<boolean> {
    return ((await this.db.query('DELETE FROM linked_accounts WHERE id = $1 AND account_id = $2', [id, accountId])).rowCount ?? 0) > 0;
  }

  async setLinkState(id: string, state: LinkStateName, reason: string | null, at: number): Promise<boolean> {
    const r = await this.db.query('UPDATE linked_accounts SET state = $1, reason = $2, updated_at = $3 WHERE id = $4 AND updated_at <= $3', [state, reason, at, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async setStaySealed(id: string, staySealed: string | null, at: number): Promise<void> {
    await this.db.query('UPDATE linked_accounts SET stay_sealed = $1, updated_at = $2 WHERE id = $3', [staySealed, at, id]);
  }

  async assignConnector(id: string, from: string | null, to: string | null): Promise<boolean> {
    const r = await this.db.query('UPDATE linked_accounts SET connector = $1 WHERE id = $2 AND connector IS NOT DISTINCT FROM $3', [to, id, from]);
    return (r.rowCount ?? 0) > 0;
  }

  async listStayConnected(type: LinkType, limit: number): Promise<LinkedAccountRecord[]> {
    return (await this.db.query<LinkedRow>('SELECT * FROM linked_accounts WHERE type = $1 AND stay_sealed IS NOT NULL ORDER BY id LIMIT $2', [type, limit])).rows.map(linkedFromRow);
  }

  async listByConnector(connector: string): Promise<LinkedAccountRecord[]> {
    return (await this.db.query<LinkedRow>('SELECT * FROM linked_accounts WHERE connector = $1', [connector])).rows.map(linkedFromRow);
  }
}
