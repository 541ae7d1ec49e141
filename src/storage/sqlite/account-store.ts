// Accounts and their Digest credentials in SQLite. Credentials are HA1 values only: the password itself is
// never stored (RFC 7616 §5.2; argon2id hashes for HTTP login arrive with the identity service).

import { randomUUID } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { sbError } from '../../errors.ts';
import type { DigestAlgorithm } from '../../sip/digest.ts';
import type { Account, AccountAdmin, AccountQuery, AccountStore, CredentialStore, NewAccount, SipCredential } from '../ports.ts';

/** Runs the credential upsert; 0 changes means the row is another account's: refused, nothing re-pointed. */
export function putCredential(insert: StatementSync, authUser: string, realm: string, algorithm: string, accountId: string, ha1: string): void {
  if (insert.run(authUser, realm, algorithm, accountId, ha1).changes === 0) {
    throw sbError('ACCOUNT_ERR_CREDENTIAL_TAKEN', `SIP credentials of ${authUser}@${realm} belong to another account`);
  }
}

interface AccountRow {
  id: string;
  username: string;
  realm: string;
  password_hash: string | null;
  roles: string;
  disabled: number;
  valid_after: number;
  created_at: number;
  updated_at: number;
}

export class SqliteAccountStore implements AccountStore, AccountAdmin, CredentialStore {
  private readonly db: DatabaseSync;
  private readonly findCred: StatementSync;
  private readonly insertAccount: StatementSync;
  private readonly insertCred: StatementSync;
  private readonly byName: StatementSync;
  private readonly byId: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.findCred = db.prepare(`SELECT c.account_id, c.ha1, a.username, a.realm, a.disabled
      FROM sip_credentials c JOIN accounts a ON a.id = c.account_id
      WHERE c.auth_user = ? AND c.realm = ? AND c.algorithm = ?`);
    this.insertAccount = db.prepare(`INSERT INTO accounts (id, username, realm, password_hash, roles, disabled, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (username, realm) DO NOTHING`);
    // An upsert only ever updates the same account's row: credentials of another account (a device's
    // "<id>.<n>") are never re-pointed; the caller sees 0 changes and refuses (putCredential).
    this.insertCred = db.prepare(`INSERT INTO sip_credentials (auth_user, realm, algorithm, account_id, ha1) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (auth_user, realm, algorithm) DO UPDATE SET ha1 = excluded.ha1 WHERE sip_credentials.account_id = excluded.account_id`);
    this.byName = db.prepare('SELECT * FROM accounts WHERE username = ? AND realm = ?');
    this.byId = db.prepare('SELECT * FROM accounts WHERE id = ?');
  }

  async findSipCredential(authUser: string, realm: string, algorithm: DigestAlgorithm) {
    const row = this.findCred.get(authUser, realm, algorithm) as
      | { account_id: string; ha1: string; username: string; realm: string; disabled: number }
      | undefined;
    if (!row || row.disabled) return null;
    const credential: SipCredential = { accountId: row.account_id, authUser, realm, algorithm, ha1: row.ha1 };
    return { credential, aors: [`${row.username}@${row.realm}`] };
  }

  async create(a: NewAccount): Promise<Account> {
    const now = Date.now();
    const id = randomUUID();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = this.insertAccount.run(id, a.username, a.realm, a.passwordHash, JSON.stringify(a.roles ?? []), now, now);
      if (r.changes === 0) throw sbError('ACCOUNT_ERR_EXISTS', `account ${a.username}@${a.realm} already exists`);
      for (const c of a.credentials) putCredential(this.insertCred, c.authUser, c.realm, c.algorithm, id, c.ha1);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    return (await this.findById(id))!;
  }

  async createMany(accounts: NewAccount[]): Promise<{ created: number; skipped: number }> {
    let created = 0;
    let skipped = 0;
    const now = Date.now();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const a of accounts) {
        const id = randomUUID();
        const r = this.insertAccount.run(id, a.username, a.realm, a.passwordHash, JSON.stringify(a.roles ?? []), now, now);
        if (r.changes === 0) {
          skipped++;
          continue;
        }
        for (const c of a.credentials) putCredential(this.insertCred, c.authUser, c.realm, c.algorithm, id, c.ha1);
        created++;
      }
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    return { created, skipped };
  }

  async findByName(username: string, realm: string): Promise<Account | null> {
    const row = this.byName.get(username, realm) as AccountRow | undefined;
    return row ? toAccount(row) : null;
  }

  async findById(id: string): Promise<Account | null> {
    const row = this.byId.get(id) as AccountRow | undefined;
    return row ? toAccount(row) : null;
  }

  async setPassword(accountId: string, passwordHash: string | null, credentials: Array<Omit<SipCredential, 'accountId'>>): Promise<void> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = this.db.prepare('UPDATE accounts SET password_hash = ?, updated_at = ? WHERE id = ?').run(passwordHash, Date.now(), accountId);
      if (r.changes === 0) throw sbError('ACCOUNT_ERR_NOT_FOUND');
      // Only the account's own credentials: its devices (auth users "<id>.<device>") keep theirs.
      this.db.prepare('DELETE FROM sip_credentials WHERE account_id = ? AND auth_user = (SELECT username FROM accounts WHERE id = ?)').run(accountId, accountId);
      for (const c of credentials) putCredential(this.insertCred, c.authUser, c.realm, c.algorithm, accountId, c.ha1);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  async count(): Promise<number> {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM accounts').get() as { n: number }).n;
  }

  async list(q: AccountQuery): Promise<{ total: number; accounts: Account[] }> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.search) {
      where.push("instr(lower(username || '@' || realm), lower(?)) > 0");
      args.push(q.search);
    }
    if (q.realm) {
      where.push('realm = ?');
      args.push(q.realm.toLowerCase());
    }
    const clause = where.length ? 'WHERE ' + where.join(' AND ') : '';
    const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM accounts ${clause}`).get(...args) as { n: number }).n;
    const rows = this.db.prepare(`SELECT * FROM accounts ${clause} ORDER BY realm, username LIMIT ? OFFSET ?`).all(...args, q.limit, q.offset);
    return { total, accounts: (rows as unknown as AccountRow[]).map(toAccount) };
  }

  async update(id: string, changes: { roles?: string[]; disabled?: boolean; credentialsValidAfter?: number }): Promise<Account> {
    const sets: string[] = ['updated_at = ?'];
    const args: Array<string | number> = [Date.now()];
    if (changes.roles) {
      sets.push('roles = ?');
      args.push(JSON.stringify(changes.roles));
    }
    if (changes.disabled !== undefined) {
      sets.push('disabled = ?');
      args.push(changes.disabled ? 1 : 0);
    }
    if (changes.credentialsValidAfter !== undefined) {
      sets.push('valid_after = max(valid_after, ?)');
      args.push(changes.credentialsValidAfter);
    }
    const r = this.db.prepare(`UPDATE accounts SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
    if (r.changes === 0) throw sbError('ACCOUNT_ERR_NOT_FOUND');
    return (await this.findById(id))!;
  }

  async delete(id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM accounts WHERE id = ?').run(id).changes > 0;
  }
}

function toAccount(r: AccountRow): Account {
  return {
    id: r.id,
    username: r.username,
    realm: r.realm,
    aor: `${r.username}@${r.realm}`,
    roles: JSON.parse(r.roles) as string[],
    passwordHash: r.password_hash,
    disabled: r.disabled !== 0,
    credentialsValidAfter: r.valid_after,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
