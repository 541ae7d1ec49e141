// The storage contracts (test/storage/contracts/) against the SQLite adapters: a fresh database file per test; a
// second "node" is a second connection to the same file, as the CLI or another process would open it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { describe } from 'node:test';
import { SqliteAccountStore } from '../../src/storage/sqlite/account-store.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqliteMessageStore } from '../../src/storage/sqlite/message-store.ts';
import { SqliteBridgeStore } from '../../src/storage/sqlite/bridge-store.ts';
import { SqliteLocationStore } from '../../src/storage/sqlite/location-store.ts';
import { SqlitePhoneStore } from '../../src/storage/sqlite/phone-store.ts';
import { SqlitePresenceStore } from '../../src/storage/sqlite/presence-store.ts';
import { SqliteSealedSipPasswordStore } from '../../src/storage/sqlite/sealed-sip-password-store.ts';
import { SqliteTokenStore } from '../../src/storage/sqlite/token-store.ts';
import { accountStoreContract } from './contracts/account-store.contract.ts';
import { messageStoreContract } from './contracts/message-store.contract.ts';
import { bridgeStoreContract } from './contracts/bridge-store.contract.ts';
import { locationStoreContract } from './contracts/location-store.contract.ts';
import { phoneStoreContract } from './contracts/phone-store.contract.ts';
import { presenceStoreContract } from './contracts/presence-store.contract.ts';
import { sealedPasswordStoreContract } from './contracts/sealed-password-store.contract.ts';
import type { StoreEnv, Stores } from './contracts/stores.ts';
import { tokenStoreContract } from './contracts/token-store.contract.ts';

async function open(): Promise<StoreEnv> {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-contract-'));
  const file = path.join(dir, 'db.sqlite');
  const opened: Array<{ db: DatabaseSync; stores: Stores }> = [];
  const connect = (): Stores => {
    const db = openDatabase({ file, durability: 'os' });
    const stores: Stores = {
      accounts: new SqliteAccountStore(db),
      tokens: new SqliteTokenStore(db),
      location: new SqliteLocationStore(db),
      phone: new SqlitePhoneStore(db),
      presence: new SqlitePresenceStore(db),
      sealed: new SqliteSealedSipPasswordStore(db),
      messages: new SqliteMessageStore(db),
      bridge: new SqliteBridgeStore(db),
    };
    opened.push({ db, stores });
    return stores;
  };
  return {
    ...connect(),
    node: async () => connect(),
    close: async () => {
      for (const { db, stores } of opened) {
        stores.presence.close?.();
        stores.location.close?.();
        db.close();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('SQLite adapters', () => {
  accountStoreContract(open);
  tokenStoreContract(open);
  locationStoreContract(open);
  phoneStoreContract(open);
  presenceStoreContract(open);
  sealedPasswordStoreContract(open);
  messageStoreContract(open);
  bridgeStoreContract(open);
});
