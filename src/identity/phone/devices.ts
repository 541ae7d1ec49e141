// Devices of phone accounts (docs/phone-registration.md, "Devices"): Basic authentication as
// `<account-id>.<device-id>` (device 1 without the dot) against the salted HKDF hash; linking with a provisioning
// code the primary asks for (HMAC-signed, valid 10 minutes, used once); listing and removal; at most
// `maxDevices` devices; last-seen kept at day precision and written at most once a day (HTTP and SIP alike);
// access tokens for SIP Bearer REGISTER that die with their device; and the idle-expiry sweep.
//
// Basic authentication failures are counted and locked like SIP Digest's (lockout.ts), the device as the subject:
// per device and source, per source, and per device for sources it never authenticated from. The right password
// from a source the device has used keeps working while an attacker elsewhere is locked out.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { PhoneDevice } from '../../storage/ports.ts';
import { digestCredentialsFor } from '../accounts.ts';
import type { SipIdentity } from '../sip-authenticator.ts';
import type { AccessClaims } from '../tokens.ts';
import type { Lockout } from '../lockout.ts';
import { dayOf, DAY_MS, type PhoneContext } from './context.ts';
import { phoneError } from './errors.ts';
import { normalizeE164 } from './number.ts';
import { saltedHash, verifySaltedHash } from './salted-token.ts';

export const LINK_CODE_TTL_MS = 10 * 60_000;
export const IDLE_EXPIRY = { linkedDays: 45, primaryDays: 180, accountDays: 120 } as const;

const DEVICE_USER = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.([1-9][0-9]{0,8}))?$/;
const DUMMY = saltedHash('switchboard-no-such-device');

export interface BasicCredentials {
  user: string;
  password: string;
}

