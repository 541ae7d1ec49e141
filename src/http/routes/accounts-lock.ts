// PUT / DELETE /v1/accounts/registration_lock: set or clear the registration lock (any device of the account).

import type { FastifyPluginAsync } from 'fastify';
import type { DeviceService } from '../../identity/phone/devices.ts';
import { REGISTRATION_LOCK_PATTERN, type RegistrationLockService } from '../../identity/phone/registration-lock.ts';

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
      await o.lock.set(d.accountId, req.body.registrationLock);
      return reply.status(204).send();
    },
  );
  app.delete('/v1/accounts/registration_lock', { schema: { tags, summary: 'Clear the registration lock' } }, async (req, reply) => {
    const d = await o.devices.authenticate(req.headers.authorization, req.ip);
    await o.lock.clear(d.accountId);
    return reply.status(204).send();
  });
};
