// GET /users/{id}/devices: an account's phone-sign-up devices (id, name, created, last seen), for the admin
// console's accounts view. Devices themselves list theirs with Basic auth at GET /v1/devices.

import type { FastifyPluginAsync } from 'fastify';
import type { DeviceService } from '../../identity/phone/devices.ts';
import { guard, type Authenticator } from '../authenticate.ts';
import { deviceListSchema, errorSchema } from '../schemas.ts';

export const accountDeviceRoutes: FastifyPluginAsync<{ devices: DeviceService; auth: Authenticator }> = async (app, o) => {
  app.get<{ Params: { id: string } }>(
    '/users/:id/devices',
    {
      preHandler: guard(o.auth, { permission: 'users.read', selfParam: 'id' }),
      schema: {
        tags: ['users'],
        summary: "An account's devices from phone sign-up (none for other accounts); lastSeen at day precision, epoch ms",
        security: [{ bearer: [] }],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: {
          200: deviceListSchema,
          401: errorSchema,
          403: errorSchema,
        },
      },
    },
    async (req) => o.devices.listOf(req.params.id),
  );
};
