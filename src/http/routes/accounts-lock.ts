// PUT / DELETE /v1/accounts/registration_lock: set or clear the registration lock. The lock guards the whole
// account against re-registration by someone holding its number: only the primary device sets or clears it (a
// linked device, or whoever holds one, must not be able to lift it).

import type { FastifyPluginAsync } from 'fastify';
import type { DeviceService } from '../../identity/phone/devices.ts';
import { phoneError } from '../../identity/phone/errors.ts';
import { REGISTRATION_LOCK_PATTERN, type RegistrationLockService } from '../../identity/phone/registration-lock.ts';

function primaryOnly(d: { deviceId: number }): void {
  if (d.deviceId !== 1) throw phoneError('PHONE_ERR_FORBIDDEN', { message: 'only the primary device sets or clears the registration lock' });
}

export const accountLockRoutes: FastifyPluginAsync<{ devices: DeviceService; lock: RegistrationLockService }> = async (app, o) => {
  const tags = ['phone sign-up'];
  app.put<{ Body: { registrationLock: string } }>(
    '/v1/accounts/registration_lock',
    {
      schema: {
        tags,
        summary: 'Set the registration lock: the 64-hex-character token a re-registration must present while a device was seen within 7 days',
        body: { type: 'object', required: ['registrationLock'], properties: { registrationLock: { type: 'string', pattern: REGISTRATION_LOCK_PATTERN } } },
      },
    },
    async (req, reply) => {
      const d = await o.devices.authenticate(req.headers.authorization, req.ip);
      primaryOnly(d);
      await o.lock.set(d.accountId, req.body.registrationLock);
      return reply.status(204).send();
    },
  );
  app.delete('/v1/accounts/registration_lock', { schema: { tags, summary: 'Clear the registration lock' } }, async (req, reply) => {
    const d = await o.devices.authenticate(req.headers.authorization, req.ip);
    primaryOnly(d);
    await o.lock.clear(d.accountId);
    return reply.status(204).send();
  });
};
