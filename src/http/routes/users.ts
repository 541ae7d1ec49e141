// /users: accounts (admin, or the account itself where noted), passwords, roles and API keys.
// Roles change only by an admin, and never on the admin's own account: nobody grants themselves roles.

import type { FastifyPluginAsync } from 'fastify';
import { sbError } from '../../errors.ts';
import { LockedError, type AccountService } from '../../identity/account-service.ts';
import { API_KEY_PERMISSIONS, type ApiKeys } from '../../identity/api-keys.ts';
import type { RefreshTokens } from '../../identity/refresh-tokens.ts';
import type { Account, AccountAdmin, AccountStore, ApiKeyRecord } from '../../storage/ports.ts';
import { guard, isAdmin, type Authenticator } from '../authenticate.ts';
import { accountSchema, errorSchema } from '../schemas.ts';

export interface UserRoutesOptions {
  accounts: AccountService;
  store: AccountStore & AccountAdmin;
  refresh: RefreshTokens;
  apiKeys: ApiKeys;
  auth: Authenticator;
  /** Called after an account is deleted (its bindings go too). */
  onDeleted?: (account: Account) => Promise<void> | void;
  /** Called after an account is disabled or enabled again (cached credentials must follow at once). */
  onStatusChanged?: (account: Account) => Promise<void> | void;
  /** Password changes per minute per address (as login: --login-rate-limit; 0 or absent: unlimited). */
  passwordRateLimitPerMinute?: number;
}

export function accountJson(a: Account) {
  return {
    id: a.id,
    username: a.username,
    realm: a.realm,
    aor: a.aor,
    roles: a.roles,
    disabled: a.disabled,
    hasPassword: a.passwordHash !== null,
    createdAt: new Date(a.createdAt).toISOString(),
    updatedAt: new Date(a.updatedAt).toISOString(),
  };
}

function apiKeyJson(k: ApiKeyRecord) {
  return {
    id: k.id,
    name: k.name,
    permissions: k.permissions,
    createdAt: new Date(k.createdAt).toISOString(),
    expiresAt: k.expiresAt === null ? null : new Date(k.expiresAt).toISOString(),
    revokedAt: k.revokedAt === null ? null : new Date(k.revokedAt).toISOString(),
    lastUsedAt: k.lastUsedAt === null ? null : new Date(k.lastUsedAt).toISOString(),
  };
}

const ROLES = ['admin'] as const;
const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;
/** Permissions a non-admin may put on its own API keys. */
const SELF_PERMISSIONS = ['presence.read', 'presence.write'];

