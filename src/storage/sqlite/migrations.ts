// Schema migrations, applied in order and never edited once released: a change is a new migration.
// The PostgreSQL adapter keeps the same numbering so both stores move together.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'accounts and sip credentials',
    sql: `
      CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        realm TEXT NOT NULL,
        password_hash TEXT,
        roles TEXT NOT NULL DEFAULT '[]',
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (username, realm)
      );
      CREATE TABLE sip_credentials (
        auth_user TEXT NOT NULL,
        realm TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        ha1 TEXT NOT NULL,
        PRIMARY KEY (auth_user, realm, algorithm)
      ) WITHOUT ROWID;
      CREATE INDEX sip_credentials_account ON sip_credentials(account_id);
    `,
  },
  {
    version: 2,
    name: 'location binding journal',
    // The location store is log-structured: each group commit appends ONE row holding every binding write of
    // that commit (a JSON array; see location-store.ts for the record layout), and replaying the rows in order
    // gives the bindings. Appends touch only the table's last pages and cost one statement per commit, however
    // many REGISTERs it carries and however the AORs are spread; an upsert table rewrote one random page per
    // binding (measured 50-70 us per row against about 2 us per write here, bench/RESULTS.md). Compaction
    // rewrites the live bindings and drops older rows once the superseded writes outnumber them.
    sql: `
      CREATE TABLE binding_journal (
        seq INTEGER PRIMARY KEY,
        writes TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'tokens: signing keys, refresh tokens, api keys',
    sql: `
      CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        -- the private JWK sealed with AES-256-GCM under a key derived from the master key
        private_sealed TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
      );
      CREATE TABLE refresh_tokens (
        id TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        secret_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER,
        replaced_by TEXT
      );
      CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
      CREATE INDEX refresh_tokens_account ON refresh_tokens(account_id);
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        last_used_at INTEGER
      );
      CREATE INDEX api_keys_account ON api_keys(account_id);
    `,
  },
  {
    version: 4,
    name: 'phone sign-up: phone accounts and devices',
    // A phone account is an accounts row (username = E.164 number, realm = the default realm) plus this row;
    // its devices carry salted HKDF password hashes, and their Digest HA1s live in sip_credentials under the
    // auth user "<account-id>.<device-id>", so the REGISTER lookup stays one primary-key read.
    sql: `
      CREATE TABLE phone_accounts (
        account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        pni TEXT NOT NULL UNIQUE,
        -- salted HKDF hashes as JSON {"salt","hash"}, or NULL
        registration_lock TEXT,
        recovery_password TEXT,
        identity_keys TEXT NOT NULL DEFAULT '{}',
        attributes TEXT NOT NULL DEFAULT '{}',
        next_device_id INTEGER NOT NULL DEFAULT 2,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE phone_devices (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        device_id INTEGER NOT NULL,
        name TEXT,
        auth_salt TEXT NOT NULL,
        auth_hash TEXT NOT NULL,
        locked INTEGER NOT NULL DEFAULT 0,
        capabilities TEXT NOT NULL DEFAULT '{}',
        fetches_messages INTEGER NOT NULL DEFAULT 0,
        registration_id INTEGER,
        created_at INTEGER NOT NULL,
        -- start of the UTC day the device was last seen (day precision)
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (account_id, device_id)
      ) WITHOUT ROWID;
      CREATE INDEX phone_devices_last_seen ON phone_devices(last_seen);
    `,
  },
  {
    version: 5,
    name: 'presence: subscriptions, publications, watcher policies',
    // Rows are upserted by key (a subscription's id, a publication's entity tag) and hold the record as JSON:
    // the presence service keeps them in memory and reads the tables only at startup.
    sql: `
      CREATE TABLE presence_subscriptions (
        id TEXT PRIMARY KEY,
        presentity TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE TABLE presence_publications (
        etag TEXT PRIMARY KEY,
        aor TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE TABLE presence_policies (
        aor TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        allow TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 6,
    name: 'reversible SIP passwords (opt-in, sealed)',
    // Only for accounts whose operator opted in (a Kazoo/Kamailio switch that needs `Auth-Method: password`): the SIP
    // password sealed with AES-256-GCM under a key derived from the master key, bound to the account id. Never the
    // plaintext; gone with the account.
    sql: `
      CREATE TABLE sip_passwords_sealed (
        account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        sealed TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 7,
    name: 'accounts: credentials valid after',
    // Access tokens issued and API keys created at or before this instant (epoch ms) are refused: disabling an
    // account sets it, so they stay dead once it is enabled again (identity/credential-validity.ts).
    sql: `ALTER TABLE accounts ADD COLUMN valid_after INTEGER NOT NULL DEFAULT 0;`,
  },
  {
    version: 8,
    name: 'messaging: stored messages, app sessions',
    // Messages wait here until their recipient acks them (SIP MESSAGE answered 202, the app's inbox). seq is the
    // rowid: delivery order. An acked row keeps its id and client id (body emptied, delivered_at set) until it would
    // have expired, so a retried send is recognised after delivery too. App sessions hold their key sealed only.
    sql: `
      CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        device_id INTEGER,
        sender TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        client_id TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        delivered_at INTEGER
      );
      CREATE UNIQUE INDEX messages_client_id ON messages(account_id, sender, client_id) WHERE client_id IS NOT NULL;
      CREATE INDEX messages_pending ON messages(account_id, seq) WHERE delivered_at IS NULL;
      CREATE INDEX messages_expires ON messages(expires_at);
      CREATE TABLE app_sessions (
        kid TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        device_id INTEGER,
        sealed_key TEXT NOT NULL,
        push TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX app_sessions_account ON app_sessions(account_id, device_id);
      CREATE INDEX app_sessions_expires ON app_sessions(expires_at);
    `,
  },
  {
    version: 9,
    name: 'bridge: vault wraps, linked accounts',
    // The vault: one row per way of opening an account's Secret (password, recovery key, phone device); linked
    // accounts hold the remote password encrypted under the Secret, and their live state (bridge/). Nothing plaintext.
    sql: `
      CREATE TABLE vault_wraps (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        slot TEXT NOT NULL,
        salt TEXT NOT NULL,
        kdf TEXT NOT NULL,
        wrapped TEXT NOT NULL,
        PRIMARY KEY (account_id, slot)
      ) WITHOUT ROWID;
      CREATE TABLE linked_accounts (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        server TEXT NOT NULL,
        username TEXT NOT NULL,
        options TEXT NOT NULL,
        ciphertext TEXT NOT NULL,
        stay_sealed TEXT,
        connector TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX linked_accounts_account ON linked_accounts(account_id, created_at);
      CREATE INDEX linked_accounts_connector ON linked_accounts(connector);
    `,
  },
];
