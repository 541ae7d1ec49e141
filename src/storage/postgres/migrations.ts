// PostgreSQL schema migrations: the same version numbers and meaning as the SQLite ones (src/storage/sqlite/
// migrations.ts), so a deployment moving between stores talks about the same schema. Where the engines differ
// the shape differs: bindings are an upserted table here (PostgreSQL absorbs scattered row updates; SQLite's
// page-per-row cost made the journal the right shape there).

export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

export const PG_MIGRATIONS: PgMigration[] = [
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
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (username, realm)
      );
      CREATE TABLE sip_credentials (
        auth_user TEXT NOT NULL,
        realm TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        ha1 TEXT NOT NULL,
        PRIMARY KEY (auth_user, realm, algorithm)
      );
      CREATE INDEX sip_credentials_account ON sip_credentials(account_id);
    `,
  },
  {
    version: 2,
    name: 'location bindings',
    sql: `
      CREATE TABLE bindings (
        aor TEXT NOT NULL,
        binding_key TEXT NOT NULL,
        contact TEXT NOT NULL,
        params TEXT NOT NULL,
        q DOUBLE PRECISION,
        expires_at BIGINT NOT NULL,
        call_id TEXT NOT NULL,
        cseq BIGINT NOT NULL,
        path JSONB NOT NULL,
        instance_id TEXT,
        reg_id INTEGER,
        transport TEXT NOT NULL,
        source_address TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        local_address TEXT NOT NULL,
        local_port INTEGER NOT NULL,
        connection_id BIGINT,
        node TEXT NOT NULL,
        user_agent TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        account_id TEXT,
        PRIMARY KEY (aor, binding_key)
      );
      CREATE INDEX bindings_expires ON bindings(expires_at);
      CREATE INDEX bindings_node ON bindings(node);
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
        private_sealed TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT
      );
      CREATE TABLE refresh_tokens (
        id TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        secret_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT,
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
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        last_used_at BIGINT
      );
      CREATE INDEX api_keys_account ON api_keys(account_id);
    `,
  },
  {
    version: 4,
    name: 'phone sign-up: phone accounts and devices',
    // As in SQLite: an accounts row (username = E.164 number) plus this row; device HA1s in sip_credentials under
    // "<account-id>.<device-id>". Documents the server only reads back (keys, attributes, salted hashes) are JSON,
    // not JSONB: kept as written, and JSONB would refuse a \u0000 in a client-supplied attribute that SQLite keeps.
    sql: `
      CREATE TABLE phone_accounts (
        account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        pni TEXT NOT NULL UNIQUE,
        registration_lock JSON,
        recovery_password JSON,
        identity_keys JSON NOT NULL DEFAULT '{}',
        attributes JSON NOT NULL DEFAULT '{}',
        next_device_id INTEGER NOT NULL DEFAULT 2,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE phone_devices (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        device_id INTEGER NOT NULL,
        name TEXT,
        auth_salt TEXT NOT NULL,
        auth_hash TEXT NOT NULL,
        locked BOOLEAN NOT NULL DEFAULT FALSE,
        capabilities JSON NOT NULL DEFAULT '{}',
        fetches_messages BOOLEAN NOT NULL DEFAULT FALSE,
        registration_id INTEGER,
        created_at BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (account_id, device_id)
      );
      CREATE INDEX phone_devices_last_seen ON phone_devices(last_seen);
    `,
  },
  {
    version: 5,
    name: 'presence: subscriptions, publications, watcher policies',
    sql: `
      CREATE TABLE presence_subscriptions (
        id TEXT PRIMARY KEY,
        presentity TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        data JSON NOT NULL
      );
      CREATE TABLE presence_publications (
        etag TEXT PRIMARY KEY,
        aor TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        data JSON NOT NULL
      );
      CREATE TABLE presence_policies (
        aor TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        allow JSON NOT NULL,
        updated_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 6,
    name: 'reversible SIP passwords (opt-in, sealed)',
    sql: `
      CREATE TABLE sip_passwords_sealed (
        account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        sealed TEXT NOT NULL,
        updated_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: 'accounts: credentials valid after',
    sql: `ALTER TABLE accounts ADD COLUMN valid_after BIGINT NOT NULL DEFAULT 0;`,
  },
  {
    version: 8,
    name: 'messaging: stored messages, app sessions',
    sql: `
      CREATE TABLE messages (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        device_id INTEGER,
        sender TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BYTEA NOT NULL,
        client_id TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        delivered_at BIGINT
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
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
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
      );
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
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE INDEX linked_accounts_account ON linked_accounts(account_id, created_at);
      CREATE INDEX linked_accounts_connector ON linked_accounts(connector);
    `,
  },
];
