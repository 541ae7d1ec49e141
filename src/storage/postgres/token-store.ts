// Signing keys, refresh tokens and API keys in PostgreSQL (same contract as storage/sqlite/token-store.ts).

import type { ApiKeyRecord, ApiKeyStore, RefreshTokenRecord, RefreshTokenStore, SigningKeyRecord, SigningKeyStore } from '../ports.ts';
import { transaction, type Db } from './database.ts';

interface KeyRow { kid: string; alg: string; public_jwk: string; private_sealed: string; created_at: number; retired_at: number | null }
interface RefreshRow { id: string; family_id: string; account_id: string; secret_hash: string; created_at: number; expires_at: number; revoked_at: number | null; replaced_by: string | null }
interface ApiKeyRow { id: string; account_id: string; name: string; secret_hash: string; permissions: string; created_at: number; expires_at: number | null; revoked_at: number | null; last_used_at: number | null }

const refresh = (r: RefreshRow): RefreshTokenRecord => ({
  id: r.id, familyId: r.family_id, accountId: r.account_id, secretHash: r.secret_hash, createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at, replacedBy: r.replaced_by,
});

const apiKey = (r: ApiKeyRow): ApiKeyRecord => ({
  id: r.id, accountId: r.account_id, name: r.name, secretHash: r.secret_hash, permissions: JSON.parse(r.permissions) as string[], createdAt: r.created_at,
  expiresAt: r.expires_at, revokedAt: r.revoked_at, lastUsedAt: r.last_used_at,
});

export class PostgresTokenStore implements SigningKeyStore, RefreshTokenStore, ApiKeyStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  async listKeys(): Promise<SigningKeyRecord[]> {
    const r = await this.db.query<KeyRow>('SELECT * FROM signing_keys ORDER BY created_at');
    return r.rows.map((k) => ({ kid: k.kid, alg: k.alg, publicJwk: JSON.parse(k.public_jwk) as Record<string, unknown>, privateSealed: k.private_sealed, createdAt: k.created_at, retiredAt: k.retired_at }));
  }

  async addKey(k: SigningKeyRecord): Promise<void> {
    await transaction(this.db, async (c) => {
      await c.query('UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL', [k.createdAt]);
      await c.query('INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)', [
        k.kid, k.alg, JSON.stringify(k.publicJwk), k.privateSealed, k.createdAt, k.retiredAt,
      ]);
    });
  }

  async deleteKeysRetiredBefore(ts: number): Promise<number> {
    return (await this.db.query('DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1', [ts])).rowCount ?? 0;
  }

  async insertRefresh(t: RefreshTokenRecord): Promise<void> {
    await this.db.query('INSERT INTO refresh_tokens (id, family_id, account_id, secret_hash, created_at, expires_at, revoked_at, replaced_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [
      t.id, t.familyId, t.accountId, t.secretHash, t.createdAt, t.expiresAt, t.revokedAt, t.replacedBy,
    ]);
  }

  async findRefresh(id: string): Promise<RefreshTokenRecord | null> {
    const r = await this.db.query<RefreshRow>('SELECT * FROM refresh_tokens WHERE id = $1', [id]);
    return r.rows[0] ? refresh(r.rows[0]) : null;
  }

  async rotateRefresh(id: string, next: RefreshTokenRecord, now: number): Promise<boolean> {
    return transaction(this.db, async (c) => {
      const r = await c.query('UPDATE refresh_tokens SET revoked_at = $1, replaced_by = $2 WHERE id = $3 AND revoked_at IS NULL', [now, next.id, id]);
      if (r.rowCount === 0) return false;
      await c.query('INSERT INTO refresh_tokens (id, family_id, account_id, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [
        next.id, next.familyId, next.accountId, next.secretHash, next.createdAt, next.expiresAt,
      ]);
      return true;
    });
  }

  async revokeFamily(familyId: string, now: number): Promise<number> {
    return (await this.db.query('UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL', [now, familyId])).rowCount ?? 0;
  }

  async revokeAccountRefresh(accountId: string, now: number): Promise<number> {
    return (await this.db.query('UPDATE refresh_tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL', [now, accountId])).rowCount ?? 0;
  }

  async insertApiKey(k: ApiKeyRecord): Promise<void> {
    await this.db.query('INSERT INTO api_keys (id, account_id, name, secret_hash, permissions, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      k.id, k.accountId, k.name, k.secretHash, JSON.stringify(k.permissions), k.createdAt, k.expiresAt,
    ]);
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const r = await this.db.query<ApiKeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    return r.rows[0] ? apiKey(r.rows[0]) : null;
  }

  async listApiKeys(accountId: string): Promise<ApiKeyRecord[]> {
    return (await this.db.query<ApiKeyRow>('SELECT * FROM api_keys WHERE account_id = $1 ORDER BY created_at', [accountId])).rows.map(apiKey);
  }

  async revokeApiKey(accountId: string, id: string, now: number): Promise<boolean> {
    return ((await this.db.query('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL', [now, id, accountId])).rowCount ?? 0) > 0;
  }

  async touchApiKey(id: string, now: number): Promise<void> {
    await this.db.query('UPDATE api_keys SET last_used_at = $1 WHERE id = $2', [now, id]);
  }
}
