// The storage contracts (test/storage/contracts/) against the PostgreSQL adapters: a fresh schema per test,
// dropped afterwards; a second "node" is a second pool on the same schema, as another Switchboard process.
import { describe } from 'node:test';
import { PostgresAccountStore } from '../../src/storage/postgres/account-store.ts';
import { openPostgres, type Db } from '../../src/storage/postgres/database.ts';
import { PostgresMessageStore } from '../../src/storage/postgres/message-store.ts';
import { PostgresBridgeStore } from '../../src/storage/postgres/bridge-store.ts';
import { PostgresLocationStore } from '../../src/storage/postgres/location-store.ts';
import { PostgresPhoneStore } from '../../src/storage/postgres/phone-store.ts';
import { PostgresPresenceStore } from '../../src/storage/postgres/presence-store.ts';
import { PostgresSealedSipPasswordStore } from '../../src/storage/postgres/sealed-sip-password-store.ts';
import { PostgresTokenStore } from '../../src/storage/postgres/token-store.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';
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
  const schema = freshSchema();
  const opened: Array<{ db: Db; location: PostgresLocationStore; presence: PostgresPresenceStore }> = [];
  const connect = async (): Promise<Stores> => {
    const db = await openPostgres({ url: PG_URL, schema, poolSize: 4 });
    const location = new PostgresLocationStore(db);
    const presence = new PostgresPresenceStore(db);
    opened.push({ db, location, presence });
    return {
      accounts: new PostgresAccountStore(db),
      tokens: new PostgresTokenStore(db),
      location,
      phone: new PostgresPhoneStore(db),
      presence,
      sealed: new PostgresSealedSipPasswordStore(db),
      messages: new PostgresMessageStore(db),
      bridge: new PostgresBridgeStore(db),
    };
  };
  return {
    ...(await connect()),
    node: connect,
    close: async () => {
      try {
        for (const { db, location, presence } of opened) {
          await Promise.all([location.drain(), presence.drain()]);
          await db.end();
        }
      } finally {
        await dropSchema(schema);
      }
    },
  };
}

describe('PostgreSQL adapters', { skip: await postgresMissing() }, () => {
  accountStoreContract(open);
  tokenStoreContract(open);
  locationStoreContract(open);
  phoneStoreContract(open);
  presenceStoreContract(open);
  sealedPasswordStoreContract(open);
  messageStoreContract(open);
  bridgeStoreContract(open);
});
