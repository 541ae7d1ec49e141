// Reversible SIP passwords in SQLite: sealed values only (AES-256-GCM, src/identity/reversible-passwords.ts), one per
// account, gone with the account (ON DELETE CASCADE). Table from migration 6.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { SealedSipPasswordStore } from '../ports.ts';

export class SqliteSealedSipPasswordStore implements SealedSipPasswordStore {
  private readonly get: StatementSync;
  private readonly put: StatementSync;
  private readonly del: StatementSync;

  constructor(db: DatabaseSync) {
    this.get = db.prepare('SELECT sealed FROM sip_passwords_sealed WHERE account_id = ?');
    this.put = db.prepare(`INSERT INTO sip_passwords_sealed (account_id, sealed, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`);
    this.del = db.prepare('DELETE FROM sip_passwords_sealed WHERE account_id = ?');
  }

  async getSealedSipPassword(accountId: string): Promise<string | null> {
    const row = this.get.get(accountId) as { sealed: string } | undefined;
    return row ? row.sealed : null;
  }

  async putSealedSipPassword(accountId: string, sealed: string): Promise<void> {
    this.put.run(accountId, sealed, Date.now());
  }

  async deleteSealedSipPassword(accountId: string): Promise<boolean> {
    return this.del.run(accountId).changes > 0;
  }
}
