// Phone sign-up over HTTP (docs/phone-registration.md): the four route modules under one plugin whose
// error handler speaks Signal-Server's dialect. JSON that does not parse is 400; a body that parses but breaks
// the schema is 422; catalogue errors keep their status, add the body they carry (the verification session,
// {timeRemaining}, {reason, permanentFailure}) beside the usual {"error":{"code","message"}}, and set
// Retry-After (every 429 that can name a time has one). Anything else goes to the application's handler.

import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { isSwitchboardError } from '../../errors.ts';
import { sendCode, sendError } from '../reply-error.ts';
import type { DeviceService } from '../../identity/phone/devices.ts';
import type { PhoneErrorDetail } from '../../identity/phone/errors.ts';
import type { RegistrationLockService } from '../../identity/phone/registration-lock.ts';
import type { RegistrationService } from '../../identity/phone/registration.ts';
import type { VerificationService } from '../../identity/phone/verification.ts';
import { accountLockRoutes } from './accounts-lock.ts';
import { deviceRoutes } from './devices.ts';
import { phoneRegistrationRoutes } from './phone-registration.ts';
import { verificationRoutes } from './verification.ts';

export interface PhoneRoutesOptions {
  verification: VerificationService;
  registration: RegistrationService;
  devices: DeviceService;
  lock: RegistrationLockService;
}

export const phoneRoutes: FastifyPluginAsync<PhoneRoutesOptions> = async (app, o) => {
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (isSwitchboardError(err) && err.http) {
      const d = (err.detail ?? {}) as PhoneErrorDetail;
      if (d.retryAfter !== undefined) reply.header('Retry-After', String(d.retryAfter));
      for (const [k, v] of Object.entries(d.headers ?? {})) reply.header(k, v);
      return sendError(reply, err, undefined, d.body);
    }
    if (err.validation) return sendCode(reply, 'PHONE_ERR_INVALID', err.message);
    throw err;
  });
  await app.register(verificationRoutes, { verification: o.verification });
  await app.register(phoneRegistrationRoutes, { registration: o.registration });
  await app.register(deviceRoutes, { devices: o.devices });
  await app.register(accountLockRoutes, { devices: o.devices, lock: o.lock });
};
