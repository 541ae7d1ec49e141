// GET /v1/calls: the calls this node proxies that are ringing or answered now (proxy/accounting.ts), for the admin
// console's live calls and for operators. Admins, or API keys holding events.read: whoever may read the live feed
// sees these calls' events there already. Caller and callee are account addresses; nothing secret is listed.

import type { FastifyPluginAsync } from 'fastify';
import type { LiveCall } from '../../proxy/accounting.ts';
import { guard, type Authenticator } from '../authenticate.ts';
import { errorSchema } from '../schemas.ts';

export interface CallRoutesOptions {
  auth: Authenticator;
  /** This node's live calls. */
  live: () => LiveCall[];
  /** This node's id (a cluster's nodes each list their own calls). */
  node: string;
}

/** Most calls one answer lists (the newest); `total` says how many there are. */
const MAX_LISTED = 1000;

const callSchema = {
  type: 'object',
  required: ['callId', 'caller', 'callee', 'state', 'startedAt', 'answeredAt', 'branches'],
  properties: {
    callId: { type: 'string' },
    caller: { type: 'string', description: 'The From address (user@domain)' },
    callee: { type: 'string', description: 'The user called (user@realm), or the Request-URI for calls to other domains' },
    state: { type: 'string', enum: ['ringing', 'answered'] },
    startedAt: { type: 'string', format: 'date-time' },
    answeredAt: { type: ['string', 'null'], format: 'date-time' },
    branches: { type: 'integer', description: 'Devices (or targets) rung at first' },
  },
} as const;

export const callRoutes: FastifyPluginAsync<CallRoutesOptions> = async (app, o) => {
  app.get(
    '/v1/calls',
    {
      preHandler: guard(o.auth, { permission: 'events.read' }),
      schema: {
        tags: ['calls'],
        summary: "Calls ringing or answered now on this node (admin, or an API key with events.read)",
        security: [{ bearer: [] }],
        response: {
          200: {
            type: 'object',
            required: ['node', 'total', 'calls'],
            properties: { node: { type: 'string' }, total: { type: 'integer' }, calls: { type: 'array', items: callSchema } },
          },
          401: errorSchema,
          403: errorSchema,
        },
      },
    },
    async (_req, reply) => {
      const all = o.live();
      const calls = all.slice(-MAX_LISTED).map((c) => ({
        callId: c.callId,
        caller: c.caller,
        callee: c.callee,
        state: c.state,
        startedAt: new Date(c.startedAt).toISOString(),
        answeredAt: c.answeredAt === null ? null : new Date(c.answeredAt).toISOString(),
        branches: c.branches,
      }));
      reply.header('cache-control', 'no-store');
      return { node: o.node, total: all.length, calls };
    },
  );
};
