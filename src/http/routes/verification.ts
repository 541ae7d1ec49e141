// Verification sessions: create, update (captcha, push challenge), get, request a code, submit a code.
// Every answer about a session carries the session (docs/phone-registration.md); next* are seconds from
// now and null means "not allowed in this session" (voice becomes allowed once an SMS was attempted).

import type { FastifyPluginAsync } from 'fastify';
import type { CreateSessionRequest, UpdateSessionRequest, VerificationService } from '../../identity/phone/verification.ts';
import { SESSION_ID_PATTERN } from '../../identity/phone/verification.ts';

const nullableSeconds = { type: ['integer', 'null'], description: 'seconds from now; null: not allowed in this session' } as const;

export const sessionSchema = {
  type: 'object',
  required: ['id', 'nextSms', 'nextCall', 'nextVerificationAttempt', 'allowedToRequestCode', 'requestedInformation', 'verified'],
  properties: {
    id: { type: 'string' },
    nextSms: nullableSeconds,
    nextCall: nullableSeconds,
    nextVerificationAttempt: nullableSeconds,
    allowedToRequestCode: { type: 'boolean' },
    requestedInformation: { type: 'array', items: { type: 'string', enum: ['captcha', 'pushChallenge'] } },
    verified: { type: 'boolean' },
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: SESSION_ID_PATTERN } } } as const;
const pushFields = {
  pushToken: { type: 'string', minLength: 1, maxLength: 4096 },
  pushTokenType: { type: 'string', enum: ['apn', 'fcm'] },
  mcc: { type: 'string', pattern: '^[0-9]{3}$' },
  mnc: { type: 'string', pattern: '^[0-9]{2,3}$' },
} as const;
const tags = ['phone sign-up'];

export const verificationRoutes: FastifyPluginAsync<{ verification: VerificationService }> = async (app, o) => {
  const v = o.verification;

  app.post<{ Body: CreateSessionRequest }>(
    '/v1/verification/session',
    {
      schema: {
        tags,
        summary: 'Start verifying a phone number (E.164): the session asks for a captcha, or a push challenge when a push token is given',
        body: { type: 'object', required: ['number'], properties: { number: { type: 'string', maxLength: 32 }, ...pushFields } },
        response: { 200: sessionSchema },
      },
    },
    async (req) => v.create(req.body, req.ip),
  );

  app.patch<{ Params: { id: string }; Body: UpdateSessionRequest }>(
    '/v1/verification/session/:id',
    {
      schema: {
        tags,
        summary: 'Answer what the session requests: a captcha or the push challenge (either one is enough)',
        params: idParams,
        body: {
          type: 'object',
          properties: { captcha: { type: 'string', minLength: 1, maxLength: 8192 }, pushChallenge: { type: 'string', minLength: 1, maxLength: 256 }, ...pushFields },
        },
        response: { 200: sessionSchema },
      },
    },
    async (req) => v.update(req.params.id, req.body ?? {}, req.ip),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/verification/session/:id',
    { schema: { tags, summary: 'The session as it stands', params: idParams, response: { 200: sessionSchema } } },
    async (req) => v.get(req.params.id),
  );

  app.post<{ Params: { id: string }; Body: { transport: 'sms' | 'voice'; client?: string } }>(
    '/v1/verification/session/:id/code',
    {
      schema: {
        tags,
        summary: 'Send a code by SMS or voice (voice only after an SMS attempt), paced per session',
        params: idParams,
        body: {
          type: 'object',
          required: ['transport'],
          properties: { transport: { type: 'string', enum: ['sms', 'voice'] }, client: { type: 'string', maxLength: 256 } },
        },
        response: { 200: sessionSchema },
      },
    },
    async (req) => {
      const lang = req.headers['accept-language'];
      return v.requestCode(req.params.id, req.body.transport, req.body.client ?? null, typeof lang === 'string' ? lang.slice(0, 100) : null, req.ip);
    },
  );

  app.put<{ Params: { id: string }; Body: { code: string } }>(
    '/v1/verification/session/:id/code',
    {
      schema: {
        tags,
        summary: 'Check a code: 200 with verified true or false; 429 without Retry-After when the checks are used up',
        params: idParams,
        body: { type: 'object', required: ['code'], properties: { code: { type: 'string', minLength: 1, maxLength: 32 } } },
        response: { 200: sessionSchema },
      },
    },
    async (req) => v.submitCode(req.params.id, req.body.code),
  );
};
