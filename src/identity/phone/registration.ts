// POST /v1/registration (docs/phone-registration.md, "Registration"): a verified session (or the account's
// recovery password) proves the number; `Authorization: Basic <e164>:<password>` names it and sets the new
// primary device's password. A new number gets an account (username = the number, realm = the default realm,
// so its AOR is <e164>@<realm>) and device 1; a known number is re-registered: same account id and PNI, keys
// and attributes replaced, every device replaced by the new primary, their credentials gone and their SIP
// bindings dropped. The registration lock and device transfer are checked first.

import type { PhoneAccount } from '../../storage/ports.ts';
import type { DeviceAttributes, DeviceService } from './devices.ts';
import { newDevice, parseBasic } from './devices.ts';
import type { PhoneContext } from './context.ts';
import { phoneError, rateLimited } from './errors.ts';
import { normalizeE164 } from './number.ts';
import type { RegistrationLockService } from './registration-lock.ts';
import { saltedHash, verifySaltedHash } from './salted-token.ts';
import type { VerificationService } from './verification.ts';

export interface AccountAttributes extends DeviceAttributes {
  registrationLock?: string | null;
  recoveryPassword?: string | null;
  pniRegistrationId?: number;
  unidentifiedAccessKey?: string | null;
  unrestrictedUnidentifiedAccess?: boolean;
  discoverableByPhoneNumber?: boolean;
  [k: string]: unknown;
}

export interface RegistrationRequest {
  sessionId?: string;
  recoveryPassword?: string;
  accountAttributes: AccountAttributes;
  skipDeviceTransfer?: boolean;
  [k: string]: unknown;
}

export interface RegistrationResponse {
  uuid: string;
  number: string;
  pni: string;
  storageCapable: boolean;
  reregistration: boolean;
}

/** Identity keys kept (opaque) with the account and replaced on re-registration. */
const KEY_FIELDS = ['aciIdentityKey', 'pniIdentityKey', 'aciSignedPreKey', 'pniSignedPreKey', 'aciPqLastResortPreKey', 'pniPqLastResortPreKey'];

export class RegistrationService {
  private readonly c: PhoneContext;
  private readonly verification: VerificationService;
  private readonly devices: DeviceService;
  private readonly lock: RegistrationLockService;

  constructor(c: PhoneContext, verification: VerificationService, devices: DeviceService, lock: RegistrationLockService) {
    this.c = c;
    this.verification = verification;
    this.devices = devices;
    this.lock = lock;
  }

  async register(header: string | undefined, req: RegistrationRequest): Promise<RegistrationResponse> {
    const creds = parseBasic(header);
    if (!creds) throw phoneError('PHONE_ERR_AUTH_HEADER');
    const number = normalizeE164(creds.user);
    if (number === null) throw phoneError('PHONE_ERR_AUTH_HEADER', { message: `${JSON.stringify(creds.user)} is not a valid E.164 phone number` });
    if (creds.password.length < 8 || creds.password.length > 512) throw phoneError('PHONE_ERR_AUTH_HEADER', { message: 'the device password must have 8 to 512 characters' });
    if ((req.sessionId === undefined) === (req.recoveryPassword === undefined)) {
      throw phoneError('PHONE_ERR_INVALID', { message: 'give exactly one of sessionId and recoveryPassword' });
    }
    const limit = await this.c.limiters.registration.take(number);
    if (!limit.ok) throw rateLimited(limit.retryAfter, undefined, 'too many registrations for this number');

    // Proof of the number.
    let existing = await this.c.store.findByNumber(number, this.c.realm);
    if (req.sessionId !== undefined) {
      const s = await this.verification.lookup(req.sessionId);
      if (s === null) throw phoneError('PHONE_ERR_NOT_VERIFIED', { message: 'verification session unknown or expired' });
      if (s.number !== number) throw phoneError('PHONE_ERR_NUMBER_MISMATCH');
      if (!s.verified) throw phoneError('PHONE_ERR_NOT_VERIFIED', { message: 'verification session not verified' });
    } else if (!existing?.recoveryPassword || !verifySaltedHash(existing.recoveryPassword, req.recoveryPassword!)) {
      throw phoneError('PHONE_ERR_NOT_VERIFIED', { message: 'recovery password not accepted' });
    }

    const attrs = req.accountAttributes;
    const identityKeys: Record<string, unknown> = {};
    for (const k of KEY_FIELDS) if (req[k] !== undefined) identityKeys[k] = req[k];
    const { registrationLock, recoveryPassword, ...kept } = attrs;
    const now = this.c.now();

    for (let attempt = 0; ; attempt++) {
      if (existing) await this.checkExisting(existing, registrationLock, req.skipDeviceTransfer === true);
      const r = await this.c.store.register({
        number,
        realm: this.c.realm,
        expectedAccountId: existing?.accountId ?? null,
        primary: newDevice(creds.password, attrs, now),
        credentials: this.devices.credentialsFor(creds.password),
        registrationLock: registrationLock ? saltedHash(registrationLock) : null,
        recoveryPassword: recoveryPassword ? saltedHash(recoveryPassword) : null,
        identityKeys,
        attributes: kept,
        now,
      });
      if (r.outcome === 'taken') throw phoneError('PHONE_ERR_NUMBER_TAKEN');
      if (r.outcome === 'conflict') {
        // Someone registered the number meanwhile: decide again against what is there now.
        if (attempt >= 2) throw phoneError('PHONE_ERR_RATE_LIMITED', { retryAfter: 1, message: 'concurrent registrations of this number; retry' });
        existing = await this.c.store.findByNumber(number, this.c.realm);
        continue;
      }
      const account = r.account;
      this.c.invalidate([...r.removedAuthUsers, `${account.accountId}.1`]);
      if (r.outcome === 'reregistered') await this.c.disconnect(`${number}@${this.c.realm}`);
      if (req.sessionId !== undefined) await this.verification.consume(req.sessionId);
      this.c.log.info({ account: account.accountId, reregistration: r.outcome === 'reregistered' }, 'phone number registered');
      return {
        uuid: account.accountId,
        number,
        pni: account.pni,
        storageCapable: attrs.capabilities?.storage === true,
        reregistration: r.outcome === 'reregistered',
      };
    }
  }

  private async checkExisting(existing: PhoneAccount, registrationLock: string | null | undefined, skipDeviceTransfer: boolean): Promise<void> {
    await this.lock.verify(existing, registrationLock);
    const primary = existing.devices.find((d) => d.deviceId === 1);
    if (!skipDeviceTransfer && primary && !primary.locked && primary.capabilities.transfer === true) {
      throw phoneError('PHONE_ERR_DEVICE_TRANSFER', { message: 'device transfer available: transfer from the old device, or register again with skipDeviceTransfer' });
    }
  }
}
