// Phone accounts and their devices in SQLite (migration 4). A phone account is an `accounts` row named by its
// E.164 number in the default realm plus a `phone_accounts` row; each device has a `phone_devices` row and, in
// `sip_credentials`, one HA1 per algorithm under the auth user "<account-id>.<device-id>", which the REGISTER
// path finds with the same primary-key lookup as any other credential. Every change that spans tables runs in
// one transaction.

import { randomUUID } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { putCredential } from './account-store.ts';
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

interface AccountRow {
  account_id: string;
  username: string;
  realm: string;
  disabled: number;
  pni: string;
  registration_lock: string | null;
  recovery_password: string | null;
  identity_keys: string;
  attributes: string;
  next_device_id: number;
  created_at: number;
}

interface DeviceRow {
  account_id: string;
  device_id: number;
  name: string | null;
  auth_salt: string;
  auth_hash: string;
  locked: number;
  capabilities: string;
  fetches_messages: number;
  registration_id: number | null;
  created_at: number;
  last_seen: number;
}

export const deviceAuthUser = (accountId: string, deviceId: number) => `${accountId}.${deviceId}`;

function toDevice(r: DeviceRow): PhoneDevice {
  return {
    accountId: r.account_id,
    deviceId: r.device_id,
    name: r.name,
    auth: { salt: r.auth_salt, hash: r.auth_hash },
    locked: r.locked !== 0,
    capabilities: JSON.parse(r.capabilities) as Record<string, unknown>,
    fetchesMessages: r.fetches_messages !== 0,
    registrationId: r.registration_id,
    createdAt: r.created_at,
    lastSeen: r.last_seen,
  };
}

const hashJson = (h: SaltedHash | null) => (h === null ? null : JSON.stringify(h));
const hashOf = (s: string | null) => (s === null ? null : (JSON.parse(s) as SaltedHash));

