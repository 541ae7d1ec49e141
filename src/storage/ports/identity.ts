// Identity's ports: accounts and their Digest credentials, signing keys, refresh tokens, API keys, sealed SIP
// passwords, and the account administration the HTTP API uses.

import type { DigestAlgorithm } from '../../sip/digest.ts';

export interface Account {
  id: string;
  username: string;
  realm: string;
  /** Address of record owned by the account: user@realm. */
  aor: string;
  roles: string[];
  /** argon2id PHC string, or null when only SIP credentials exist (imported accounts). */
  passwordHash: string | null;
  disabled: boolean;
  /**
   * Access tokens issued and API keys created at or before this instant (epoch ms; 0: none) are refused: set when
   * the account is disabled, so its credentials stay dead when it is enabled again (identity/credential-validity.ts).
   */
  credentialsValidAfter: number;
  createdAt: number;
  updatedAt: number;
}

/** A Digest credential: the HA1 of one authentication username in one realm for one algorithm. */
export interface SipCredential {
  accountId: string;
  authUser: string;
  realm: string;
  algorithm: DigestAlgorithm;
  ha1: string;
}

export interface NewAccount {
  username: string;
  realm: string;
  roles?: string[];
  passwordHash: string | null;
  credentials: Array<Omit<SipCredential, 'accountId'>>;
}

export interface FoundCredential {
  credential: SipCredential;
  aors: string[];
}

export interface CredentialStore {
  /**
   * The credential and the AORs its account owns; null when unknown or the account is disabled. A cache may
   * answer synchronously (the REGISTER hot path then awaits nothing).
   */
  findSipCredential(authUser: string, realm: string, algorithm: DigestAlgorithm): FoundCredential | null | Promise<FoundCredential | null>;
}

export interface AccountStore {
  create(a: NewAccount): Promise<Account>;
  /** Creates many accounts in one transaction; existing names are skipped (counted in the result). */
  createMany(accounts: NewAccount[]): Promise<{ created: number; skipped: number }>;
  findByName(username: string, realm: string): Promise<Account | null>;
  findById(id: string): Promise<Account | null>;
  /** Replaces the account's password hash and Digest credentials together. */
  setPassword(accountId: string, passwordHash: string | null, credentials: Array<Omit<SipCredential, 'accountId'>>): Promise<void>;
  count(): Promise<number>;
}

export interface AccountQuery {
  /** Substring of user@realm. */
  search?: string;
  realm?: string;
  limit: number;
  offset: number;
}

export interface AccountAdmin {
  list(q: AccountQuery): Promise<{ total: number; accounts: Account[] }>;
  /** `credentialsValidAfter` only ever moves forward (the later of the stored and the given instant). */
  update(id: string, changes: { roles?: string[]; disabled?: boolean; credentialsValidAfter?: number }): Promise<Account>;
  /** Deletes the account with its credentials, tokens and keys. */
  delete(id: string): Promise<boolean>;
}

/** A JWT signing key; the private half only ever stored sealed. */
export interface SigningKeyRecord {
  kid: string;
  alg: string;
  publicJwk: Record<string, unknown>;
  privateSealed: string;
  createdAt: number;
  /** When it stopped signing; it stays in the JWKS until the tokens it signed have expired. */
  retiredAt: number | null;
}

export interface SigningKeyStore {
  listKeys(): Promise<SigningKeyRecord[]>;
  /** Inserts a key and retires every other active key, in one transaction. */
  addKey(k: SigningKeyRecord): Promise<void>;
  deleteKeysRetiredBefore(ts: number): Promise<number>;
}

export interface RefreshTokenRecord {
  id: string;
  familyId: string;
  accountId: string;
  secretHash: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  replacedBy: string | null;
}

export interface RefreshTokenStore {
  insertRefresh(t: RefreshTokenRecord): Promise<void>;
  findRefresh(id: string): Promise<RefreshTokenRecord | null>;
  /** Revokes `id` in favour of `next` if it is still live (compare-and-set); false when it was not. */
  rotateRefresh(id: string, next: RefreshTokenRecord, now: number): Promise<boolean>;
  revokeFamily(familyId: string, now: number): Promise<number>;
  revokeAccountRefresh(accountId: string, now: number): Promise<number>;
}

export interface ApiKeyRecord {
  id: string;
  accountId: string;
  name: string;
  secretHash: string;
  permissions: string[];
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface ApiKeyStore {
  insertApiKey(k: ApiKeyRecord): Promise<void>;
  findApiKey(id: string): Promise<ApiKeyRecord | null>;
  listApiKeys(accountId: string): Promise<ApiKeyRecord[]>;
  revokeApiKey(accountId: string, id: string, now: number): Promise<boolean>;
  touchApiKey(id: string, now: number): Promise<void>;
}

/**
 * Reversible SIP passwords: for accounts whose operator opted in (a switch that needs the password itself, Kazoo's
 * `Auth-Method: password`), the password sealed (AES-256-GCM) — never the plaintext. One per account.
 */
export interface SealedSipPasswordStore {
  getSealedSipPassword(accountId: string): Promise<string | null>;
  putSealedSipPassword(accountId: string, sealed: string): Promise<void>;
  deleteSealedSipPassword(accountId: string): Promise<boolean>;
}
