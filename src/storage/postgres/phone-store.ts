// Phone accounts and their devices in PostgreSQL (migration 4; same contract as storage/sqlite/phone-store.ts).
//
// Several nodes share these tables, so what SQLite gets from BEGIN IMMEDIATE (one writer at a time) is made
// explicit here:
// - One lock per account. Every transaction that changes an account's devices or their credentials (register,
//   addDevice, removeDevice, lockDevices, expire) first locks its `accounts` row FOR NO KEY UPDATE, and reads what
//   it decides on (next device id, device count, device list) only after that, in READ COMMITTED's fresh snapshot
//   per statement. Changes to one account are therefore serial across nodes: addDevice never hands out an id twice
//   nor goes past maxDevices, and a re-registration replaces every device. NO KEY UPDATE rather than UPDATE: it
//   serialises these writers just as well, yet lets other transactions insert rows that refer to the account
//   (tokens, API keys; their foreign-key checks take KEY SHARE) without waiting.
// - A new number: the unique (username, realm) of `accounts` decides. The insert is ON CONFLICT DO NOTHING; when a
//   racing registration (or any account of that name) committed first, the decision is taken again against the
//   committed row, so two nodes racing get one 'created' and one 'conflict' (or 'taken'), never an error.
// - Expiry locks accounts with SKIP LOCKED (an account being changed right now is left for the next sweep),
//   re-checks the idle criteria after locking, and reports only what its own deletes removed; sweeps running on
//   several nodes at once share the work instead of deadlocking or reporting twice.

import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { credentialPut } from './account-store.ts';
import type {
  DeviceCredentials,
  NewPhoneDevice,
  PhoneAccount,
  PhoneDevice,
  PhoneRegistration,
  PhoneRegistrationResult,
  PhoneStore,
  SaltedHash,
} from '../ports.ts';
import { transaction, type Db } from './database.ts';

type Queryable = Db | pg.PoolClient;

interface DeviceRow {
  account_id: string;
  device_id: number;
  name: string | null;
  auth_salt: string;
  auth_hash: string;
  locked: boolean;
  capabilities: Record<string, unknown>;
  fetches_messages: boolean;
  registration_id: number | null;
  created_at: number;
  last_seen: number;
}

interface AccountRow {
  account_id: string;
  username: string;
  realm: string;
  disabled: boolean;
  pni: string;
  registration_lock: SaltedHash | null;
  recovery_password: SaltedHash | null;
  identity_keys: Record<string, unknown>;
  attributes: Record<string, unknown>;
  created_at: number;
  /** Its devices as a JSON array (read in the same statement, so account and devices are one snapshot). */
  devices: DeviceRow[];
}

export const deviceAuthUser = (accountId: string, deviceId: number) => `${accountId}.${deviceId}`;

function toDevice(r: DeviceRow): PhoneDevice {
  return {
    accountId: r.account_id,
    deviceId: r.device_id,
    name: r.name,
    auth: { salt: r.auth_salt, hash: r.auth_hash },
    locked: r.locked,
    capabilities: r.capabilities,
    fetchesMessages: r.fetches_messages,
    registrationId: r.registration_id,
    createdAt: r.created_at,
    lastSeen: r.last_seen,
  };
}

function toAccount(r: AccountRow): PhoneAccount {
  return {
    accountId: r.account_id,
    number: r.username,
    realm: r.realm,
    pni: r.pni,
    disabled: r.disabled,
    registrationLock: r.registration_lock,
    recoveryPassword: r.recovery_password,
    identityKeys: r.identity_keys,
    attributes: r.attributes,
    createdAt: r.created_at,
    devices: r.devices.map(toDevice),
  };
}

const hashJson = (h: SaltedHash | null) => (h === null ? null : JSON.stringify(h));

const SELECT_ACCOUNT = `SELECT p.account_id, p.pni, p.registration_lock, p.recovery_password, p.identity_keys, p.attributes, p.created_at,
    a.username, a.realm, a.disabled,
    COALESCE((SELECT json_agg(d ORDER BY d.device_id) FROM phone_devices d WHERE d.account_id = p.account_id), '[]'::json) AS devices
  FROM phone_accounts p JOIN accounts a ON a.id = p.account_id`;