export class SqlitePhoneStore implements PhoneStore {
  private readonly db: DatabaseSync;
  private readonly byNumber: StatementSync;
  private readonly byId: StatementSync;
  private readonly devicesOf: StatementSync;
  private readonly oneDevice: StatementSync;
  private readonly insertDevice: StatementSync;
  private readonly insertCred: StatementSync;
  private readonly touch: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    const select = `SELECT p.*, a.username, a.realm, a.disabled FROM phone_accounts p JOIN accounts a ON a.id = p.account_id`;
    this.byNumber = db.prepare(`${select} WHERE a.username = ? AND a.realm = ?`);
    this.byId = db.prepare(`${select} WHERE p.account_id = ?`);
    this.devicesOf = db.prepare('SELECT * FROM phone_devices WHERE account_id = ? ORDER BY device_id');
    this.oneDevice = db.prepare(`SELECT d.*, a.disabled, a.username, a.realm FROM phone_devices d JOIN accounts a ON a.id = d.account_id
      WHERE d.account_id = ? AND d.device_id = ?`);
    this.insertDevice = db.prepare(`INSERT INTO phone_devices (account_id, device_id, name, auth_salt, auth_hash, locked, capabilities,
      fetches_messages, registration_id, created_at, last_seen) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)`);
    // An upsert only ever updates the same account's row: credentials of another account (a device's
    // "<id>.<n>") are never re-pointed; the caller sees 0 changes and refuses (putCredential).
    this.insertCred = db.prepare(`INSERT INTO sip_credentials (auth_user, realm, algorithm, account_id, ha1) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (auth_user, realm, algorithm) DO UPDATE SET ha1 = excluded.ha1 WHERE sip_credentials.account_id = excluded.account_id`);
    this.touch = db.prepare('UPDATE phone_devices SET last_seen = ? WHERE account_id = ? AND device_id = ? AND last_seen < ?');
  }

  private tx<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = fn();
      this.db.exec('COMMIT');
      return r;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  private toAccount(r: AccountRow): PhoneAccount {
    return {
      accountId: r.account_id,
      number: r.username,
      realm: r.realm,
      pni: r.pni,
      disabled: r.disabled !== 0,
      registrationLock: hashOf(r.registration_lock),
      recoveryPassword: hashOf(r.recovery_password),
      identityKeys: JSON.parse(r.identity_keys) as Record<string, unknown>,
      attributes: JSON.parse(r.attributes) as Record<string, unknown>,
      createdAt: r.created_at,
      devices: (this.devicesOf.all(r.account_id) as unknown as DeviceRow[]).map(toDevice),
    };
  }

  async findByNumber(number: string, realm: string): Promise<PhoneAccount | null> {
    const r = this.byNumber.get(number, realm) as AccountRow | undefined;
    return r ? this.toAccount(r) : null;
  }

  async findById(accountId: string): Promise<PhoneAccount | null> {
    const r = this.byId.get(accountId) as AccountRow | undefined;
    return r ? this.toAccount(r) : null;
  }

  async findDevice(accountId: string, deviceId: number) {
    const r = this.oneDevice.get(accountId, deviceId) as (DeviceRow & { disabled: number; username: string; realm: string }) | undefined;
    return r ? { device: toDevice(r), disabled: r.disabled !== 0, number: r.username, realm: r.realm } : null;
  }

  private addDeviceRow(accountId: string, deviceId: number, realm: string, d: NewPhoneDevice, credentials: DeviceCredentials): void {
    this.insertDevice.run(
      accountId, deviceId, d.name, d.auth.salt, d.auth.hash, JSON.stringify(d.capabilities), d.fetchesMessages ? 1 : 0, d.registrationId, d.createdAt, d.lastSeen,
    );
    for (const c of credentials(deviceAuthUser(accountId, deviceId))) putCredential(this.insertCred, c.authUser, c.realm || realm, c.algorithm, accountId, c.ha1);
  }

  private deviceIds(accountId: string): number[] {
    return (this.db.prepare('SELECT device_id FROM phone_devices WHERE account_id = ?').all(accountId) as Array<{ device_id: number }>).map((r) => r.device_id);
  }

  private dropCredentials(accountId: string, deviceId: number): void {
    this.db.prepare('DELETE FROM sip_credentials WHERE auth_user = ? AND account_id = ?').run(deviceAuthUser(accountId, deviceId), accountId);
  }

  async register(r: PhoneRegistration): Promise<PhoneRegistrationResult> {
    const result = this.tx((): PhoneRegistrationResult | { outcome: 'ok'; id: string; re: boolean; removed: string[] } => {
      const existing = this.db.prepare('SELECT id FROM accounts WHERE username = ? AND realm = ?').get(r.number, r.realm) as { id: string } | undefined;
      if (existing && !this.db.prepare('SELECT 1 FROM phone_accounts WHERE account_id = ?').get(existing.id)) return { outcome: 'taken' };
      if ((existing?.id ?? null) !== r.expectedAccountId) return { outcome: 'conflict' };
      if (existing) {
        const id = existing.id;
        const removed = this.deviceIds(id).map((d) => deviceAuthUser(id, d));
        for (const authUser of removed) this.db.prepare('DELETE FROM sip_credentials WHERE auth_user = ? AND account_id = ?').run(authUser, id);
        this.db.prepare('DELETE FROM phone_devices WHERE account_id = ?').run(id);
        this.db
          .prepare(`UPDATE phone_accounts SET registration_lock = ?, recovery_password = ?, identity_keys = ?, attributes = ?, next_device_id = 2,
            updated_at = ? WHERE account_id = ?`)
          .run(hashJson(r.registrationLock), hashJson(r.recoveryPassword), JSON.stringify(r.identityKeys), JSON.stringify(r.attributes), r.now, id);
        this.db.prepare('UPDATE accounts SET updated_at = ? WHERE id = ?').run(r.now, id);
        this.addDeviceRow(id, 1, r.realm, r.primary, r.credentials);
        return { outcome: 'ok', id, re: true, removed };
      }
      const id = randomUUID();
      this.db
        .prepare(`INSERT INTO accounts (id, username, realm, password_hash, roles, disabled, created_at, updated_at) VALUES (?, ?, ?, NULL, '[]', 0, ?, ?)`)
        .run(id, r.number, r.realm, r.now, r.now);
      this.db
        .prepare(`INSERT INTO phone_accounts (account_id, pni, registration_lock, recovery_password, identity_keys, attributes, next_device_id, created_at, updated_at)
          VALUES (?, ?, ?, ?, ?, ?, 2, ?, ?)`)
        .run(id, randomUUID(), hashJson(r.registrationLock), hashJson(r.recoveryPassword), JSON.stringify(r.identityKeys), JSON.stringify(r.attributes), r.now, r.now);
      this.addDeviceRow(id, 1, r.realm, r.primary, r.credentials);
      return { outcome: 'ok', id, re: false, removed: [] };
    });
    if (result.outcome !== 'ok') return result;
    return { outcome: result.re ? 'reregistered' : 'created', account: (await this.findById(result.id))!, removedAuthUsers: result.removed };
  }

  async addDevice(accountId: string, d: NewPhoneDevice, credentials: DeviceCredentials, maxDevices: number): Promise<PhoneDevice | 'full' | 'no-account'> {
    const r = this.tx(() => {
      const acct = this.db.prepare('SELECT p.next_device_id, a.realm FROM phone_accounts p JOIN accounts a ON a.id = p.account_id WHERE p.account_id = ?').get(accountId) as
        | { next_device_id: number; realm: string }
        | undefined;
      if (!acct) return 'no-account' as const;
      const n = (this.db.prepare('SELECT COUNT(*) AS n FROM phone_devices WHERE account_id = ?').get(accountId) as { n: number }).n;
      if (n >= maxDevices) return 'full' as const;
      const deviceId = acct.next_device_id;
      this.db.prepare('UPDATE phone_accounts SET next_device_id = ?, updated_at = ? WHERE account_id = ?').run(deviceId + 1, d.createdAt, accountId);
      this.addDeviceRow(accountId, deviceId, acct.realm, d, credentials);
      return deviceId;
    });
    if (typeof r === 'string') return r;
    return (await this.findDevice(accountId, r))!.device;
  }

  async removeDevice(accountId: string, deviceId: number): Promise<boolean> {
    return this.tx(() => {
      const gone = this.db.prepare('DELETE FROM phone_devices WHERE account_id = ? AND device_id = ?').run(accountId, deviceId).changes > 0;
      if (gone) this.dropCredentials(accountId, deviceId);
      return gone;
    });
  }

  async setRegistrationLock(accountId: string, lock: SaltedHash | null): Promise<void> {
    this.db.prepare('UPDATE phone_accounts SET registration_lock = ?, updated_at = ? WHERE account_id = ?').run(hashJson(lock), Date.now(), accountId);
  }

  async lockDevices(accountId: string): Promise<string[]> {
    return this.tx(() => {
      const ids = this.deviceIds(accountId);
      this.db.prepare('UPDATE phone_devices SET locked = 1 WHERE account_id = ?').run(accountId);
      for (const d of ids) this.dropCredentials(accountId, d);
      return ids.map((d) => deviceAuthUser(accountId, d));
    });
  }

  async touchDevice(accountId: string, deviceId: number, day: number): Promise<void> {
    this.touch.run(day, accountId, deviceId, day);
  }

  async expire(c: { linkedBefore: number; primaryBefore: number; accountBefore: number }) {
    return this.tx(() => {
      const accounts = (
        this.db
          .prepare(`SELECT p.account_id, a.username, a.realm FROM phone_accounts p JOIN accounts a ON a.id = p.account_id
            WHERE COALESCE((SELECT MAX(last_seen) FROM phone_devices d WHERE d.account_id = p.account_id), p.created_at) < ?
               OR (SELECT last_seen FROM phone_devices d WHERE d.account_id = p.account_id AND d.device_id = 1) < ?`)
          .all(c.accountBefore, c.primaryBefore) as Array<{ account_id: string; username: string; realm: string }>
      ).map((r) => ({ accountId: r.account_id, aor: `${r.username}@${r.realm}`, authUsers: this.deviceIds(r.account_id).map((d) => deviceAuthUser(r.account_id, d)) }));
      // Deleting the account cascades to its credentials, devices, tokens and keys.
      for (const a of accounts) this.db.prepare('DELETE FROM accounts WHERE id = ?').run(a.accountId);
      const devices = (
        this.db.prepare('SELECT account_id, device_id FROM phone_devices WHERE device_id <> 1 AND last_seen < ?').all(c.linkedBefore) as Array<{ account_id: string; device_id: number }>
      ).map((r) => ({ accountId: r.account_id, deviceId: r.device_id }));
      for (const d of devices) {
        this.db.prepare('DELETE FROM phone_devices WHERE account_id = ? AND device_id = ?').run(d.accountId, d.deviceId);
        this.dropCredentials(d.accountId, d.deviceId);
      }
      return { devices, accounts };
    });
  }
}
