// Location queries over HTTP: GET /v1/registrations (filter by realm and user) and one AOR's bindings.

import type { FastifyPluginAsync } from 'fastify';
import type { LocationService } from '../../registrar/location-service.ts';
import { guard, type Authenticator } from '../authenticate.ts';
import type { BindingRecord } from '../../storage/ports.ts';
import { bindingFilter, bindingFilterProperties, type BindingFilterQuery } from '../registration-filters.ts';

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

export const registrationRoutes: FastifyPluginAsync<{ location: LocationService; auth: Authenticator }> = async (app, opts) => {
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
        for await (const [aor, bindings] of location.entries()) {
          const at = aor.lastIndexOf('@');
          const u = aor.slice(0, at);
          const r = aor.slice(at + 1);
          if (wantRealm !== undefined && r !== wantRealm) continue;
          if (user !== undefined && u !== user) continue;
          const kept = only(bindings);
          if (kept.length === 0) continue;
          if (total >= offset && out.length < limit) out.push({ aor, user: u, realm: r, bindings: kept.map((b) => bindingJson(b, now)) });
          total++;
        }
      }
      return { total, offset, limit, registrations: out };
    },
  );
};
