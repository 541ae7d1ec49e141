// Ports of the messaging room (src/messaging/): the durable message store (stored messages until acked, msilo's
// table and Signal-Server's message queue in one) and the app-session store. Adapters: storage/sqlite and
// storage/postgres (migration 8); the same contract runs on both (test/storage/contracts/message-store.contract.ts).

export type PushProviderName = 'fcm' | 'apns' | 'webpush';

/** Where a push goes (messaging/push/): RFC 8599's pn-provider, pn-prid and pn-param, plus Web Push's subscription keys. */
export interface PushTarget {
  provider: PushProviderName;
  /** The device's token (FCM registration token, APNs device token) or, for Web Push, the subscription's endpoint. */
  prid: string;
  /** pn-param: APNs "<team>.<bundle id>.<voip|remote>"; else null. */
  param: string | null;
  /** Web Push: the subscription's P-256 public key (65 bytes, base64url) and auth secret (16 bytes, base64url). */
  p256dh?: string;
  auth?: string;
}

/** A message waiting for its recipient. */
export interface StoredMessage {
  /** Random, opaque; what the recipient acks. */
  id: string;
  /** Delivery order within a recipient: increasing in the order the messages were stored. */
  seq: number;
  /** The recipient account. */
  accountId: string;
  /** The recipient device (phone accounts' device id), or null: any device of the account may take it. */
  deviceId: number | null;
  /** Who sent it (a SIP URI, already authenticated by whoever stored it). */
  sender: string;
  contentType: string;
  body: Buffer;
  /** The sender's id for this message: a retry with the same (sender, clientId) to the same account is stored once. */
  clientId: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface MessageStatus {
  accountId: string;
  sender: string;
  deliveredAt: number | null;
  expiresAt: number;
}

export type NewMessage = Omit<StoredMessage, 'id' | 'seq'>;

export type EnqueueResult =
  | { outcome: 'stored'; message: StoredMessage }
  /** The same (account, sender, clientId) was stored before (still queued, or already delivered): nothing new. */
  | { outcome: 'duplicate'; id: string; delivered: boolean }
  /** The account already holds `quota` undelivered messages. */
  | { outcome: 'quota' };

export interface MessageStore {
  /**
   * Stores a message unless its (account, sender, clientId) was stored before, or the account holds `quota`
   * undelivered messages; atomic across nodes.
   */
  enqueue(m: NewMessage, quota: number): Promise<EnqueueResult>;
  /**
   * Undelivered, unexpired messages for the account (and the device, when given: its own and the account-wide
   * ones), in delivery order, after `afterSeq`, at most `limit`.
   */
  pending(accountId: string, deviceId: number | null, now: number, limit: number, afterSeq?: number): Promise<StoredMessage[]>;
  /**
   * Marks a message delivered: its body is dropped at once; its id and clientId stay until it would have expired, so
   * a late retry of the send is still recognised. False when no undelivered message of that id is the account's
   * (another account's id, an unknown one, or already acked).
   */
  ack(accountId: string, id: string, now: number): Promise<boolean>;
  /** Undelivered, unexpired messages of the account. */
  count(accountId: string, now: number): Promise<number>;
  /**
   * What the sender may learn of a message (GET /v1/messages/{id}/status): its recipient, sender and when it was
   * delivered (null: still queued); null when there is no such message (unknown, or expired and swept).
   */
  status(id: string): Promise<MessageStatus | null>;
  /** Undelivered, unexpired messages per account, the fullest first (at most `limit` accounts): counts, never content. */
  queuedByAccount(now: number, limit: number): Promise<Array<{ accountId: string; queued: number }>>;
  /** Accounts holding undelivered, unexpired messages (at most `limit`): who a registering device may have some for. */
  accountsWaiting(now: number, limit: number): Promise<string[]>;
  /**
   * Removes up to `limit` rows past their expiry; returns the undelivered ones among them (expired unread, for the
   * events); several nodes sweeping at once never return a row twice.
   */
  expire(now: number, limit: number): Promise<StoredMessage[]>;
}

/** An app session (messaging/sessions.ts): a random 256-bit key per device, held sealed, named by its kid. */
export interface AppSessionRecord {
  kid: string;
  accountId: string;
  /** The phone device, or null for a password login (one session per client instance). */
  deviceId: number | null;
  /** The key, sealed (identity/seal.ts) under a key derived from the master key; never the plaintext. */
  sealedKey: string;
  /** Where to push this device (messaging/push/), or null; `encrypt`: pushes carry the details sealed to the key. */
  push: (PushTarget & { encrypt: boolean }) | null;
  createdAt: number;
  expiresAt: number;
}

export interface AppSessionStore {
  createSession(s: AppSessionRecord): Promise<void>;
  getSession(kid: string): Promise<AppSessionRecord | null>;
  /** The account's sessions (of one device when given), newest first. */
  listSessions(accountId: string, deviceId?: number | null): Promise<AppSessionRecord[]>;
  /** Sets (or with null clears) the session's push target. False when there is no such session. */
  setSessionPush(kid: string, push: AppSessionRecord['push']): Promise<boolean>;
  /** Moves a session's expiry earlier (rollover's overlap); never later. False when there is no such session. */
  shortenSession(kid: string, expiresAt: number): Promise<boolean>;
  deleteSession(kid: string): Promise<boolean>;
  /** Ends the account's sessions (of one device when given); how many. */
  deleteSessions(accountId: string, deviceId?: number): Promise<number>;
  /** Removes sessions past expiry; how many. */
  expireSessions(now: number): Promise<number>;
}
