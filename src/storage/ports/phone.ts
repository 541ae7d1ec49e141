// Phone sign-up's port (docs/phone-registration.md): accounts named by their
// E.164 number, their devices, registration lock and recovery password.

import type { SipCredential } from './identity.ts';

/** A salted token hash: hex salt, hex HKDF-SHA256(token, salt, "authtoken") (docs/phone-registration.md). */
export interface SaltedHash {
  salt: string;
  hash: string;
}

/** A device of a phone account: device 1 is the primary, the others are linked. */
export interface PhoneDevice {
  accountId: string;
  deviceId: number;
  name: string | null;
  auth: SaltedHash;
  /** Locked after a failed registration-lock attempt: its password can never verify again. */
  locked: boolean;
  capabilities: Record<string, unknown>;
  fetchesMessages: boolean;
  registrationId: number | null;
  createdAt: number;
  /** Epoch ms of the start of the (UTC) day it was last seen. */
  lastSeen: number;
}

/** An account created by phone-number sign-up: a Switchboard account named by its E.164 number. */
export interface PhoneAccount {
  accountId: string;
  number: string;
  realm: string;
  pni: string;
  disabled: boolean;
  registrationLock: SaltedHash | null;
  recoveryPassword: SaltedHash | null;
  identityKeys: Record<string, unknown>;
  attributes: Record<string, unknown>;
  createdAt: number;
  devices: PhoneDevice[];
}

export type NewPhoneDevice = Omit<PhoneDevice, 'accountId' | 'deviceId' | 'locked'>;

/** The Digest credentials of a device, given its authentication username (`<account-id>.<device-id>`). */
export type DeviceCredentials = (authUser: string) => Array<Omit<SipCredential, 'accountId'>>;

export interface PhoneRegistration {
  number: string;
  realm: string;
  /** The account the caller found for the number (null: none); the store refuses with 'conflict' if that changed. */
  expectedAccountId: string | null;
  primary: NewPhoneDevice;
  credentials: DeviceCredentials;
  registrationLock: SaltedHash | null;
  recoveryPassword: SaltedHash | null;
  identityKeys: Record<string, unknown>;
  attributes: Record<string, unknown>;
  now: number;
}

export type PhoneRegistrationResult =
  | { outcome: 'created' | 'reregistered'; account: PhoneAccount; removedAuthUsers: string[] }
  /** The name belongs to an account that was not made by phone sign-up. */
  | { outcome: 'taken' }
  | { outcome: 'conflict' };

export interface PhoneStore {
  findByNumber(number: string, realm: string): Promise<PhoneAccount | null>;
  findById(accountId: string): Promise<PhoneAccount | null>;
  /** One device with its account's disabled flag (device authentication; one indexed lookup). */
  findDevice(accountId: string, deviceId: number): Promise<{ device: PhoneDevice; disabled: boolean; number: string; realm: string } | null>;
  /** Creates the account and its primary device, or re-registers: same account, every device replaced. Atomic. */
  register(r: PhoneRegistration): Promise<PhoneRegistrationResult>;
  /** Adds a linked device with the next device id, unless the account already has `maxDevices`. */
  addDevice(accountId: string, d: NewPhoneDevice, credentials: DeviceCredentials, maxDevices: number): Promise<PhoneDevice | 'full' | 'no-account'>;
  /** Removes a device and its credentials; false when there was none. */
  removeDevice(accountId: string, deviceId: number): Promise<boolean>;
  setRegistrationLock(accountId: string, lock: SaltedHash | null): Promise<void>;
  /** Locks every device of the account and drops their Digest credentials; returns their auth usernames. */
  lockDevices(accountId: string): Promise<string[]>;
  /** Raises a device's last-seen day (never lowers it). */
  touchDevice(accountId: string, deviceId: number, day: number): Promise<void>;
  /**
   * Idle expiry: removes linked devices last seen before `linkedBefore`, and whole accounts whose devices were
   * all last seen before `accountBefore` or whose primary was last seen before `primaryBefore`.
   */
  expire(c: { linkedBefore: number; primaryBefore: number; accountBefore: number }): Promise<{
    devices: Array<{ accountId: string; deviceId: number }>;
    accounts: Array<{ accountId: string; aor: string; authUsers: string[] }>;
  }>;
}