/** `Authorization: Basic base64(user:password)`; null when absent or malformed. */
export function parseBasic(header: string | undefined): BasicCredentials | null {
  if (!header) return null;
  const m = /^Basic[ ]+([A-Za-z0-9+/]+=*)[ ]*$/i.exec(header);
  if (!m) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

export interface AuthenticatedDevice {
  accountId: string;
  deviceId: number;
  number: string;
  realm: string;
  device: PhoneDevice;
}

export interface DeviceAttributes {
  name?: string | null;
  fetchesMessages?: boolean;
  registrationId?: number;
  capabilities?: Record<string, unknown>;
}

export function newDevice(password: string, attrs: DeviceAttributes, now: number) {
  return {
    name: attrs.name ?? null,
    auth: saltedHash(password),
    capabilities: attrs.capabilities ?? {},
    fetchesMessages: attrs.fetchesMessages ?? false,
    registrationId: attrs.registrationId ?? null,
    createdAt: now,
    lastSeen: dayOf(now),
  };
}

export class DeviceService {
  private readonly c: PhoneContext;
  /** "<account>.<device>" → the day last written: the once-a-day write costs a map lookup on other requests. */
  private readonly seen = new Map<string, number>();

  constructor(c: PhoneContext) {
    this.c = c;
  }

  /** Digest credentials of a device password: one HA1 per algorithm, auth user "<account-id>.<device-id>". */
  credentialsFor(password: string) {
    return (authUser: string) => digestCredentialsFor(authUser, this.c.realm, password);
  }

  // --- authentication and last seen ---------------------------------------------------------------------------

  /** The device the Basic credentials name, or 401; 429 while `address` is locked out of it (lockout.ts). */
  async authenticate(header: string | undefined, address: string): Promise<AuthenticatedDevice> {
    const fail = (message?: string) => phoneError('PHONE_ERR_DEVICE_AUTH', { message, headers: { 'WWW-Authenticate': 'Basic realm="switchboard"' } });
    const creds = parseBasic(header);
    if (!creds) throw fail('Authorization: Basic <account-id>.<device-id>:<password> required');
    const m = DEVICE_USER.exec(creds.user.toLowerCase());
    const accountId = m ? m[1] : '';
    const deviceId = m && m[2] ? Number(m[2]) : 1;
    // A user that cannot name a device counts against the source only (no key of the client's choosing is kept).
    const lockout: Lockout | undefined = this.c.lockout;
    const keys = lockout ? (m ? lockout.keys(`dev:${accountId}.${deviceId}`, address) : lockout.sourceKeys(address)) : null;
    if (lockout && keys) {
      const verdict = await lockout.check(keys);
      if (verdict !== 0) {
        throw phoneError('AUTH_ERR_LOCKED', { retryAfter: verdict.seconds, message: `too many failed authentications; retry after ${verdict.seconds} s` });
      }
    }
    const found = m ? await this.c.store.findDevice(accountId, deviceId) : null;
    let ok: boolean;
    if (!found) {
      verifySaltedHash(DUMMY, creds.password);
      ok = false;
    } else ok = verifySaltedHash(found.device.auth, creds.password, found.device.locked) && !found.disabled;
    if (!ok || !found) {
      if (lockout && keys) await lockout.fail(keys);
      this.c.log.info({ user: m ? `${accountId}.${deviceId}` : 'malformed', from: address }, 'device authentication failed');
      throw fail();
    }
    if (lockout && keys) lockout.succeeded(keys);
    await this.touch(found.device.accountId, found.device.deviceId, found.device.lastSeen);
    return { accountId: found.device.accountId, deviceId: found.device.deviceId, number: found.number, realm: found.realm, device: found.device };
  }

  /** Raises a device's last-seen day; at most one write per device and day. */
  async touch(accountId: string, deviceId: number, known?: number): Promise<void> {
    const day = dayOf(this.c.now());
    const k = `${accountId}.${deviceId}`;
    if (this.seen.get(k) === day) return;
    if (known === undefined || known < day) await this.c.store.touchDevice(accountId, deviceId, day);
    if (this.seen.size >= 100_000) this.seen.clear();
    this.seen.set(k, day);
  }

  /** SIP authentication succeeded: a device seen over Digest counts as seen (synchronous; the write is not awaited). */
  onSipAuthenticated = (identity: SipIdentity): void => {
    if (identity.scheme !== 'digest') return;
    const user = identity.authUser;
    // Cheap test first: this runs on every authenticated REGISTER.
    if (user.length < 38 || user.charCodeAt(36) !== 46) return;
    const m = DEVICE_USER.exec(user);
    if (!m || !m[2]) return;
    this.touch(m[1], Number(m[2])).catch((err: unknown) => this.c.log.warn({ err }, 'could not record device last-seen'));
  };

  /** A Bearer token issued to a device is good only while that very device exists and is not locked. */
  acceptBearer = (claims: AccessClaims): boolean | Promise<boolean> => (claims.dev === undefined ? true : this.deviceTokenLive(claims));

  private async deviceTokenLive(claims: AccessClaims): Promise<boolean> {
    const found = typeof claims.dev === 'number' ? await this.c.store.findDevice(claims.sub, claims.dev) : null;
    if (!found || found.device.locked || found.disabled || found.device.createdAt !== claims.dcr) return false;
    await this.touch(claims.sub, claims.dev as number, found.device.lastSeen);
    return true;
  }

  // --- tokens -------------------------------------------------------------------------------------------------

  async issueToken(d: AuthenticatedDevice): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
    const account = await this.c.accounts.findById(d.accountId);
    if (!account || account.disabled) throw phoneError('PHONE_ERR_DEVICE_AUTH');
    const t = await this.c.tokens.issue(account, { dev: d.deviceId, dcr: d.device.createdAt });
    return { access_token: t.token, token_type: 'Bearer', expires_in: t.expiresIn };
  }

  // --- linking ------------------------------------------------------------------------------------------------

  private sign(payload: string): string {
    return createHmac('sha256', this.c.linkKey).update(payload).digest('base64url');
  }

  /** A link code for a new device of `d`'s account (primary only). */
  async provisioningCode(d: AuthenticatedDevice): Promise<{ verificationCode: string; tokenIdentifier: string }> {
    if (d.deviceId !== 1) throw phoneError('PHONE_ERR_FORBIDDEN', { message: 'only the primary device links devices' });
    const r = await this.c.limiters.allocateDevice.take(d.accountId);
    if (!r.ok) throw phoneError('PHONE_ERR_RATE_LIMITED', { retryAfter: r.retryAfter, message: `too many link codes; retry after ${r.retryAfter} s` });
    const account = await this.c.store.findById(d.accountId);
    if (!account) throw phoneError('PHONE_ERR_DEVICE_AUTH');
    if (account.devices.length >= this.c.maxDevices) throw phoneError('PHONE_ERR_DEVICE_LIMIT', { message: `at most ${this.c.maxDevices} devices` });
    const id = randomBytes(12).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ a: d.accountId, t: this.c.now(), i: id })).toString('base64url');
    return { verificationCode: `${payload}.${this.sign(payload)}`, tokenIdentifier: id };
  }

  private readLinkCode(code: string): { accountId: string; issuedAt: number; id: string } | null {
    const dot = code.indexOf('.');
    if (dot <= 0) return null;
    const payload = code.slice(0, dot);
    const want = Buffer.from(this.sign(payload));
    const got = Buffer.from(code.slice(dot + 1));
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    try {
      const p = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { a: string; t: number; i: string };
      return { accountId: p.a, issuedAt: p.t, id: p.i };
    } catch {
      return null;
    }
  }

  /** Links a new device with the credentials in `header` (`<number>:<password>`) using a link code. */
  async link(header: string | undefined, code: string, attrs: DeviceAttributes): Promise<{ uuid: string; pni: string; deviceId: number }> {
    const creds = parseBasic(header);
    const number = creds ? normalizeE164(creds.user) : null;
    if (!creds || number === null) throw phoneError('PHONE_ERR_AUTH_HEADER', { message: 'Authorization: Basic <number>:<new device password> required' });
    if (creds.password.length < 8 || creds.password.length > 512) throw phoneError('PHONE_ERR_AUTH_HEADER', { message: 'the device password must have 8 to 512 characters' });
    const link = this.readLinkCode(code);
    const now = this.c.now();
    if (!link || link.issuedAt + LINK_CODE_TTL_MS <= now || link.issuedAt > now + 60_000) throw phoneError('PHONE_ERR_LINK_CODE');
    const r = await this.c.limiters.verifyDevice.take(link.accountId);
    if (!r.ok) throw phoneError('PHONE_ERR_RATE_LIMITED', { retryAfter: r.retryAfter, message: `too many link attempts; retry after ${r.retryAfter} s` });
    const account = await this.c.store.findById(link.accountId);
    if (!account || account.number !== number) throw phoneError('PHONE_ERR_LINK_CODE');
    if (account.devices.length >= this.c.maxDevices) throw phoneError('PHONE_ERR_DEVICE_LIMIT', { message: `at most ${this.c.maxDevices} devices` });
    // Once only: the code's id is remembered for as long as the code could be valid.
    if (!(await this.c.cache.setIfAbsent(`lc:${link.id}`, 1, Math.ceil(LINK_CODE_TTL_MS / 1000) + 60))) throw phoneError('PHONE_ERR_LINK_CODE');
    const added = await this.c.store.addDevice(account.accountId, newDevice(creds.password, attrs, now), this.credentialsFor(creds.password), this.c.maxDevices);
    if (added === 'full') throw phoneError('PHONE_ERR_DEVICE_LIMIT', { message: `at most ${this.c.maxDevices} devices` });
    if (added === 'no-account') throw phoneError('PHONE_ERR_LINK_CODE');
    this.c.invalidate([`${account.accountId}.${added.deviceId}`]);
    this.c.log.info({ account: account.accountId, device: added.deviceId }, 'device linked');
    return { uuid: account.accountId, pni: account.pni, deviceId: added.deviceId };
  }

  async list(d: AuthenticatedDevice) {
    const account = await this.c.store.findById(d.accountId);
    return {
      devices: (account?.devices ?? []).map((x) => ({ id: x.deviceId, name: x.name, created: x.createdAt, lastSeen: x.lastSeen })),
    };
  }

  /** An account's devices for an admin (the console); none when it is not a phone account. */
  async listOf(accountId: string) {
    const account = await this.c.store.findById(accountId);
    return { devices: (account?.devices ?? []).map((x) => ({ id: x.deviceId, name: x.name, created: x.createdAt, lastSeen: x.lastSeen })) };
  }

  /** The primary removes any linked device; a linked device removes itself. The primary cannot be removed. */
  async remove(d: AuthenticatedDevice, deviceId: number): Promise<void> {
    if (deviceId === 1) throw phoneError('PHONE_ERR_FORBIDDEN', { message: 'the primary device cannot be removed' });
    if (d.deviceId !== 1 && d.deviceId !== deviceId) throw phoneError('PHONE_ERR_FORBIDDEN', { message: 'a linked device can remove only itself' });
    if (!(await this.c.store.removeDevice(d.accountId, deviceId))) throw phoneError('PHONE_ERR_DEVICE_NOT_FOUND');
    this.c.invalidate([`${d.accountId}.${deviceId}`]);
    this.seen.delete(`${d.accountId}.${deviceId}`);
  }

  // --- idle expiry --------------------------------------------------------------------------------------------

  async sweep(): Promise<{ devices: number; accounts: number }> {
    const now = this.c.now();
    const r = await this.c.store.expire({
      linkedBefore: now - IDLE_EXPIRY.linkedDays * DAY_MS,
      primaryBefore: now - IDLE_EXPIRY.primaryDays * DAY_MS,
      accountBefore: now - IDLE_EXPIRY.accountDays * DAY_MS,
    });
    this.c.invalidate([...r.devices.map((d) => `${d.accountId}.${d.deviceId}`), ...r.accounts.flatMap((a) => a.authUsers)]);
    for (const a of r.accounts) await this.c.disconnect(a.aor);
    if (r.devices.length || r.accounts.length) this.c.log.info({ devices: r.devices.length, accounts: r.accounts.length }, 'idle phone devices and accounts expired');
    return { devices: r.devices.length, accounts: r.accounts.length };
  }
}
