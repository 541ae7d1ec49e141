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
];
