// What a storage contract runs against: every store of one adapter over one fresh database, and the same database
// as a second node sees it (its own connections and store objects), for the concurrency cases. The adapters'
// test files (sqlite-contracts.test.ts, postgres-contracts.test.ts) supply the factory; the contracts never name
// an adapter.

import { afterEach, beforeEach } from 'node:test';
import type {
  AccountAdmin,
  AccountStore,
  ApiKeyStore,
  CredentialStore,
  LocationStore,
  PhoneStore,
  PresenceStore,
  RefreshTokenStore,
  SealedSipPasswordStore,
  SigningKeyStore,
} from '../../../src/storage/ports.ts';
import type { AppSessionStore, MessageStore } from '../../../src/storage/ports/messaging.ts';
import type { LinkedAccountStore, VaultStore } from '../../../src/storage/ports/bridge.ts';

export interface Stores {
  accounts: AccountStore & AccountAdmin & CredentialStore;
  tokens: SigningKeyStore & RefreshTokenStore & ApiKeyStore;
  /** Both adapters count their group commits. */
  location: LocationStore & { commits: number };
  phone: PhoneStore;
  presence: PresenceStore & { commits: number };
  sealed: SealedSipPasswordStore;
  /** Stored messages and app sessions (one adapter object serves both ports). */
  messages: MessageStore & AppSessionStore;
  /** The vault and linked accounts (one adapter object serves both ports). */
  bridge: VaultStore & LinkedAccountStore;
}

export interface StoreEnv extends Stores {
  /** Another node (process) on the same database: new connections, new store objects. */
  node(): Promise<Stores>;
  /** Waits for pending group commits, closes every connection and removes the database. */
  close(): Promise<void>;
}

export type OpenStores = () => Promise<StoreEnv>;

/**
 * Cases where an adapter is known to differ from the contract, by case id: the case still runs, reported as a
 * to-do with the reason, until the adapter is fixed.
 */
export type KnownDrift = Partial<Record<string, string>>;

/** A fresh database for each test of the enclosing describe(). */
export function useStores(open: OpenStores): () => StoreEnv {
  let env: StoreEnv | null = null;
  beforeEach(async () => {
    env = await open();
  });
  afterEach(async () => {
    const e = env;
    env = null;
    await e?.close();
  });
  return () => {
    if (!env) throw new Error('no store environment outside a test');
    return env;
  };
}

/** Resolves after the current event-loop turn (and the group commits it scheduled) has begun. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
