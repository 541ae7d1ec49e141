// Ports of the bridge room (src/bridge/): the vault (an account's random Secret, wrapped once per way of opening it)
// and the linked accounts (remote IM credentials encrypted under that Secret). Adapters: storage/sqlite and
// storage/postgres (migration 9); one contract runs on both (test/storage/contracts/bridge-store.contract.ts).
// Nothing here is plaintext: a wrap is AES-256-GCM output, a linked password is AES-256-GCM output under the Secret.

/** How a wrap is opened: the account's password, its recovery key, or a phone device's own key ("device:<id>"). */
export type VaultSlot = 'password' | 'recovery' | `device:${number}`;

export interface VaultWrap {
  slot: VaultSlot;
  /** The KDF's salt (base64url): argon2id for a password, HKDF for a recovery or device key. */
  salt: string;
  /** The KDF and its cost, e.g. "argon2id m=19456 t=2 p=1" or "hkdf-sha256": what opens this wrap later. */
  kdf: string;
  /** base64url(iv | tag | ciphertext) of the Secret. */
  wrapped: string;
}

export type LinkType = 'xmpp' | 'irc' | 'sip';
export type LinkStateName = 'connecting' | 'connected' | 'bad_credentials' | 'unreachable' | 'disconnected';

export interface LinkedAccountRecord {
  id: string;
  accountId: string;
  type: LinkType;
  server: string;
  username: string;
  /** Protocol options, JSON (bounded by the route). */
  options: string;
  /** The remote password under the Secret: base64url(iv | tag | ciphertext), AAD = account id + linked-account id. */
  ciphertext: string;
  /** Opt-in "stay connected": the credential sealed to the connectors' persistent key of this type, else null. */
  staySealed: string | null;
  /** The connector holding the connection now, or null. */
  connector: string | null;
  state: LinkStateName;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
}

export type NewLinkedAccount = Omit<LinkedAccountRecord, 'connector' | 'state' | 'reason' | 'updatedAt'>;

export interface VaultStore {
  /** Every wrap of the account's Secret (empty: no vault yet). */
  getWraps(accountId: string): Promise<VaultWrap[]>;
  /** Creates the vault with these wraps unless the account has one already (false then); atomic across nodes. */
  createVault(accountId: string, wraps: VaultWrap[]): Promise<boolean>;
  /** Sets one wrap (insert or replace). */
  putWrap(accountId: string, wrap: VaultWrap): Promise<void>;
  /** Removes one wrap; false when there was none. */
  deleteWrap(accountId: string, slot: VaultSlot): Promise<boolean>;
  /** Removes the vault and every linked account of the account (the Secret is gone: they cannot be opened). */
  deleteVault(accountId: string): Promise<void>;
}

export interface LinkedAccountStore {
  /** Adds a linked account unless the account holds `max` already (false then); atomic across nodes. */
  createLinked(r: NewLinkedAccount, max: number): Promise<boolean>;
  getLinked(id: string): Promise<LinkedAccountRecord | null>;
  /** The account's linked accounts, oldest first. */
  listLinked(accountId: string): Promise<LinkedAccountRecord[]>;
  /** Removes one of the account's linked accounts; false when it is not the account's. */
  deleteLinked(accountId: string, id: string): Promise<boolean>;
  /** Records a link's state unless the record is newer than `at` (a late report); false then, or when there is no such link. */
  setLinkState(id: string, state: LinkStateName, reason: string | null, at: number): Promise<boolean>;
  /** Sets or clears the stay-connected copy. */
  setStaySealed(id: string, staySealed: string | null, at: number): Promise<void>;
  /** Compare-and-set of the connector holding the link: true when it was `from` and is now `to` (one winner). */
  assignConnector(id: string, from: string | null, to: string | null): Promise<boolean>;
  /** Linked accounts of a type with a stay-connected copy, at most `limit`. */
  listStayConnected(type: LinkType, limit: number): Promise<LinkedAccountRecord[]>;
  /** Linked accounts held by this connector. */
  listByConnector(connector: string): Promise<LinkedAccountRecord[]>;
}
