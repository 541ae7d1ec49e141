// Registration lock (docs/phone-registration.md): a salted hash of the client's 64-character token. While
// any device of the account was seen within the last 7 days the lock is REQUIRED: registering the number again
// needs the token, and a wrong or missing one answers 423 {timeRemaining} and locks the existing devices'
// credentials (HTTP password, Digest HA1s, device tokens) and drops their SIP bindings. After 7 days without
// any device, the lock has EXPIRED and is ignored. PIN guesses are limited per number (`pin`); a correct
// token refills that limiter.

import type { PhoneAccount } from '../../storage/ports.ts';
import type { PhoneContext } from './context.ts';
import { phoneError, rateLimited } from './errors.ts';
import { saltedHash, verifySaltedHash } from './salted-token.ts';

export const REGISTRATION_LOCK_WINDOW_MS = 7 * 86_400_000;
export const REGISTRATION_LOCK_PATTERN = '^[0-9a-fA-F]{64}$';

export type LockState = { state: 'absent' } | { state: 'required' | 'expired'; timeRemaining: number };

export function lockState(a: PhoneAccount, now: number): LockState {
  if (a.registrationLock === null) return { state: 'absent' };
  const lastSeen = a.devices.length ? Math.max(...a.devices.map((d) => d.lastSeen)) : a.createdAt;
  const timeRemaining = REGISTRATION_LOCK_WINDOW_MS - (now - lastSeen);
  return timeRemaining > 0 ? { state: 'required', timeRemaining } : { state: 'expired', timeRemaining: 0 };
}

export class RegistrationLockService {
  private readonly c: PhoneContext;

  constructor(c: PhoneContext) {
    this.c = c;
  }

  async set(accountId: string, token: string): Promise<void> {
    await this.c.store.setRegistrationLock(accountId, saltedHash(token));
  }

  async clear(accountId: string): Promise<void> {
    await this.c.store.setRegistrationLock(accountId, null);
  }

  /**
   * Checks a registration of `a`'s number presenting `token` (undefined/null: none). Returns when the
   * registration may go on; throws 423 (devices locked), or 429 when the number's PIN attempts are used up.
   */
  async verify(a: PhoneAccount, token: string | null | undefined): Promise<void> {
    const s = lockState(a, this.c.now());
    if (s.state !== 'required') return;
    if (token) {
      const r = await this.c.limiters.pin.take(a.number);
      if (!r.ok) throw rateLimited(r.retryAfter, undefined, 'too many registration lock attempts for this number');
      if (verifySaltedHash(a.registrationLock!, token)) {
        await this.c.limiters.pin.clear(a.number);
        return;
      }
    }
    const authUsers = await this.c.store.lockDevices(a.accountId);
    this.c.invalidate(authUsers);
    await this.c.disconnect(`${a.number}@${a.realm}`);
    this.c.log.warn({ account: a.accountId, devices: authUsers.length, pinGiven: Boolean(token) }, 'registration lock: attempt refused, existing devices locked');
    throw phoneError('PHONE_ERR_REGISTRATION_LOCK', { body: { timeRemaining: s.timeRemaining, registrationLock: true } });
  }
}
