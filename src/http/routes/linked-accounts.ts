// The IM bridge's HTTP API (bridge/), authenticated like the inbox (`Authorization: Session <kid>:<key>`):
//
//   POST   /v1/linked-accounts        link a remote IM account {type, server, username, password, options,
//                                     stayConnected?}: the password encrypted under the vault's Secret (this
//                                     session must hold it: started with the password, on this node); connects now
//   GET    /v1/linked-accounts        the account's linked accounts with their live state (never a secret)
//   DELETE /v1/linked-accounts/{id}   disconnect and forget
//   DELETE /v1/vault                  forget the vault and every linked account (after an administrator's password
//                                     reset, for a user without the recovery key: their credentials are lost)

import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { sbError } from '../../errors.ts';
import type { Bridge } from '../../bridge/links.ts';
import type { Vault } from '../../bridge/vault.ts';
import { parseSessionAuthorization, type AppSession, type AppSessions } from '../../messaging/sessions.ts';
import { errorSchema } from '../schemas.ts';

export interface LinkedAccountRoutesOptions {
  sessions: Pick<AppSessions, 'authenticate'>;
  bridge: Pick<Bridge, 'link' | 'list' | 'unlink' | 'sessionEnded'>;
  vault: Pick<Vault, 'forget'>;
  /** Requests per minute per address on POST (0: no limit). */
  rateLimitPerMinute: number;
}

const security = [{ session: [] }];
const optionValue = { anyOf: [{ type: 'string', maxLength: 200 }, { type: 'number' }, { type: 'boolean' }] };
const linkedSchema = {
  type: 'object',
  required: ['id', 'type', 'server', 'username', 'options', 'stayConnected', 'state', 'reason', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['xmpp', 'irc', 'sip'] },
    server: { type: 'string' },
    username: { type: 'string' },
    options: { type: 'object', additionalProperties: optionValue },
    stayConnected: { type: 'boolean' },
    state: { type: 'string', enum: ['connecting', 'connected', 'bad_credentials', 'unreachable', 'disconnected'] },
    reason: { type: ['string', 'null'] },
    updatedAt: { type: 'integer' },
  },
} as const;

export const linkedAccountRoutes: FastifyPluginAsync<LinkedAccountRoutesOptions> = async (app, o) => {
  const session = async (req: FastifyRequest): Promise<AppSession> => {
    const creds = parseSessionAuthorization(req.headers.authorization);
    if (!creds) throw sbError('MSG_ERR_SESSION', 'Authorization: Session <kid>:<key> required');
    return o.sessions.authenticate(creds.kid, creds.key);
  };
  const limited = o.rateLimitPerMinute > 0 ? { rateLimit: { max: o.rateLimitPerMinute, timeWindow: 60_000 } } : {};

  app.post<{ Body: { type: 'xmpp' | 'irc' | 'sip'; server: string; username: string; password: string; options?: Record<string, string | number | boolean>; stayConnected?: boolean } }>(
    '/v1/linked-accounts',
    {
      config: limited,
      bodyLimit: 8192,
      schema: {
        tags: ['bridge'],
        summary: 'Link a remote IM account; its password is kept only encrypted under the vault (this session must have been started with the password)',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'server', 'username', 'password'],
          properties: {
            type: { type: 'string', enum: ['xmpp', 'irc', 'sip'] },
            server: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9.:\\[\\]-]+$' },
            username: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^\\s]+$' },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
            options: { type: 'object', maxProperties: 16, propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9_-]{0,31}$' }, additionalProperties: optionValue },
            stayConnected: { type: 'boolean', description: 'keep a connector-sealed copy so the link survives logout and connector restarts (README, IM bridge)' },
          },
        },
        response: { 201: linkedSchema, 400: errorSchema, 401: errorSchema, 409: errorSchema, 429: errorSchema },
      },
    },
    async (req, reply) => {
      const s = await session(req);
      const b = req.body;
      const v = await o.bridge.link(s, { type: b.type, server: b.server, username: b.username, password: b.password, options: b.options ?? {}, stayConnected: b.stayConnected ?? false });
      return reply.status(201).send(v);
    },
  );

  app.get(
    '/v1/linked-accounts',
    { schema: { tags: ['bridge'], summary: 'Linked accounts with their live state (connecting, connected, bad_credentials, unreachable, disconnected)', security, response: { 200: { type: 'object', required: ['linkedAccounts'], properties: { linkedAccounts: { type: 'array', items: linkedSchema } } }, 401: errorSchema } } },
    async (req) => ({ linkedAccounts: await o.bridge.list((await session(req)).accountId) }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/linked-accounts/:id',
    {
      schema: {
        tags: ['bridge'],
        summary: 'Disconnect and forget a linked account',
        security,
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 204: { type: 'null' }, 401: errorSchema, 404: errorSchema },
      },
    },
    async (req, reply) => {
      await o.bridge.unlink((await session(req)).accountId, req.params.id);
      return reply.status(204).send();
    },
  );

  app.delete(
    '/v1/vault',
    {
      schema: {
        tags: ['bridge'],
        summary: 'Forget the vault and every linked account (their credentials are lost); the next password session makes a new vault and recovery key',
        security,
        response: { 200: { type: 'object', properties: { message: { type: 'string' } } }, 401: errorSchema },
      },
    },
    async (req) => {
      const s = await session(req);
      await o.vault.forget(s.accountId);
      await o.bridge.sessionEnded(s.accountId, null);
      return { message: 'the vault and every linked account are gone: their credentials are lost; link them again after the next login with your password' };
    },
  );
};
