// Who is calling over HTTP: `Authorization: Bearer <access token>` (a JWT we or the configured issuer signed)
// or `Authorization: Bearer sbk_…` (an API key). Routes declare what they need with `guard(...)`; the caller's
// principal is on `request.principal`.
//
// Every credential is checked against its account's current state as it is accepted (TokenService.verify and
// ApiKeys.verify run identity/credential-validity.ts): a disabled or deleted account's tokens and keys, and a removed
// or locked device's tokens, are refused with 401. A device token (claim `dev`) acts for its device: the account's
// own actions (deleting it, its API keys, password, registration lock, managing devices) need the primary device
// (`dev` 1) or a password login (no `dev`), and a linked device never carries the account's roles.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { sbError } from '../errors.ts';
import { isApiKey, type ApiKeys } from '../identity/api-keys.ts';
import { TokenError, type TokenService } from '../identity/tokens.ts';

export interface Principal {
  accountId: string;
  username: string | null;
  realm: string | null;
  roles: string[];
  /** Token scopes, or an API key's permissions. */
  scopes: string[];
  via: 'token' | 'api-key';
  /** The device a device token was issued to (1: the primary); null for a password login or an API key. */
  device: number | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface Authenticator {
  tokens: TokenService;
  apiKeys: ApiKeys;
}

export function isAdmin(p: Principal | null): boolean {
  return p !== null && p.roles.includes('admin');
}

/** Reads the caller from the Authorization header; null when there is none. Throws 401 for a bad one. */
export async function principalOf(req: FastifyRequest, auth: Authenticator): Promise<Principal | null> {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i.exec(h);
  if (!m) throw sbError('HTTP_ERR_UNAUTHORIZED', 'Authorization must be "Bearer <token>"');
  const token = m[1];
  if (isApiKey(token)) {
    const key = await auth.apiKeys.verify(token);
    if (!key) throw sbError('HTTP_ERR_UNAUTHORIZED', 'API key invalid, expired or revoked');
    return { accountId: key.accountId, username: null, realm: null, roles: [], scopes: key.permissions, via: 'api-key', device: null };
  }
  try {
    const c = await auth.tokens.verify(token);
    const device = typeof c.dev === 'number' ? c.dev : null;
    const linked = device !== null && device !== 1;
    return {
      accountId: c.sub,
      username: c.username ?? null,
      realm: c.realm ?? null,
      roles: Array.isArray(c.roles) && !linked ? c.roles : [],
      scopes: typeof c.scope === 'string' ? c.scope.split(' ').filter((s) => !linked || s !== 'admin') : [],
      via: 'token',
      device,
    };
  } catch (e) {
    if (e instanceof TokenError) throw sbError('HTTP_ERR_UNAUTHORIZED', `access token rejected: ${e.message}`);
    throw e;
  }
}

export interface GuardRule {
  /** Any authenticated caller passes. */
  anyone?: boolean;
  /** Allowed for admins, for principals holding this permission (API keys), or for the account itself. */
  permission?: string;
  /** Route parameter naming the account: the account itself may pass. */
  selfParam?: string;
  /** An action on the account as a whole: a device token passes only from the primary device. */
  account?: boolean;
}

/** Whether the principal may act for its account as a whole: a password login, an API key, or the primary device. */
export function actsForAccount(p: Principal): boolean {
  return p.device === null || p.device === 1;
}

/** A preHandler that requires a principal satisfying the rule (401 without one, 403 when it does not fit). */
export function guard(auth: Authenticator, rule: GuardRule = {}) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const p = await principalOf(req, auth);
    req.principal = p;
    if (!p) {
      reply.header('WWW-Authenticate', 'Bearer realm="switchboard"');
      throw sbError('HTTP_ERR_UNAUTHORIZED');
    }
    if (rule.account && !actsForAccount(p)) {
      req.log.info({ account: p.accountId, device: p.device }, 'account-level action refused to a linked device');
      throw sbError('HTTP_ERR_FORBIDDEN', 'needs the primary device or a password login');
    }
    if (rule.anyone || isAdmin(p)) return;
    if (rule.permission && p.scopes.includes(rule.permission)) return;
    if (rule.selfParam) {
      const id = (req.params as Record<string, string>)[rule.selfParam];
      if (id === p.accountId && p.via === 'token') return;
    }
    throw sbError('HTTP_ERR_FORBIDDEN', rule.permission ? `needs the admin role or the ${rule.permission} permission` : 'needs the admin role');
  };
}
