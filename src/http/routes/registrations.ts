// Location queries over HTTP: GET /v1/registrations (filter by realm and user) and one AOR's bindings; and
// POST /v1/registrations/{aor}/check-sync, which asks the AOR's phones to fetch their configuration again.

import type { FastifyPluginAsync } from 'fastify';
import type { CheckSyncReport } from '../../registrar/check-sync.ts';
import type { LocationService } from '../../registrar/location-service.ts';
import { guard, type Authenticator } from '../authenticate.ts';
import type { BindingRecord } from '../../storage/ports.ts';
import { bindingFilter, bindingFilterProperties, type BindingFilterQuery } from '../registration-filters.ts';
import { errorSchema } from '../schemas.ts';

export function bindingJson(b: BindingRecord, now: number) {
  return {
    contact: b.contact,
    params: b.params,
    expires: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
    expiresAt: new Date(b.expiresAt).toISOString(),
    q: b.q,
    callId: b.callId,
    cseq: b.cseq,
    path: b.path,
    instanceId: b.instanceId,
    regId: b.regId,
    transport: b.transport,
    source: { address: b.sourceAddress, port: b.sourcePort },
    local: { address: b.localAddress, port: b.localPort },
    connectionId: b.connectionId,
    node: b.node,
    userAgent: b.userAgent,
    registeredAt: new Date(b.createdAt).toISOString(),
    updatedAt: new Date(b.updatedAt).toISOString(),
  };
}

interface Query extends BindingFilterQuery {
  realm?: string;
  user?: string;
  limit?: number;
  offset?: number;
}

export interface RegistrationRoutesOptions {
  location: LocationService;
  auth: Authenticator;
  /** Sends check-sync to every live binding of an AOR (registrar/check-sync.ts); without it the route is absent. */
  checkSync?: (aor: string) => Promise<CheckSyncReport>;
}

const checkSyncResult = {
  type: 'object',
  required: ['key', 'contact', 'transport', 'node'],
  properties: {
    key: { type: 'string', description: 'The binding (the +sip.instance and reg-id of an RFC 5626 flow, else the contact URI)' },
    contact: { type: 'string' },
    transport: { type: 'string' },
    node: { type: 'string', description: 'The node holding the flow the NOTIFY went over' },
    status: { type: 'integer', description: 'The final SIP response of the phone (absent when none came)' },
    reason: { type: 'string' },
    error: {
      type: 'object',
      description: 'Why no response came: timeout, transport failure, connection gone (absent when the phone answered)',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

export const registrationRoutes: FastifyPluginAsync<RegistrationRoutesOptions> = async (app, opts) => {
  const { location } = opts;
  app.get<{ Querystring: Query }>(
    '/v1/registrations',
    {
      // Contact addresses of every phone: admins, or API keys holding registrations.read.
      preHandler: guard(opts.auth, { permission: 'registrations.read' }),
      schema: {
        tags: ['registrations'],
        summary: 'Current bindings, by address of record, filtered by realm and user',
        security: [{ bearer: [] }],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            realm: { type: 'string', maxLength: 253 },
            user: { type: 'string', maxLength: 256 },
            limit: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
            offset: { type: 'integer', minimum: 0, default: 0 },
            ...bindingFilterProperties,
          },
        },
      },
    },
    async (req) => {
      const { realm, user } = req.query;
      const limit = req.query.limit ?? 1000;
      const offset = req.query.offset ?? 0;
      const now = Date.now();
      const wantRealm = realm?.toLowerCase();
      const keep = bindingFilter(req.query, now);
      const only = (list: BindingRecord[]) => (keep ? list.filter(keep) : list);
      const out: Array<{ aor: string; user: string; realm: string; bindings: ReturnType<typeof bindingJson>[] }> = [];
      let total = 0;
      if (user !== undefined && wantRealm !== undefined) {
        const aor = `${user}@${wantRealm}`;
        const bindings = only(await location.lookup(aor));
        if (bindings.length) {
          total = 1;
          if (offset === 0) out.push({ aor, user, realm: wantRealm, bindings: bindings.map((b) => bindingJson(b, now)) });
        }
      } else {
        // In address-of-record order, so that pages (offset, limit) neither overlap nor skip: a shared index yields
        // its AORs in no particular order, and not in the same one twice.
        const matched: Array<{ aor: string; user: string; realm: string; bindings: BindingRecord[] }> = [];
        for await (const [aor, bindings] of location.entries()) {
          const at = aor.lastIndexOf('@');
          const u = aor.slice(0, at);
          const r = aor.slice(at + 1);
          if (wantRealm !== undefined && r !== wantRealm) continue;
          if (user !== undefined && u !== user) continue;
          const kept = only(bindings);
          if (kept.length === 0) continue;
          matched.push({ aor, user: u, realm: r, bindings: kept });
        }
        matched.sort((x, y) => (x.aor < y.aor ? -1 : x.aor > y.aor ? 1 : 0));
        total = matched.length;
        for (const m of matched.slice(offset, offset + limit)) out.push({ ...m, bindings: m.bindings.map((b) => bindingJson(b, now)) });
      }
      return { total, offset, limit, registrations: out };
    },
  );

  const checkSync = opts.checkSync;
  if (checkSync) {
    app.post<{ Params: { aor: string } }>(
      '/v1/registrations/:aor/check-sync',
      {
        // Makes phones re-provision and possibly reboot: admins, or API keys holding registrations.write.
        preHandler: guard(opts.auth, { permission: 'registrations.write' }),
        schema: {
          tags: ['registrations'],
          summary: 'Ask every registered device of an address of record to fetch its configuration again (NOTIFY Event: check-sync)',
          description:
            'Sends an out-of-dialog NOTIFY with `Event: check-sync` (honoured by Polycom, Yealink, Cisco, Grandstream and Snom phones: ' +
            're-provision, and on some settings reboot) to every live binding, over the connection its REGISTER came in on, through ' +
            'the node holding it. Answers once every device has answered or failed (up to about 34 s for one that does not answer).',
          security: [{ bearer: [] }],
          params: {
            type: 'object',
            required: ['aor'],
            properties: { aor: { type: 'string', minLength: 1, maxLength: 512, description: 'user@domain' } },
          },
          response: {
            200: {
              type: 'object',
              required: ['aor', 'results'],
              properties: { aor: { type: 'string' }, results: { type: 'array', items: checkSyncResult } },
            },
            400: errorSchema,
            401: errorSchema,
            403: errorSchema,
            404: errorSchema,
          },
        },
      },
      async (req) => checkSync(req.params.aor),
    );
  }
};