export const userRoutes: FastifyPluginAsync<UserRoutesOptions> = async (app, o) => {
  const admin = guard(o.auth);
  /** Deleting the account, its password and API keys: not from a linked device (authenticate.ts). */
  const accountLevel = guard(o.auth, { selfParam: 'id', account: true });
  const read = guard(o.auth, { permission: 'users.read', selfParam: 'id' });
  const write = guard(o.auth, { permission: 'users.write' });
  const security = [{ bearer: [] }];

  const load = async (id: string) => {
    const a = await o.store.findById(id);
    if (!a) throw sbError('ACCOUNT_ERR_NOT_FOUND', `no account ${id}`);
    return a;
  };

  app.post<{ Body: { username: string; password: string; roles?: string[] } }>(
    '/users',
    {
      preHandler: write,
      schema: {
        tags: ['users'],
        summary: 'Create an account (user@realm): argon2id for HTTP and Digest HA1s for SIP from one password',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'password'],
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 400 },
            password: { type: 'string', minLength: 8, maxLength: 1024 },
            roles: { type: 'array', items: { type: 'string', enum: [...ROLES] }, uniqueItems: true },
          },
        },
        response: { 201: accountSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      if (req.body.roles?.length && !isAdmin(req.principal)) throw sbError('HTTP_ERR_FORBIDDEN', 'only an admin grants roles');
      const account = await o.accounts.create(req.body.username, req.body.password, req.body.roles ?? []);
      return reply.status(201).send(accountJson(account));
    },
  );

  app.get<{ Querystring: { search?: string; realm?: string; limit?: number; offset?: number } }>(
    '/users',
    {
      preHandler: guard(o.auth, { permission: 'users.read' }),
      schema: {
        tags: ['users'],
        summary: 'List accounts, searching user@realm, with paging',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            search: { type: 'string', maxLength: 400 },
            realm: { type: 'string', maxLength: 253 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            offset: { type: 'integer', minimum: 0, default: 0 },
          },
        },
        response: {
          200: { type: 'object', properties: { total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' }, users: { type: 'array', items: accountSchema } } },
          401: errorSchema,
          403: errorSchema,
        },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 100;
      const offset = req.query.offset ?? 0;
      const r = await o.store.list({ search: req.query.search, realm: req.query.realm, limit, offset });
      return { total: r.total, limit, offset, users: r.accounts.map(accountJson) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/users/:id',
    { preHandler: read, schema: { tags: ['users'], summary: 'One account', security, params: idParam, response: { 200: accountSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema } } },
    async (req) => accountJson(await load(req.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: { roles?: string[]; disabled?: boolean } }>(
    '/users/:id',
    {
      preHandler: admin,
      schema: {
        tags: ['users'],
        summary: 'Change roles or disable an account (admin; never on your own account)',
        security,
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { roles: { type: 'array', items: { type: 'string', enum: [...ROLES] }, uniqueItems: true }, disabled: { type: 'boolean' } },
        },
        response: { 200: accountSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (req) => {
      if (req.params.id === req.principal!.accountId) throw sbError('HTTP_ERR_FORBIDDEN', 'an account cannot change its own roles or status');
      await load(req.params.id);
      // Disabling moves the account's "valid after" instant to now: its tokens and API keys are refused from now on,
      // and stay refused when it is enabled again (identity/credential-validity.ts).
      const updated = await o.store.update(req.params.id, req.body.disabled ? { ...req.body, credentialsValidAfter: Date.now() } : req.body);
      if (req.body.disabled) await o.refresh.revokeAll(updated.id);
      if (req.body.disabled !== undefined) await o.onStatusChanged?.(updated);
      return accountJson(updated);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/users/:id',
    { preHandler: accountLevel, schema: { tags: ['users'], summary: 'Delete an account with its credentials, tokens, keys and bindings', security, params: idParam, response: { 204: { type: 'null' }, 401: errorSchema, 403: errorSchema, 404: errorSchema } } },
    async (req, reply) => {
      const account = await load(req.params.id);
      await o.store.delete(account.id);
      await o.onDeleted?.(account);
      return reply.status(204).send();
    },
  );

  app.put<{ Params: { id: string }; Body: { password: string; currentPassword?: string } }>(
    '/users/:id/password',
    {
      // Each one may cost an argon2 verification: limited per address like login, before anything else is done.
      config: (o.passwordRateLimitPerMinute ?? 0) > 0 ? { rateLimit: { max: o.passwordRateLimitPerMinute!, timeWindow: 60_000 } } : {},
      preHandler: accountLevel,
      schema: {
        tags: ['users'],
        summary: 'Set a new password (the account itself must give its current one); HA1s change with it; other sessions are logged out',
        security,
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['password'],
          properties: { password: { type: 'string', minLength: 8, maxLength: 1024 }, currentPassword: { type: 'string', maxLength: 1024 } },
        },
        response: { 204: { type: 'null' }, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 429: errorSchema },
      },
    },
    async (req, reply) => {
      const account = await load(req.params.id);
      // Counted and locked like login (a stolen access token must not become a password-guessing oracle).
      if (!isAdmin(req.principal)) {
        try {
          await o.accounts.checkPassword(account, req.body.currentPassword ?? '', req.ip);
        } catch (e) {
          if (e instanceof LockedError) reply.header('Retry-After', String(e.retryAfter));
          throw e;
        }
      }
      // The current password, when it was asked for, lets the bridge's vault be rewrapped rather than reset.
      await o.accounts.setPassword(account, req.body.password, isAdmin(req.principal) ? null : (req.body.currentPassword ?? null));
      await o.refresh.revokeAll(account.id);
      return reply.status(204).send();
    },
  );

  // API keys
  const keySchema = {
    type: 'object',
    properties: {
      id: { type: 'string' },
      name: { type: 'string' },
      permissions: { type: 'array', items: { type: 'string' } },
      createdAt: { type: 'string' },
      expiresAt: { type: 'string', nullable: true },
      revokedAt: { type: 'string', nullable: true },
      lastUsedAt: { type: 'string', nullable: true },
    },
  } as const;

  app.post<{ Params: { id: string }; Body: { name: string; permissions: string[]; expiresInDays?: number } }>(
    '/users/:id/api-keys',
    {
      preHandler: accountLevel,
      schema: {
        tags: ['api-keys'],
        summary: 'Create an API key; the key is in this response only (only its hash is stored)',
        security,
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'permissions'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            permissions: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: [...API_KEY_PERMISSIONS] } },
            expiresInDays: { type: 'integer', minimum: 1, maximum: 3650 },
          },
        },
        response: { 201: { ...keySchema, properties: { ...keySchema.properties, key: { type: 'string' } } }, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (req, reply) => {
      const account = await load(req.params.id);
      if (!isAdmin(req.principal)) {
        const beyond = req.body.permissions.filter((p) => !SELF_PERMISSIONS.includes(p));
        if (beyond.length) throw sbError('HTTP_ERR_FORBIDDEN', `only an admin grants ${beyond.join(', ')}`);
      }
      const expiresAt = req.body.expiresInDays ? Date.now() + req.body.expiresInDays * 86_400_000 : null;
      const { key, record } = await o.apiKeys.create(account.id, req.body.name, req.body.permissions, expiresAt);
      return reply.status(201).send({ ...apiKeyJson(record), key });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/users/:id/api-keys',
    { preHandler: accountLevel, schema: { tags: ['api-keys'], summary: "An account's API keys (never the keys themselves)", security, params: idParam, response: { 200: { type: 'object', properties: { keys: { type: 'array', items: keySchema } } }, 401: errorSchema, 403: errorSchema } } },
    async (req) => ({ keys: (await o.apiKeys.list(req.params.id)).map(apiKeyJson) }),
  );

  app.delete<{ Params: { id: string; keyId: string } }>(
    '/users/:id/api-keys/:keyId',
    {
      preHandler: accountLevel,
      schema: {
        tags: ['api-keys'],
        summary: 'Revoke an API key',
        security,
        params: { type: 'object', required: ['id', 'keyId'], properties: { id: { type: 'string', maxLength: 64 }, keyId: { type: 'string', maxLength: 64 } } },
        response: { 204: { type: 'null' }, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (req, reply) => {
      if (!(await o.apiKeys.revoke(req.params.id, req.params.keyId))) throw sbError('HTTP_ERR_NOT_FOUND', 'no such live API key');
      return reply.status(204).send();
    },
  );
};
