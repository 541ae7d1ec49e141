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

/** A binding nothing can reach once its connection closes: WebSocket contacts (.invalid hosts), RFC 5626 flows. */
export function diesWithConnection(b: BindingRecord): boolean {
  return b.connectionId !== null && (b.transport === 'WS' || b.transport === 'WSS' || b.regId !== null);
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

/** Counters with expiry for failures and lockouts; in-process or shared (Redis). */
export interface FailureCounter {
  /** Adds one failure under `key` within a window of `windowSeconds`; returns the count in the window. */
  hit(key: string, windowSeconds: number): number | Promise<number>;
  /** Locks `key` for `seconds`. */
  lock(key: string, seconds: number): void | Promise<void>;
  /** Seconds the key stays locked, 0 when not locked. */
  lockedFor(key: string): number | Promise<number>;
  reset(key: string): void | Promise<void>;
  /** Marks `key` (a source an account authenticated from) for `seconds`. */
  remember(key: string, seconds: number): void | Promise<void>;
  /** Whether `key` is marked. */
  remembered(key: string): boolean | Promise<boolean>;
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

// Presence (RFC 3856 / 3903 / 6665): subscriptions, publications and watcher policies. The presence service keeps
// all three in memory and writes every change through this port, so they survive a restart.

/** Where a request came from and where requests back must go: the subscriber's or publisher's own flow. */
export interface FlowRecord {
  transport: string;
  address: string;
  port: number;
  /** Connection of a stream transport, valid on `node` only. */
  connectionId: number | null;
  node: string;
}

/** A subscription to an event package (RFC 6665): a dialog in which we are the notifier. */
export interface SubscriptionRecord {
  /** Our identifier for it (also our dialog tag). */
  id: string;
  event: string;
  /** The Event header's id parameter, or null. */
  eventId: string | null;
  /** The presentity watched (user@domain). */
  presentity: string;
  /** The authenticated watcher (user@domain) and its account. */
  watcher: string;
  watcherAccountId: string | null;
  state: 'pending' | 'active';
  callId: string;
  /** Our tag (From of our NOTIFYs) and the subscriber's (From tag of its SUBSCRIBE). */
  localTag: string;
  remoteTag: string;
  /** The To URI of the SUBSCRIBE as written (our From), and its From value without the tag (our To). */
  localUri: string;
  remoteNameAddr: string;
  /** The subscriber's Contact URI (Request-URI of our NOTIFYs), and the Record-Route values in order. */
  remoteTarget: string;
  routeSet: string[];
  /** The last CSeq we sent in this dialog, and the last one the subscriber sent. */
  localCseq: number;
  remoteCseq: number;
  /** MIME types the subscriber accepts (empty: the package's default). */
  accept: string[];
  flow: FlowRecord;
  /** Epoch ms. */
  expiresAt: number;
  createdAt: number;
  updatedAt: number;
}

/** One PIDF tuple, as published or derived. */
export interface PresenceTuple {
  id: string;
  basic: 'open' | 'closed';
  contact: string | null;
  priority: number | null;
  notes: string[];
  /** ISO time stamp, as published. */
  timestamp: string | null;
}

/** The person element of RFC 4479/4480: what the presentity is doing. */
export interface PresencePerson {
  id: string;
  /** RPID activities (RFC 4480 §3.2), element names such as "busy", "away", "on-the-phone"; "other" keeps its text. */
  activities: string[];
  notes: string[];
}

/** The state one publication carries (a parsed PIDF document, reduced to what Switchboard composes). */
export interface PresenceState {
  tuples: PresenceTuple[];
  person: PresencePerson | null;
  notes: string[];
}

/** Event state published with PUBLISH (RFC 3903) or over HTTP. */
export interface PublicationRecord {
  /** The current entity tag; a refresh or modification replaces it. */
  etag: string;
  aor: string;
  event: string;
  state: PresenceState;
  /** The publisher's flow ('HTTP' for the HTTP API), to tell which registered device published. */
  flow: FlowRecord;
  accountId: string | null;
  expiresAt: number;
  createdAt: number;
  updatedAt: number;
}

/** Who may watch a presentity: everyone in its realm (the default), an allow list, or nobody. */
export interface WatcherPolicyRecord {
  aor: string;
  mode: 'realm' | 'allow-list' | 'nobody';
  /** Watcher addresses of record (user@domain) allowed in addition to the mode's rule. */
  allow: string[];
  updatedAt: number;
}

export type PresenceWrite =
  | { op: 'put-subscription'; subscription: SubscriptionRecord }
  | { op: 'delete-subscription'; id: string }
  | { op: 'put-publication'; publication: PublicationRecord; replaces?: string }
  | { op: 'delete-publication'; etag: string };

export interface PresenceStore {
  loadSubscriptions(): Promise<SubscriptionRecord[]>;
  loadPublications(): Promise<PublicationRecord[]>;
  loadPolicies(): Promise<WatcherPolicyRecord[]>;
  /** Applies the writes atomically; resolves once durable (group-committed with concurrent writes). */
  write(ops: PresenceWrite[]): Promise<void>;
  putPolicy(p: WatcherPolicyRecord): Promise<void>;
  deletePolicy(aor: string): Promise<void>;
  close?(): void;
}

// --- Short-lived shared state and phone accounts (issue 5) ---

/** A JSON value as the cache stores it: adapters serialise, so nothing relies on in-process object identity. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Shared short-lived state with expiry: verification sessions, rate-limit buckets, used link tokens. In-process
 * (memory/cache.ts) or Redis. Values are JSON; TTLs are in seconds (fractions are rounded up by adapters that
 * need whole units). Every operation is atomic on its key, so services build read-modify-write on
 * compareAndSet (Redis: a small Lua script) instead of locks.
 */
export interface Cache {
  get<T extends JsonValue = JsonValue>(key: string): Promise<T | null>;
  set(key: string, value: JsonValue, ttlSeconds: number): Promise<void>;
  /** Sets only when the key holds nothing (SET NX); true when it was set. */
  setIfAbsent(key: string, value: JsonValue, ttlSeconds: number): Promise<boolean>;
  /**
   * Replaces the value only if the key still holds `expected` (compared as serialised JSON; null = absent);
   * true when it did. `value` null deletes.
   */
  compareAndSet(key: string, expected: JsonValue | null, value: JsonValue | null, ttlSeconds: number): Promise<boolean>;
  delete(key: string): Promise<void>;
}

/** A salted token hash: hex salt, hex HKDF-SHA256(token, salt, "authtoken") (reference/phone-registration.md). */
export interface SaltedHash {
  salt: string;
  hash: string;
}

/** A device of a phone account: device 1 is the primary, the others are linked. */
export interface PhoneDevice {
  accountId: string;
  deviceId: number;
  name: string | null;
  auth: SaltedHash;
  /** Locked after a failed registration-lock attempt: its password can never verify again. */
  locked: boolean;
  capabilities: Record<string, unknown>;
  fetchesMessages: boolean;
  registrationId: number | null;
  createdAt: number;
  /** Epoch ms of the start of the (UTC) day it was last seen. */
  lastSeen: number;
}

/** An account created by phone-number sign-up: a Switchboard account named by its E.164 number. */
export interface PhoneAccount {
  accountId: string;
  number: string;
  realm: string;
  pni: string;
  disabled: boolean;
  registrationLock: SaltedHash | null;
  recoveryPassword: SaltedHash | null;
  identityKeys: Record<string, unknown>;
  attributes: Record<string, unknown>;
  createdAt: number;
  devices: PhoneDevice[];
}

export type NewPhoneDevice = Omit<PhoneDevice, 'accountId' | 'deviceId' | 'locked'>;

/** The Digest credentials of a device, given its authentication username (`<account-id>.<device-id>`). */
export type DeviceCredentials = (authUser: string) => Array<Omit<SipCredential, 'accountId'>>;

export interface PhoneRegistration {
  number: string;
  realm: string;
  /** The account the caller found for the number (null: none); the store refuses with 'conflict' if that changed. */
  expectedAccountId: string | null;
  primary: NewPhoneDevice;
  credentials: DeviceCredentials;
  registrationLock: SaltedHash | null;
  recoveryPassword: SaltedHash | null;
  identityKeys: Record<string, unknown>;
  attributes: Record<string, unknown>;
  now: number;
}

export type PhoneRegistrationResult =
  | { outcome: 'created' | 'reregistered'; account: PhoneAccount; removedAuthUsers: string[] }
  /** The name belongs to an account that was not made by phone sign-up. */
  | { outcome: 'taken' }
  | { outcome: 'conflict' };

export interface PhoneStore {
  findByNumber(number: string, realm: string): Promise<PhoneAccount | null>;
  findById(accountId: string): Promise<PhoneAccount | null>;
  /** One device with its account's disabled flag (device authentication; one indexed lookup). */
  findDevice(accountId: string, deviceId: number): Promise<{ device: PhoneDevice; disabled: boolean; number: string; realm: string } | null>;
  /** Creates the account and its primary device, or re-registers: same account, every device replaced. Atomic. */
  register(r: PhoneRegistration): Promise<PhoneRegistrationResult>;
  /** Adds a linked device with the next device id, unless the account already has `maxDevices`. */
  addDevice(accountId: string, d: NewPhoneDevice, credentials: DeviceCredentials, maxDevices: number): Promise<PhoneDevice | 'full' | 'no-account'>;
  /** Removes a device and its credentials; false when there was none. */
  removeDevice(accountId: string, deviceId: number): Promise<boolean>;
  setRegistrationLock(accountId: string, lock: SaltedHash | null): Promise<void>;
  /** Locks every device of the account and drops their Digest credentials; returns their auth usernames. */
  lockDevices(accountId: string): Promise<string[]>;
  /** Raises a device's last-seen day (never lowers it). */
  touchDevice(accountId: string, deviceId: number, day: number): Promise<void>;
  /**
   * Idle expiry: removes linked devices last seen before `linkedBefore`, and whole accounts whose devices were
   * all last seen before `accountBefore` or whose primary was last seen before `primaryBefore`.
   */
  expire(c: { linkedBefore: number; primaryBefore: number; accountBefore: number }): Promise<{
    devices: Array<{ accountId: string; deviceId: number }>;
    accounts: Array<{ accountId: string; aor: string; authUsers: string[] }>;
  }>;
}

// --- The location index (the hot copy of bindings; issue 8) ---

/** An AOR's bindings as read, with the version a write must still find (compare-and-set). */
export interface AorState {
  /** May hold bindings that expired but were not swept yet: callers filter by expiresAt. */
  bindings: BindingRecord[];
  version: number | BindingRecord[] | null;
}

/**
 * The hot copy of the location: in-process (one node; reads answer synchronously) or shared (Redis: every node
 * reads and writes the same index, with compare-and-set per AOR and expiry claimed by one node at a time).
 * The LocationStore stays the durable truth; the index is rebuilt from it when empty.
 */
export interface LocationIndex {
  /** True when several nodes share it (writes can then conflict, and priming happens once for all). */
  readonly shared: boolean;
  read(aor: string): AorState | Promise<AorState>;
  /** Replaces the AOR's bindings if they are still at `version`; false when another writer got there first. */
  write(aor: string, version: AorState['version'], next: BindingRecord[]): boolean | Promise<boolean>;
  /** Replaces the AOR's bindings unconditionally (priming, reload after a failed store write). */
  load(bindings: BindingRecord[], aor?: string): void | Promise<void>;
  /** AORs holding a binding due by `now`, claimed so that one node expires each. */
  claimDue(now: number): string[] | Promise<string[]>;
  /** Every AOR with its bindings. */
  entries(): AsyncIterable<[string, BindingRecord[]]>;
  /** Shared index: this node is alive until `until` (epoch ms); refreshed every few seconds. */
  heartbeat?(node: string, until: number): Promise<void>;
  /**
   * Shared index: nodes whose heartbeat lapsed before `now`, each with the time it lapsed, claimed for a minute by
   * the caller (so one node cleans up after each, and another if that one dies too). A node known to hold flows
   * but with no heartbeat on record is given one until `graceUntil`.
   */
  claimDeparted?(now: number, graceUntil: number): Promise<Array<{ node: string; lapsedAt: number }>>;
  /** Shared index: the AORs that held a connection-bound binding of `node` (some may no longer). */
  flowAors?(node: string): Promise<string[]>;
  /** Shared index: `node` is gone and cleaned up: forget its heartbeat and its flow AORs. */
  forgetNode?(node: string): Promise<void>;
  /** Binding and AOR counts (a shared index answers from its last refresh). */
  counts(): { bindings: number; aors: number };
  /** For a shared index: whether it already holds the deployment's bindings; take the priming lease if not. */
  beginPriming?(): Promise<'primed' | 'mine' | 'busy'>;
  endPriming?(): Promise<void>;
  /** For a shared index: whether it still holds the deployment's bindings (false after Redis lost its data). */
  isPrimed?(): Promise<boolean>;
  /**
   * Synchronous walk of the current bindings, each handed out only while still current (the in-process index),
   * for a log-structured store's compaction.
   */
  walk?(): Iterable<BindingRecord>;
  close?(): void;
}
