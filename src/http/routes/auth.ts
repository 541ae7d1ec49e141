// Login, token refresh, logout and the JWKS (docs/identity-api.md).

import type { FastifyPluginAsync } from 'fastify';
import { sbError } from '../../errors.ts';
import { LockedError, type AccountService } from '../../identity/account-service.ts';
import type { KeyRing } from '../../identity/keys.ts';
import { RefreshError, type RefreshTokens } from '../../identity/refresh-tokens.ts';
import type { TokenService } from '../../identity/tokens.ts';
import type { AccountStore } from '../../storage/ports.ts';
import { guard, type Authenticator } from '../authenticate.ts';
import { errorSchema } from '../schemas.ts';

export interface AuthRoutesOptions {
  accounts: AccountService;
  accountStore: AccountStore;
  tokens: TokenService;
  refresh: RefreshTokens;
  keys: KeyRing;
  auth: Authenticator;
  /** Requests per minute per address on login and refresh (0: no limit). */
  rateLimitPerMinute: number;
}

const tokenResponse = {
  type: 'object',
  required: ['access_token', 'refresh_token', 'token_type', 'expires_in'],
  properties: {
    access_token: { type: 'string' },
    refresh_token: { type: 'string' },
    token_type: { type: 'string', enum: ['Bearer'] },
    expires_in: { type: 'integer' },
  },
} as const;

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, o) => {
  const limited = o.rateLimitPerMinute > 0 ? { rateLimit: { max: o.rateLimitPerMinute, timeWindow: 60_000 } } : {};

  const issue = async (accountId: string, refreshToken: string) => {
    const account = await o.accountStore.findById(accountId);
    if (!account || account.disabled) throw sbError('AUTH_ERR_CREDENTIALS', 'account no longer exists or is disabled');
    const access = await o.tokens.issue(account);
    return { access_token: access.token, refresh_token: refreshToken, token_type: 'Bearer' as const, expires_in: access.expiresIn };
  };

  app.post<{ Body: { username: string; password: string } }>(
    '/auth/login',
    {
      config: limited,
      schema: {
        tags: ['auth'],
        summary: 'Exchange a user name (user@realm or user) and password for an access and a refresh token',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'password'],
          properties: { username: { type: 'string', minLength: 1, maxLength: 400 }, password: { type: 'string', minLength: 1, maxLength: 1024 } },
        },
        response: { 200: tokenResponse, 400: errorSchema, 401: errorSchema, 429: errorSchema },
      },
    },
    async (req, reply) => {
      try {
        const account = await o.accounts.login(req.body.username, req.body.password, req.ip);
        return await issue(account.id, await o.refresh.issue(account.id));
      } catch (e) {
        if (e instanceof LockedError) reply.header('Retry-After', String(e.retryAfter));
        throw e;
      }
    },
  );

  app.post<{ Body: { refresh_token: string } }>(
    '/auth/refresh',
    {
      config: limited,
      schema: {
        tags: ['auth'],
        summary: 'Rotate a refresh token: returns new tokens; the presented one is spent (reusing it revokes its family)',
        body: { type: 'object', additionalProperties: false, required: ['refresh_token'], properties: { refresh_token: { type: 'string', maxLength: 200 } } },
        response: { 200: tokenResponse, 400: errorSchema, 401: errorSchema, 429: errorSchema },
      },
    },
    async (req) => {
      try {
        const next = await o.refresh.rotate(req.body.refresh_token);
        return await issue(next.accountId, next.token);
      } catch (e) {
        if (e instanceof RefreshError) {
          if (e.reason === 'reused') req.log.warn('refresh token reused: its family is revoked');
          throw sbError('AUTH_ERR_CREDENTIALS', `refresh token ${e.reason}`);
        }
        throw e;
      }
    },
  );

  app.post<{ Body: { refresh_token?: string } | undefined }>(
    '/auth/logout',
    {
      preHandler: guard(o.auth, { anyone: true }),
      schema: {
        tags: ['auth'],
        summary: "Revoke the caller's refresh tokens: the family of the one given, or all of them",
        security: [{ bearer: [] }],
        body: { type: 'object', nullable: true, additionalProperties: false, properties: { refresh_token: { type: 'string', maxLength: 200 } } },
        response: { 204: { type: 'null' }, 401: errorSchema, 403: errorSchema },
      },
    },
    async (req, reply) => {
      const token = req.body?.refresh_token;
      const accountId = req.principal!.accountId;
      if (token) {
        const r = await o.refresh.revoke(token, accountId);
        if (r === 'not-yours') {
          req.log.warn({ account: accountId }, "logout refused: the refresh token is another account's");
          throw sbError('HTTP_ERR_FORBIDDEN', 'the refresh token was not issued to the caller');
        }
        if (r === 'ignored') req.log.info({ account: accountId }, 'logout: refresh token unknown or not genuine, nothing revoked');
      } else await o.refresh.revokeAll(accountId);
      return reply.status(204).send();
    },
  );

  app.get('/auth/jwks.json', { schema: { tags: ['auth'], summary: 'Public keys that verify our access tokens (RFC 7517)' } }, async (_req, reply) => {
    await o.keys.refresh();
    reply.header('Cache-Control', 'public, max-age=300');
    return o.keys.jwks();
  });
};
