// API keys for machines: shown once at creation, stored as a SHA-256 hash of a 256-bit secret, with
// permissions (scopes), an optional expiry and revocation. Format: sbk_<id>_<secret>.

import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, ApiKeyStore } from '../storage/ports.ts';

export const API_KEY_PERMISSIONS = ['registrations.read', 'registrations.write', 'users.read', 'users.write', 'presence.read', 'presence.write', 'events.read', 'metrics.read'] as const;

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function isApiKey(token: string): boolean {
  return token.startsWith('sbk_');
}

export class ApiKeys {
  private readonly store: ApiKeyStore;
  private readonly now: () => number;
  private accept: ((record: ApiKeyRecord) => boolean | Promise<boolean>) | null = null;

  constructor(store: ApiKeyStore, now: () => number = Date.now) {
    this.store = store;
    this.now = now;
  }

  /** A further check of every genuine, live key: its account still accepts it (identity/credential-validity.ts). */
  acceptWith(check: (record: ApiKeyRecord) => boolean | Promise<boolean>): void {
    this.accept = check;
  }

  async create(accountId: string, name: string, permissions: string[], expiresAt: number | null): Promise<{ key: string; record: ApiKeyRecord }> {
    const id = randomUUID().replace(/-/g, '');
    const secret = randomBytes(32).toString('base64url');
    const record: ApiKeyRecord = {
      id, accountId, name, secretHash: hashSecret(secret), permissions, createdAt: this.now(), expiresAt, revokedAt: null, lastUsedAt: null,
    };
    await this.store.insertApiKey(record);
    return { key: `sbk_${id}_${secret}`, record };
  }

  /** The key's record when the key is genuine, live and unexpired; null otherwise. */
  async verify(key: string): Promise<ApiKeyRecord | null> {
    const m = /^sbk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/.exec(key);
    if (!m) return null;
    const record = await this.store.findApiKey(m[1]);
    if (!record) return null;
    const ok = timingSafeEqual(Buffer.from(record.secretHash, 'hex'), Buffer.from(hashSecret(m[2]), 'hex'));
    if (!ok || record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt <= this.now())) return null;
    if (this.accept && !(await this.accept(record))) return null;
    await this.store.touchApiKey(record.id, this.now());
    return record;
  }

  list(accountId: string): Promise<ApiKeyRecord[]> {
    return this.store.listApiKeys(accountId);
  }

  revoke(accountId: string, id: string): Promise<boolean> {
    return this.store.revokeApiKey(accountId, id, this.now());
  }
}
