// Refresh tokens (OAuth 2.0 Security BCP §4.14): opaque, stored only as a hash, rotated on every use. Each
// login starts a family; presenting a token that was already rotated away means it was copied, so the whole
// family is revoked and both thief and owner must log in again.
//
// Token format: rt_<id>.<secret>, the secret 32 random bytes; a fast hash suffices for a high-entropy secret.

import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { RefreshTokenRecord, RefreshTokenStore } from '../storage/ports.ts';

export type RefreshFailure = 'malformed' | 'unknown' | 'expired' | 'reused';

export class RefreshError extends Error {
  readonly reason: RefreshFailure;
  constructor(reason: RefreshFailure) {
    super(`refresh token ${reason}`);
    this.reason = reason;
  }
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export class RefreshTokens {
  private readonly store: RefreshTokenStore;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(store: RefreshTokenStore, ttlSeconds: number, now: () => number = Date.now) {
    this.store = store;
    this.ttlMs = ttlSeconds * 1000;
    this.now = now;
  }

  private mint(accountId: string, familyId: string): { token: string; record: RefreshTokenRecord } {
    const id = randomUUID();
    const secret = randomBytes(32).toString('base64url');
    const now = this.now();
    return {
      token: `rt_${id}.${secret}`,
      record: { id, familyId, accountId, secretHash: hashSecret(secret), createdAt: now, expiresAt: now + this.ttlMs, revokedAt: null, replacedBy: null },
    };
  }

  /** A new family for a fresh login. */
  async issue(accountId: string): Promise<string> {
    const { token, record } = this.mint(accountId, randomUUID());
    await this.store.insertRefresh(record);
    return token;
  }

  /** Exchanges a live token for the next one of its family; reuse of a spent token revokes the family. */
  async rotate(token: string): Promise<{ accountId: string; token: string }> {
    const m = /^rt_([0-9a-f-]{36})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) throw new RefreshError('malformed');
    const record = await this.store.findRefresh(m[1]);
    if (!record) throw new RefreshError('unknown');
    const want = Buffer.from(record.secretHash, 'hex');
    const got = Buffer.from(hashSecret(m[2]), 'hex');
    if (!timingSafeEqual(want, got)) throw new RefreshError('unknown');
    if (record.revokedAt !== null) {
      await this.store.revokeFamily(record.familyId, this.now());
      throw new RefreshError('reused');
    }
    if (record.expiresAt <= this.now()) throw new RefreshError('expired');
    const next = this.mint(record.accountId, record.familyId);
    if (!(await this.store.rotateRefresh(record.id, next.record, this.now()))) {
      // Lost a race with a concurrent use of the same token: that is reuse too.
      await this.store.revokeFamily(record.familyId, this.now());
      throw new RefreshError('reused');
    }
    return { accountId: record.accountId, token: next.token };
  }

  /**
   * Revokes the family of a token (logout of one session) for the account that holds it. Possession is proven by
   * the whole token, secret included (an id alone is no proof: ids show in logs and token listings). A token that is
   * malformed, unknown or whose secret does not match is ignored, as RFC 7009 §2.2 has it; a genuine token of another
   * account is refused (RFC 7009 §2.1: the token must have been issued to the caller).
   */
  async revoke(token: string, accountId: string): Promise<'revoked' | 'ignored' | 'not-yours'> {
    const m = /^rt_([0-9a-f-]{36})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return 'ignored';
    const record = await this.store.findRefresh(m[1]);
    if (!record) return 'ignored';
    const want = Buffer.from(record.secretHash, 'hex');
    const got = Buffer.from(hashSecret(m[2]), 'hex');
    if (!timingSafeEqual(want, got)) return 'ignored';
    if (record.accountId !== accountId) return 'not-yours';
    await this.store.revokeFamily(record.familyId, this.now());
    return 'revoked';
  }

  revokeAll(accountId: string): Promise<number> {
    return this.store.revokeAccountRefresh(accountId, this.now());
  }
}
