// Accounts and their Digest credentials in PostgreSQL (same contract as storage/sqlite/account-store.ts).

import { randomUUID } from 'node:crypto';
import { sbError } from '../../errors.ts';
import type { DigestAlgorithm } from '../../sip/digest.ts';
import type { Account, AccountAdmin, AccountQuery, AccountStore, CredentialStore, FoundCredential, NewAccount, SipCredential } from '../ports.ts';
import { CredentialLookup } from './credential-lookup.ts';
import { transaction, type Db } from './database.ts';

/** Checks the credential upsert's result; no row means it is another account's: refused, nothing re-pointed. */
export function credentialPut(r: { rowCount: number | null }): void {
  if (!r.rowCount) throw sbError('ACCOUNT_ERR_CREDENTIAL_TAKEN');
}

interface AccountRow {
  id: string;
  username: string;
  realm: string;
  password_hash: string | null;
  roles: string;
  disabled: boolean;
  valid_after: number;
  created_at: number;
  updated_at: number;
}

function toAccount(r: AccountRow): Account {
  return {
    id: r.id,
    username: r.username,
    realm: r.realm,
    aor: `${r.username}@${r.realm}`,
    roles: JSON.parse(r.roles) as string[],
    passwordHash: r.password_hash,
    disabled: r.disabled,
    credentialsValidAfter: r.valid_after,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const INSERT_ACCOUNT = `INSERT INTO accounts (id, username, realm, password_hash, roles, disabled, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) ON CONFLICT (username, realm) DO NOTHING`;
const INSERT_CRED = `INSERT INTO sip_credentials (auth_user, realm, algorithm, account_id, ha1) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (auth_user, realm, algorithm) DO UPDATE SET ha1 = EXCLUDED.ha1 WHERE sip_credentials.account_id = EXCLUDED.account_id`;

export class PostgresAccountStore implements AccountStore, AccountAdmin, CredentialStore {
  private readonly db: Db;

  private readonly lookup: CredentialLookup;

  constructor(db: Db) {
    this.db = db;
    this.lookup = new CredentialLookup(db);
  }

  /** Grouped with the other lookups of the moment into one query (credential-lookup.ts). */
  findSipCredential(authUser: string, realm: string, algorithm: DigestAlgorithm): Promise<FoundCredential | null> {
    return this.lookup.find(authUser, realm, algorithm);
  }

  async create(a: NewAccount): Promise<Account> {
    const id = randomUUID();
    const now = Date.now();
    await transaction(this.db, async (c) => {
      const r = await c.query(INSERT_ACCOUNT, [id, a.username, a.realm, a.passwordHash, JSON.stringify(a.roles ?? []), now]);
      if (r.rowCount === 0) throw sbError('ACCOUNT_ERR_EXISTS', `account ${a.username}@${a.realm} already exists`);
      for (const cr of a.credentials) credentialPut(await c.query(INSERT_CRED, [cr.authUser, cr.realm, cr.algorithm, id, cr.ha1]));
    });
    return (await this.findById(id))!;
  }

  async createMany(accounts: NewAccount[]): Promise<{ created: number; skipped: number }> {
    let created = 0;
    let skipped = 0;
    const now = Date.now();
    await transaction(this.db, async (c) => {
      for (const a of accounts) {
        const id = randomUUID();
        const r = await c.query(INSERT_ACCOUNT, [id, a.username, a.realm, a.passwordHash, JSON.stringify(a.roles ?? []), now]);
        if (r.rowCount === 0) {
          skipped++;
          continue;
        }
        for (const cr of a.credentials) credentialPut(await c.query(INSERT_CRED, [cr.authUser, cr.realm, cr.algorithm, id, cr.ha1]));
        created++;
      }
    });
    return { created, skipped };
  }

  async findByName(username: string, realm: string): Promise<Account | null> {
    const r = await this.db.query<AccountRow>('SELECT * FROM accounts WHERE username = $1 AND realm = $2', [username, realm]);
    return r.rows[0] ? toAccount(r.rows[0]) : null;
  }

  async findById(id: string): Promise<Account | null> {
    const r = await this.db.query<AccountRow>('SELECT * FROM accounts WHERE id = $1', [id]);
    return r.rows[0] ? toAccount(r.rows[0]) : null;
  }

  async setPassword(accountId: string, passwordHash: string | null, credentials: Array<Omit<SipCredential, 'accountId'>>): Promise<void> {
    await transaction(this.db, async (c) => {
      const r = await c.query('UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3', [passwordHash, Date.now(), accountId]);
      if (r.rowCount === 0) throw sbError('ACCOUNT_ERR_NOT_FOUND');
      // Only the account's own credentials: its devices (auth users "<id>.<device>") keep theirs.
      await c.query('DELETE FROM sip_credentials WHERE account_id = $1 AND auth_user = (SELECT username FROM accounts WHERE id = $1)', [accountId]);
      for (const cr of credentials) credentialPut(await c.query(INSERT_CRED, [cr.authUser, cr.realm, cr.algorithm, accountId, cr.ha1]));
    });
  }

  async count(): Promise<number> {
    return (await this.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM accounts')).rows[0].n;
  }

  async list(q: AccountQuery): Promise<{ total: number; accounts: Account[] }> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.search) {
      args.push(q.search.toLowerCase());
      where.push(`strpos(lower(username || '@' || realm), $${args.length}) > 0`);
    }
    if (q.realm) {
      args.push(q.realm.toLowerCase());
      where.push(`realm = $${args.length}`);
    }
    const clause = where.length ? 'WHERE ' + where.join(' AND ') : '';
    const total = (await this.db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM accounts ${clause}`, args)).rows[0].n;
    const rows = await this.db.query<AccountRow>(`SELECT * FROM accounts ${clause} ORDER BY realm COLLATE "C", username COLLATE "C" LIMIT $${args.length + 1} OFFSET $${args.length + 2}`, [...args, q.limit, q.offset]);
    return { total, accounts: rows.rows.map(toAccount) };
  }

  async update(id: string, changes: { roles?: string[]; disabled?: boolean; credentialsValidAfter?: number }): Promise<Account> {
    const sets: string[] = ['updated_at = $1'];
    const args: unknown[] = [Date.now()];
    if (changes.roles) {
      args.push(JSON.stringify(changes.roles));
      sets.push(`roles = $${args.length}`);
    }
    if (changes.disabled !== undefined) {
      args.push(changes.disabled);
      sets.push(`disabled = $${args.length}`);
    }
    if (changes.credentialsValidAfter !== undefined) {
      args.push(changes.credentialsValidAfter);
      sets.push(`valid_after = GREATEST(valid_after, $${args.length})`);
    }
    args.push(id);
    const r = await this.db.query(`UPDATE accounts SET ${sets.join(', ')} WHERE id = $${args.length}`, args);
    if (r.rowCount === 0) throw sbError('ACCOUNT_ERR_NOT_FOUND');
    return (await this.findById(id))!;
  }

  async delete(id: string): Promise<boolean> {
    return ((await this.db.query('DELETE FROM accounts WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }
}
