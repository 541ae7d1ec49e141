// Reversible SIP passwords in PostgreSQL (migration 6; same contract as storage/sqlite/sealed-sip-password-store.ts):
// sealed values only (AES-256-GCM, src/identity/reversible-passwords.ts), one per account, gone with the account
// (ON DELETE CASCADE).

import type { SealedSipPasswordStore } from '../ports.ts';
import type { Db } from './database.ts';

export class PostgresSealedSipPasswordStore implements SealedSipPasswordStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  async getSealedSipPassword(accountId: string): Promise<string | null> {
    const r = await this.db.query<{ sealed: string }>('SELECT sealed FROM sip_passwords_sealed WHERE account_id = $1', [accountId]);
    return r.rows[0]?.sealed ?? null;
  }

  async putSealedSipPassword(accountId: string, sealed: string): Promise<void> {
    await this.db.query(
      `INSERT INTO sip_passwords_sealed (account_id, sealed, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (account_id) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at`,
      [accountId, sealed, Date.now()],
    );
  }

  async deleteSealedSipPassword(accountId: string): Promise<boolean> {
    return ((await this.db.query('DELETE FROM sip_passwords_sealed WHERE account_id = $1', [accountId])).rowCount ?? 0) > 0;
  }
}