const INSERT_DEVICE = `INSERT INTO phone_devices (account_id, device_id, name, auth_salt, auth_hash, locked, capabilities, fetches_messages,
  registration_id, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7, $8, $9, $10)`;
const INSERT_CRED = `INSERT INTO sip_credentials (auth_user, realm, algorithm, account_id, ha1) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (auth_user, realm, algorithm) DO UPDATE SET ha1 = EXCLUDED.ha1 WHERE sip_credentials.account_id = EXCLUDED.account_id`;
/** The per-account lock every device-changing transaction takes first (see the top of the file). */
const LOCK_ACCOUNT = 'SELECT id, realm FROM accounts WHERE id = $1 FOR NO KEY UPDATE';

/** Idle criteria of expire(): $1 accountBefore, $2 primaryBefore. */
const IDLE_ACCOUNT = `(COALESCE((SELECT MAX(d.last_seen) FROM phone_devices d WHERE d.account_id = p.account_id), p.created_at) < $1
   OR (SELECT d.last_seen FROM phone_devices d WHERE d.account_id = p.account_id AND d.device_id = 1) < $2)`;

/** A registration that lost the race for a new number retries its decision this many times before 'conflict'. */
const REGISTER_ATTEMPTS = 3;

export class PostgresPhoneStore implements PhoneStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  private async accountById(q: Queryable, accountId: string): Promise<PhoneAccount | null> {
    const r = await q.query<AccountRow>(`${SELECT_ACCOUNT} WHERE p.account_id = $1`, [accountId]);
    return r.rows[0] ? toAccount(r.rows[0]) : null;
  }

  async findByNumber(number: string, realm: string): Promise<PhoneAccount | null> {
    const r = await this.db.query<AccountRow>(`${SELECT_ACCOUNT} WHERE a.username = $1 AND a.realm = $2`, [number, realm]);
    return r.rows[0] ? toAccount(r.rows[0]) : null;
  }

  async findById(accountId: string): Promise<PhoneAccount | null> {
    return this.accountById(this.db, accountId);
  }

  async findDevice(accountId: string, deviceId: number) {
    const r = await this.db.query<DeviceRow & { disabled: boolean; username: string; realm: string }>(
      `SELECT d.*, a.disabled, a.username, a.realm FROM phone_devices d JOIN accounts a ON a.id = d.account_id
       WHERE d.account_id = $1 AND d.device_id = $2`,
      [accountId, deviceId],
    );
    const row = r.rows[0];
    return row ? { device: toDevice(row), disabled: row.disabled, number: row.username, realm: row.realm } : null;
  }

  private async addDeviceRow(c: pg.PoolClient, accountId: string, deviceId: number, realm: string, d: NewPhoneDevice, credentials: DeviceCredentials): Promise<void> {
    await c.query(INSERT_DEVICE, [
      accountId, deviceId, d.name, d.auth.salt, d.auth.hash, JSON.stringify(d.capabilities), d.fetchesMessages, d.registrationId, d.createdAt, d.lastSeen,
    ]);
    for (const cr of credentials(deviceAuthUser(accountId, deviceId))) credentialPut(await c.query(INSERT_CRED, [cr.authUser, cr.realm || realm, cr.algorithm, accountId, cr.ha1]));
  }

  private async dropCredentials(c: pg.PoolClient, accountId: string, deviceIds: number[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await c.query('DELETE FROM sip_credentials WHERE account_id = $1 AND auth_user = ANY($2::text[])', [accountId, deviceIds.map((d) => deviceAuthUser(accountId, d))]);
  }

  async register(r: PhoneRegistration): Promise<PhoneRegistrationResult> {
    return transaction(this.db, async (c): Promise<PhoneRegistrationResult> => {
      for (let attempt = 1; ; attempt++) {
        const found = await c.query<{ id: string; phone: boolean }>(
          `SELECT a.id, EXISTS (SELECT 1 FROM phone_accounts p WHERE p.account_id = a.id) AS phone
           FROM accounts a WHERE a.username = $1 AND a.realm = $2 FOR NO KEY UPDATE`,
          [r.number, r.realm],
        );
        const existing = found.rows[0];
        if (existing && !existing.phone) return { outcome: 'taken' };
        if ((existing?.id ?? null) !== r.expectedAccountId) return { outcome: 'conflict' };
        if (existing) {
          const id = existing.id;
          const ids = (await c.query<{ device_id: number }>('DELETE FROM phone_devices WHERE account_id = $1 RETURNING device_id', [id])).rows.map((x) => x.device_id);
          ids.sort((a, b) => a - b);
          await this.dropCredentials(c, id, ids);
          await c.query(
            `UPDATE phone_accounts SET registration_lock = $1, recovery_password = $2, identity_keys = $3, attributes = $4, next_device_id = 2,
             updated_at = $5 WHERE account_id = $6`,
            [hashJson(r.registrationLock), hashJson(r.recoveryPassword), JSON.stringify(r.identityKeys), JSON.stringify(r.attributes), r.now, id],
          );
          await c.query('UPDATE accounts SET updated_at = $1 WHERE id = $2', [r.now, id]);
          await this.addDeviceRow(c, id, 1, r.realm, r.primary, r.credentials);
          return { outcome: 'reregistered', account: (await this.accountById(c, id))!, removedAuthUsers: ids.map((d) => deviceAuthUser(id, d)) };
        }
        const id = randomUUID();
        const inserted = await c.query(
          `INSERT INTO accounts (id, username, realm, password_hash, roles, disabled, created_at, updated_at) VALUES ($1, $2, $3, NULL, '[]', FALSE, $4, $4)
           ON CONFLICT (username, realm) DO NOTHING`,
          [id, r.number, r.realm, r.now],
        );
        if (inserted.rowCount === 0) {
          // Another transaction created the name and committed after our SELECT: decide again against its row
          // (READ COMMITTED: the next statement sees it), which gives 'conflict' or 'taken'.
          if (attempt >= REGISTER_ATTEMPTS) return { outcome: 'conflict' };
          continue;
        }
        await c.query(
          `INSERT INTO phone_accounts (account_id, pni, registration_lock, recovery_password, identity_keys, attributes, next_device_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, 2, $7, $7)`,
          [id, randomUUID(), hashJson(r.registrationLock), hashJson(r.recoveryPassword), JSON.stringify(r.identityKeys), JSON.stringify(r.attributes), r.now],
        );
        await this.addDeviceRow(c, id, 1, r.realm, r.primary, r.credentials);
        return { outcome: 'created', account: (await this.accountById(c, id))!, removedAuthUsers: [] };
      }
    });
  }

  async addDevice(accountId: string, d: NewPhoneDevice, credentials: DeviceCredentials, maxDevices: number): Promise<PhoneDevice | 'full' | 'no-account'> {
    return transaction(this.db, async (c) => {
      const locked = (await c.query<{ id: string; realm: string }>(LOCK_ACCOUNT, [accountId])).rows[0];
      // Read under the lock: a concurrent addDevice on another node has committed or not started.
      const acct = locked
        ? (await c.query<{ next_device_id: number; n: number }>(
          'SELECT next_device_id, (SELECT COUNT(*) FROM phone_devices WHERE account_id = $1) AS n FROM phone_accounts WHERE account_id = $1',
          [accountId],
        )).rows[0]
        : undefined;
      if (!locked || !acct) return 'no-account' as const;
      if (acct.n >= maxDevices) return 'full' as const;
      const deviceId = acct.next_device_id;
      await c.query('UPDATE phone_accounts SET next_device_id = $1, updated_at = $2 WHERE account_id = $3', [deviceId + 1, d.createdAt, accountId]);
      await this.addDeviceRow(c, accountId, deviceId, locked.realm, d, credentials);
      const row = (await c.query<DeviceRow>('SELECT * FROM phone_devices WHERE account_id = $1 AND device_id = $2', [accountId, deviceId])).rows[0];
      return toDevice(row);
    });
  }

  async removeDevice(accountId: string, deviceId: number): Promise<boolean> {
    return transaction(this.db, async (c) => {
      if ((await c.query(LOCK_ACCOUNT, [accountId])).rowCount === 0) return false;
      const gone = ((await c.query('DELETE FROM phone_devices WHERE account_id = $1 AND device_id = $2', [accountId, deviceId])).rowCount ?? 0) > 0;
      if (gone) await this.dropCredentials(c, accountId, [deviceId]);
      return gone;
    });
  }

  async setRegistrationLock(accountId: string, lock: SaltedHash | null): Promise<void> {
    await this.db.query('UPDATE phone_accounts SET registration_lock = $1, updated_at = $2 WHERE account_id = $3', [hashJson(lock), Date.now(), accountId]);
  }

  async lockDevices(accountId: string): Promise<string[]> {
    return transaction(this.db, async (c) => {
      if ((await c.query(LOCK_ACCOUNT, [accountId])).rowCount === 0) return [];
      const ids = (await c.query<{ device_id: number }>('UPDATE phone_devices SET locked = TRUE WHERE account_id = $1 RETURNING device_id', [accountId])).rows.map((x) => x.device_id);
      ids.sort((a, b) => a - b);
      await this.dropCredentials(c, accountId, ids);
      return ids.map((d) => deviceAuthUser(accountId, d));
    });
  }

  async touchDevice(accountId: string, deviceId: number, day: number): Promise<void> {
    await this.db.query('UPDATE phone_devices SET last_seen = $1 WHERE account_id = $2 AND device_id = $3 AND last_seen < $1', [day, accountId, deviceId]);
  }

  async expire(x: { linkedBefore: number; primaryBefore: number; accountBefore: number }) {
    return transaction(this.db, async (c) => {
      // Whole accounts: lock the candidates (skipping any another transaction holds), then check again under the
      // locks, in a statement of its own, so that a change committed meanwhile (a re-registration) is seen.
      const candidates = (await c.query<{ id: string }>(
        `SELECT a.id FROM phone_accounts p JOIN accounts a ON a.id = p.account_id WHERE ${IDLE_ACCOUNT}
         ORDER BY a.id FOR UPDATE OF a SKIP LOCKED`,
        [x.accountBefore, x.primaryBefore],
      )).rows.map((r) => r.id);
      const idle = candidates.length === 0 ? [] : (await c.query<{ account_id: string; username: string; realm: string; devices: number[] }>(
        `SELECT p.account_id, a.username, a.realm,
           COALESCE((SELECT array_agg(d.device_id ORDER BY d.device_id) FROM phone_devices d WHERE d.account_id = p.account_id), '{}') AS devices
         FROM phone_accounts p JOIN accounts a ON a.id = p.account_id WHERE p.account_id = ANY($3::text[]) AND ${IDLE_ACCOUNT} ORDER BY p.account_id`,
        [x.accountBefore, x.primaryBefore, candidates],
      )).rows;
      // Deleting the account cascades to its credentials, devices, tokens and keys.
      const deleted = new Set(idle.length === 0 ? [] : (await c.query<{ id: string }>('DELETE FROM accounts WHERE id = ANY($1::text[]) RETURNING id', [idle.map((a) => a.account_id)])).rows.map((r) => r.id));
      const accounts = idle
        .filter((a) => deleted.has(a.account_id))
        .map((a) => ({ accountId: a.account_id, aor: `${a.username}@${a.realm}`, authUsers: a.devices.map((d) => deviceAuthUser(a.account_id, d)) }));

      // Idle linked devices: under their accounts' locks too (as removeDevice), skipping accounts held elsewhere.
      const owners = (await c.query<{ id: string }>(
        `SELECT a.id FROM accounts a WHERE a.id IN (SELECT account_id FROM phone_devices WHERE device_id <> 1 AND last_seen < $1)
         ORDER BY a.id FOR NO KEY UPDATE SKIP LOCKED`,
        [x.linkedBefore],
      )).rows.map((r) => r.id);
      const devices = owners.length === 0 ? [] : (await c.query<{ account_id: string; device_id: number }>(
        'DELETE FROM phone_devices WHERE account_id = ANY($1::text[]) AND device_id <> 1 AND last_seen < $2 RETURNING account_id, device_id',
        [owners, x.linkedBefore],
      )).rows
        .map((r) => ({ accountId: r.account_id, deviceId: r.device_id }))
        .sort((a, b) => (a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : a.deviceId - b.deviceId));
      if (devices.length) {
        await c.query(
          'DELETE FROM sip_credentials c USING unnest($1::text[], $2::text[]) AS g(account_id, auth_user) WHERE c.account_id = g.account_id AND c.auth_user = g.auth_user',
          [devices.map((d) => d.accountId), devices.map((d) => deviceAuthUser(d.accountId, d.deviceId))],
        );
      }
      return { devices, accounts };
    });
  }
}
