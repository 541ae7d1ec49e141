// Presence over HTTP, per account: read the composed state, set it (a publication like a PUBLISH, replaced on
// every call), list the watchers, read and change the watcher policy.
//
// Who may call: an admin; the account itself with an access token; an API key of the account itself holding
// presence.read / presence.write; or an API key of an admin account holding the permission (a service reading
// everyone's presence). A non-admin's API key never reaches another account's presence.

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { sbError } from '../../errors.ts';
import { isActivityName } from '../../presence/pidf.ts';
import { POLICY_MODES } from '../../presence/policy.ts';
import type { PresenceService } from '../../presence/presence-service.ts';
import type { AccountStore } from '../../storage/ports.ts';
import { isAdmin, principalOf, type Authenticator } from '../authenticate.ts';
import { errorSchema } from '../schemas.ts';

export interface PresenceRoutesOptions {
  presence: PresenceService;
  accounts: AccountStore;
  auth: Authenticator;
}

const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

export const presenceRoutes: FastifyPluginAsync<PresenceRoutesOptions> = async (app, o) => {
  const security = [{ bearer: [] }];

  const allow = (permission: 'presence.read' | 'presence.write') => async (req: FastifyRequest, reply: FastifyReply) => {
    const p = await principalOf(req, o.auth);
    req.principal = p;
    if (!p) {
      reply.header('WWW-Authenticate', 'Bearer realm="switchboard"');
      throw sbError('HTTP_ERR_UNAUTHORIZED');
    }
    if (isAdmin(p)) return;
    const id = (req.params as { id: string }).id;
    if (p.accountId === id && (p.via === 'token' || p.scopes.includes(permission))) return;
    if (p.via === 'api-key' && p.scopes.includes(permission)) {
      const owner = await o.accounts.findById(p.accountId);
      if (owner?.roles.includes('admin')) return;
    }
    throw sbError('HTTP_ERR_FORBIDDEN', `needs the admin role, the account itself, or an admin's API key with ${permission}`);
  };
  const read = allow('presence.read');
  const write = allow('presence.write');

  const aorOf = async (id: string) => {
    const a = await o.accounts.findById(id);
    if (!a) throw sbError('ACCOUNT_ERR_NOT_FOUND', `no account ${id}`);
    return a.aor;
  };

  app.get<{ Params: { id: string } }>(
    '/users/:id/presence',
    {
      preHandler: read,
      schema: { tags: ['presence'], summary: 'The composed presence state (tuples per device, activities, the PIDF document)', security, params: idParam, response: errors },
    },
    async (req) => {
      const aor = await aorOf(req.params.id);
      await o.presence.refresh(aor);
      return o.presence.state(aor);
    },
  );

  app.put<{ Params: { id: string }; Body: { basic: 'open' | 'closed'; activities?: string[]; note?: string; expires?: number } }>(
    '/users/:id/presence',
    {
      preHandler: write,
      schema: {
        tags: ['presence'],
        summary: 'Set the presence state (replaces what was set over HTTP before; devices\u2019 own PUBLISHes stay)',
        security,
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['basic'],
          properties: {
            basic: { type: 'string', enum: ['open', 'closed'] },
            activities: { type: 'array', maxItems: 16, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 64 } },
            note: { type: 'string', maxLength: 1024 },
            expires: { type: 'integer', minimum: 1 },
          },
        },
        response: errors,
      },
    },
    async (req) => {
      for (const a of req.body.activities ?? []) if (!isActivityName(a)) throw sbError('HTTP_ERR_VALIDATION', `activity ${JSON.stringify(a)} is not an XML name`);
      const aor = await aorOf(req.params.id);
      await o.presence.setState(aor, req.body, req.params.id);
      return o.presence.state(aor);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/users/:id/presence',
    { preHandler: write, schema: { tags: ['presence'], summary: 'Remove the state set over HTTP', security, params: idParam, response: errors } },
    async (req, reply) => {
      const removed = await o.presence.clearState(await aorOf(req.params.id));
      if (!removed) throw sbError('HTTP_ERR_NOT_FOUND', 'no presence state was set over HTTP');
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    '/users/:id/presence/watchers',
    { preHandler: read, schema: { tags: ['presence'], summary: 'Subscriptions to this presentity (active and pending)', security, params: idParam, response: errors } },
    async (req) => ({ watchers: o.presence.watchers(await aorOf(req.params.id)) }),
  );

  app.get<{ Params: { id: string } }>(
    '/users/:id/presence/policy',
    { preHandler: read, schema: { tags: ['presence'], summary: 'Who may watch this presentity', security, params: idParam, response: errors } },
    async (req) => {
      const p = o.presence.policy(await aorOf(req.params.id));
      return { mode: p.mode, allow: p.allow };
    },
  );

  app.put<{ Params: { id: string }; Body: { mode: (typeof POLICY_MODES)[number]; allow?: string[] } }>(
    '/users/:id/presence/policy',
    {
      preHandler: write,
      schema: {
        tags: ['presence'],
        summary: 'Set who may watch: everyone in the realm (default), an allow list, or nobody; the allow list adds to every mode',
        security,
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['mode'],
          properties: {
            mode: { type: 'string', enum: [...POLICY_MODES] },
            allow: { type: 'array', maxItems: 1000, items: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$', maxLength: 400 } },
          },
        },
        response: errors,
      },
    },
    async (req) => {
      const p = await o.presence.setPolicy(await aorOf(req.params.id), req.body.mode, req.body.allow ?? []);
      return { mode: p.mode, allow: p.allow };
    },
  );
};
