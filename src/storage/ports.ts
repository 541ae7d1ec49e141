// Ports: what the services need from storage, and nothing about how it is kept. Adapters live beside this
// file (sqlite/, memory/; postgres/ and redis/ later). Services import only from here.

import type { DigestAlgorithm } from '../sip/digest.ts';

/** One registered contact of an address of record (the location service's row, Kamailio's usrloc ucontact). */
export interface BindingRecord {
  /** Address of record key: user@domain, host lower-cased. */
  aor: string;
  /** Identity of the binding within the AOR: "+sip.instance|reg-id" for RFC 5626 flows, else the normalised contact URI. */
  key: string;
  /** Contact URI as registered. */
  contact: string;
  /** Contact header parameters other than expires and q, as written (e.g. ;+sip.instance="<urn:…>";reg-id=1). */
  params: string;
  q: number | null;
  /** Epoch ms. */
  expiresAt: number;
  callId: string;
  cseq: number;
  /** Path header values (RFC 3327), outermost first. */
  path: string[];
  instanceId: string | null;
  regId: number | null;
  transport: string;
  sourceAddress: string;
  sourcePort: number;
  localAddress: string;
  localPort: number;
  /** Connection the REGISTER arrived on (stream transports), valid on `node` only. */
  connectionId: number | null;
  /** The node (process) holding that connection. */
  node: string;
  userAgent: string | null;
  /** Epoch ms the binding was first created, and of the last REGISTER that touched it. */
  createdAt: number;
  updatedAt: number;
  /** The account that registered it. */
  accountId: string | null;
}

export type BindingWrite = { op: 'put'; binding: BindingRecord } | { op: 'delete'; aor: string; key: string };

export interface LocationStore {
  /** Every stored binding (the caller drops the expired ones); used to prime the in-memory index. */
  loadAll(): Promise<BindingRecord[]>;
  /** Applies the writes atomically; resolves once they are durable (group-committed with concurrent writes). */
  write(ops: BindingWrite[]): Promise<void>;
  /** Reads bindings straight from the store (CLI, other processes): of one AOR, or all. */
  list(aor?: string): Promise<BindingRecord[]>;
  /**
   * Housekeeping for log-structured adapters, called periodically with the live set: rewrite it and drop what
   * it supersedes once the journal has outgrown it. Adapters that update in place leave this out.
   */
  maintain?(live: LiveBindings): Promise<void>;
  close?(): void;
}

export interface LiveBindings {
  count: number;
  all(): Iterable<BindingRecord>;
}

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

/** Counters with expiry for failures and lockouts; in-process or shared (Redis). */
export interface FailureCounter {
  /** Adds one failure under `key` within a window of `windowSeconds`; returns the count in the window. */
  hit(key: string, windowSeconds: number): number | Promise<number>;
  /** Locks `key` for `seconds`. */
  lock(key: string, seconds: number): void | Promise<void>;
  /** Seconds the key stays locked, 0 when not locked. */
  lockedFor(key: string): number | Promise<number>;
  reset(key: string): void | Promise<void>;
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
  update(id: string, changes: { roles?: string[]; disabled?: boolean }): Promise<Account>;
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
