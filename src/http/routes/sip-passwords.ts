// /users/:id/reversible-sip-password: the operator's opt-in to reversible SIP password storage for one account
// (admin only). Switchboard keeps no plaintext by default; a switch that must see the password (Kazoo's
// `Auth-Method: password`) gets it only for accounts opted in here or with `switchboard user add
// --reversible-sip-password`. Opting in needs the current password (checked against the account's HA1); it is then
// stored sealed (AES-256-GCM). A later password change leaves the sealed copy unused until opted in again.

import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { sbError } from '../../errors.ts';
import type { ReversibleSipPasswords } from '../../identity/reversible-passwords.ts';
import { computeHa1 } from '../../sip/digest.ts';
import type { AccountStore, CredentialStore } from '../../storage/ports.ts';
import { guard, type Authenticator } from '../authenticate.ts';
import { errorSchema } from '../schemas.ts';

export interface SipPasswordRoutesOptions {
  accounts: AccountStore;
  credentials: CredentialStore;
  passwords: ReversibleSipPasswords;
  auth: Authenticator;
}

const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;
const stateSchema = { type: 'object', required: ['enabled'], properties: { enabled: { type: 'boolean' } } } as const;

export const sipPasswordRoutes: FastifyPluginAsync<SipPasswordRoutesOptions> = async (app, o) => {
  const admin = guard(o.auth);
  const security = [{ bearer: [] }];
  const load = async (id: string) => {
    const a = await o.accounts.findById(id);
    if (!a) throw sbError('ACCOUNT_ERR_NOT_FOUND', `no account ${id}`);
    return a;
  };

  app.get<{ Params: { id: string } }>(
    '/users/:id/reversible-sip-password',
    { preHandler: admin, schema: { tags: ['users'], summary: 'Whether the account opted into reversible SIP password storage (admin)', security, params: idParam, response: { 200: stateSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema } } },
    async (req) => ({ enabled: await o.passwords.isEnabled((await load(req.params.id)).id) }),
  );

  app.put<{ Params: { id: string }; Body: { password: string } }>(
    '/users/:id/reversible-sip-password',
    {
      preHandler: admin,
      schema: {
        tags: ['users'],
        summary: 'Opt the account into reversible SIP password storage (admin): the current password, stored sealed, for switches that need it (Kazoo Auth-Method password)',
        security,
        params: idParam,
        body: { type: 'object', additionalProperties: false, required: ['password'], properties: { password: { type: 'string', minLength: 1, maxLength: 1024 } } },
        response: { 200: stateSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (req) => {
      const account = await load(req.params.id);
      const found = await o.credentials.findSipCredential(account.username, account.realm, 'MD5');
      const want = found ? Buffer.from(found.credential.ha1, 'latin1') : Buffer.alloc(32);
      const got = Buffer.from(computeHa1('MD5', account.username, account.realm, req.body.password), 'latin1');
      if (!found || want.length !== got.length || !timingSafeEqual(want, got)) {
        throw sbError('HTTP_ERR_VALIDATION', "password does not match the account's SIP credentials");
      }
      await o.passwords.enable(account.id, req.body.password);
      return { enabled: true };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/users/:id/reversible-sip-password',
    { preHandler: admin, schema: { tags: ['users'], summary: 'Opt the account out: the sealed SIP password is deleted (admin)', security, params: idParam, response: { 200: stateSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema } } },
    async (req) => {
      await o.passwords.disable((await load(req.params.id)).id);
      return { enabled: false };
    },
  );
};
