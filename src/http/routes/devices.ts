// Devices of a phone account, authenticated with Basic <account-id>.<device-id>:<password>: link codes, linking,
// listing, removal, and access tokens for SIP Bearer REGISTER.

import type { FastifyPluginAsync } from 'fastify';
import type { DeviceAttributes, DeviceService } from '../../identity/phone/devices.ts';
import { deviceListSchema } from '../schemas.ts';
import { deviceAttributesSchema } from './phone-registration.ts';

const tags = ['phone devices'];

export const deviceRoutes: FastifyPluginAsync<{ devices: DeviceService }> = async (app, o) => {
  const devices = o.devices;

  app.get(
    '/v1/devices/provisioning/code',
    {
      schema: {
        tags,
        summary: 'A link code for a new device (primary device only; valid 10 minutes, once)',
        response: { 200: { type: 'object', properties: { verificationCode: { type: 'string' }, tokenIdentifier: { type: 'string' } } } },
      },
    },
    async (req) => devices.provisioningCode(await devices.authenticate(req.headers.authorization, req.ip)),
  );

  app.put<{ Body: { verificationCode: string; accountAttributes?: DeviceAttributes } }>(
    '/v1/devices/link',
    {
      schema: {
        tags,
        summary: 'Link a new device with a link code (Authorization: Basic <e164>:<new device password>)',
        body: {
          type: 'object',
          required: ['verificationCode'],
          properties: { verificationCode: { type: 'string', minLength: 1, maxLength: 1024 }, accountAttributes: deviceAttributesSchema },
        },
        response: { 200: { type: 'object', properties: { uuid: { type: 'string' }, pni: { type: 'string' }, deviceId: { type: 'integer' } } } },
      },
    },
    async (req) => devices.link(req.headers.authorization, req.body.verificationCode, req.body.accountAttributes ?? {}),
  );

  app.get(
    '/v1/devices',
    {
      schema: {
        tags,
        summary: "The account's devices (lastSeen at day precision, epoch ms)",
        response: {
          200: deviceListSchema,
        },
      },
    },
    async (req) => devices.list(await devices.authenticate(req.headers.authorization, req.ip)),
  );

  app.delete<{ Params: { deviceId: number } }>(
    '/v1/devices/:deviceId',
    {
      schema: {
        tags,
        summary: 'Remove a linked device (the primary removes any, a linked device itself)',
        params: { type: 'object', required: ['deviceId'], properties: { deviceId: { type: 'integer', minimum: 1, maximum: 999999999 } } },
      },
    },
    async (req, reply) => {
      await devices.remove(await devices.authenticate(req.headers.authorization, req.ip), req.params.deviceId);
      return reply.status(204).send();
    },
  );

  app.post(
    '/v1/devices/token',
    {
      schema: {
        tags,
        summary: 'An access token for this device (SIP REGISTER with Authorization: Bearer); it dies with the device',
        response: { 200: { type: 'object', properties: { access_token: { type: 'string' }, token_type: { type: 'string' }, expires_in: { type: 'integer' } } } },
      },
    },
    async (req) => devices.issueToken(await devices.authenticate(req.headers.authorization, req.ip)),
  );
};
