// POST /v1/registration: the account and its primary device from a verified number (or a re-registration).

import type { FastifyPluginAsync } from 'fastify';
import { REGISTRATION_LOCK_PATTERN } from '../../identity/phone/registration-lock.ts';
import type { RegistrationRequest, RegistrationService } from '../../identity/phone/registration.ts';

export const deviceAttributesSchema = {
  type: 'object',
  properties: {
    name: { type: ['string', 'null'], maxLength: 1024 },
    fetchesMessages: { type: 'boolean' },
    registrationId: { type: 'integer', minimum: 0, maximum: 16383 },
    pniRegistrationId: { type: 'integer', minimum: 0, maximum: 16383 },
    capabilities: { type: 'object' },
  },
} as const;

export const phoneRegistrationRoutes: FastifyPluginAsync<{ registration: RegistrationService }> = async (app, o) => {
  app.post<{ Body: RegistrationRequest }>(
    '/v1/registration',
    {
      schema: {
        tags: ['phone sign-up'],
        summary: 'Create the account and primary device of a verified number (Authorization: Basic <e164>:<device password>), or re-register it',
        body: {
          type: 'object',
          required: ['accountAttributes'],
          properties: {
            sessionId: { type: 'string', minLength: 1, maxLength: 256 },
            recoveryPassword: { type: 'string', minLength: 1, maxLength: 512 },
            skipDeviceTransfer: { type: 'boolean' },
            accountAttributes: {
              ...deviceAttributesSchema,
              properties: {
                ...deviceAttributesSchema.properties,
                registrationLock: { type: ['string', 'null'], pattern: REGISTRATION_LOCK_PATTERN },
                recoveryPassword: { type: ['string', 'null'], minLength: 1, maxLength: 512 },
                unidentifiedAccessKey: { type: ['string', 'null'], maxLength: 256 },
                unrestrictedUnidentifiedAccess: { type: 'boolean' },
                discoverableByPhoneNumber: { type: 'boolean' },
              },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['uuid', 'number', 'pni', 'storageCapable', 'reregistration'],
            properties: { uuid: { type: 'string' }, number: { type: 'string' }, pni: { type: 'string' }, storageCapable: { type: 'boolean' }, reregistration: { type: 'boolean' } },
          },
        },
      },
    },
    async (req) => o.registration.register(req.headers.authorization, req.body),
  );
};
