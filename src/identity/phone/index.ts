// Phone sign-up (flow 4, docs/phone-registration.md) assembled from the adapters server.ts picked.

import type { CaptchaVerifier, CodeSender, PushSender } from './providers/types.ts';
import type { PhoneContext } from './context.ts';
import { DeviceService } from './devices.ts';
import { RegistrationLockService } from './registration-lock.ts';
import { RegistrationService } from './registration.ts';
import { VerificationService, type Pacing } from './verification.ts';

export interface PhoneServices {
  verification: VerificationService;
  registration: RegistrationService;
  devices: DeviceService;
  lock: RegistrationLockService;
  /** Runs the idle-expiry sweep now (it also runs every --phone-sweep-interval seconds). */
  sweep(): Promise<{ devices: number; accounts: number }>;
  close(): void;
}

export interface PhoneProviders {
  codes: CodeSender;
  push: PushSender;
  captcha: CaptchaVerifier;
}

export function createPhoneServices(c: PhoneContext, providers: PhoneProviders, o: { pacing: Pacing; codeKey: Buffer; sweepSeconds: number }): PhoneServices {
  const verification = new VerificationService({ ...providers, cache: c.cache, limiters: c.limiters, pacing: o.pacing, codeKey: o.codeKey, now: c.now, log: c.log });
  const devices = new DeviceService(c);
  const lock = new RegistrationLockService(c);
  const registration = new RegistrationService(c, verification, devices, lock);
  const sweep = () => devices.sweep();
  const timer =
    o.sweepSeconds > 0
      ? setInterval(() => {
          sweep().catch((err: unknown) => c.log.error({ err }, 'idle-expiry sweep of phone accounts failed'));
        }, o.sweepSeconds * 1000)
      : null;
  timer?.unref();
  return { verification, registration, devices, lock, sweep, close: () => timer && clearInterval(timer) };
}
