// Signing keys, refresh tokens and API keys in SQLite. Secrets are stored as hashes (refresh tokens, API keys)
// or sealed (private signing keys); nothing here can be used as found on disk.

import type { DatabaseSync } from 'node:sqlite';
import type {
  ApiKeyRecord,
  ApiKeyStore,
  RefreshTokenRecord,
  RefreshTokenStore,
  SigningKeyRecord,
  SigningKeyStore,
} from '../ports.ts';

interface KeyRow { kid: string; alg: string; public_jwk: string; private_sealed: string; created_at: number; retired_at: number | null }
interface RefreshRow { id: string; family_id: string; account_id: string; secret_hash: string; created_at: number; expires_at: number; revoked_at: number | null; replaced_by: string | null }
interface ApiKeyRow { id: string; account_id: string; name: string; secret_hash: string; permissions: string; created_at: number; expires_at: number | null; revoked_at: number | null; last_used_at: number | null }

export class SqliteTokenStore implements SigningKeyStore, RefreshTokenStore, ApiKeyStore {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  private tx<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = fn();
      this.db.exec('COMMIT');
      return r;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  async listKeys(): Promise<SigningKeyRecord[]> {
    return (this.db.prepare('SELECT * FROM signing_keys ORDER BY created_at').all() as unknown as KeyRow[]).map((r) => ({
      kid: r.kid,
      alg: r.alg,
      publicJwk: JSON.parse(r.public_jwk) as Record<string, unknown>,
      privateSealed: r.private_sealed,
      createdAt: r.created_at,
      retiredAt: r.retired_at,
    }));
  }

  async addKey(k: SigningKeyRecord): Promise<void> {
    this.tx(() => {
      this.db.prepare('UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL').run(k.createdAt);
      this.db
        .prepare('INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(k.kid, k.alg, JSON.stringify(k.publicJwk), k.privateSealed, k.createdAt, k.retiredAt);
    });
  }

  async deleteKeysRetiredBefore(ts: number): Promise<number> {
    return Number(this.db.prepare('DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?').run(ts).changes);
  }

  async insertRefresh(t: RefreshTokenRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO refresh_tokens (id, family_id, account_id, secret_hash, created_at, expires_at, revoked_at, replaced_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(t.id, t.familyId, t.accountId, t.secretHash, t.createdAt, t.expiresAt, t.revokedAt, t.replacedBy);
  }

  async findRefresh(id: string): Promise<RefreshTokenRecord | null> {
    const r = this.db.prepare('SELECT * FROM refresh_tokens WHERE id = ?').get(id) as RefreshRow | undefined;
    return r
      ? { id: r.id, familyId: r.family_id, accountId: r.account_id, secretHash: r.secret_hash, createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at, replacedBy: r.replaced_by }
      : null;
  }

  async rotateRefresh(id: string, next: RefreshTokenRecord, now: number): Promise<boolean> {
    return this.tx(() => {
      const r = this.db.prepare('UPDATE refresh_tokens SET revoked_at = ?, replaced_by = ? WHERE id = ? AND revoked_at IS NULL').run(now, next.id, id);
      if (r.changes === 0) return false;
      this.db
        .prepare('INSERT INTO refresh_tokens (id, family_id, account_id, secret_hash, created_at, expires_at, revoked_at, replaced_by) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)')
        .run(next.id, next.familyId, next.accountId, next.secretHash, next.createdAt, next.expiresAt);
      return true;
    });
  }

  async revokeFamily(familyId: string, now: number): Promise<number> {
    return Number(this.db.prepare('UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL').run(now, familyId).changes);
  }

  async revokeAccountRefresh(accountId: string, now: number): Promise<number> {
    return Number(this.db.prepare('UPDATE refresh_tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL').run(now, accountId).changes);
  }

  async insertApiKey(k: ApiKeyRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO api_keys (id, account_id, name, secret_hash, permissions, created_at, expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)')
      .run(k.id, k.accountId, k.name, k.secretHash, JSON.stringify(k.permissions), k.createdAt, k.expiresAt);
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const r = this.db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as ApiKeyRow | undefined;
    return r ? apiKey(r) : null;
  }

  async listApiKeys(accountId: string): Promise<ApiKeyRecord[]> {
    return (this.db.prepare('SELECT * FROM api_keys WHERE account_id = ? ORDER BY created_at').all(accountId) as unknown as ApiKeyRow[]).map(apiKey);
  }

  async revokeApiKey(accountId: string, id: string, now: number): Promise<boolean> {
    return this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND account_id = ? AND revoked_at IS NULL').run(now, id, accountId).changes > 0;
  }

  async touchApiKey(id: string, now: number): Promise<void> {
    this.db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?').run(now, id);
  }
}

function apiKey(r: ApiKeyRow): ApiKeyRecord {
  return {
    id: r.id,
    accountId: r.account_id,
    name: r.name,
    secretHash: r.secret_hash,
    permissions: JSON.parse(r.permissions) as string[],
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}
