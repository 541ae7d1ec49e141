// Liveness and readiness for load balancers and orchestrators.

import type { FastifyPluginAsync } from 'fastify';

export const healthRoutes: FastifyPluginAsync<{ ready: () => boolean }> = async (app, opts) => {
  app.get('/healthz', async (_req, reply) => {
    const ready = opts.ready();
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ok' : 'starting', uptime: Math.round(process.uptime()) });
  });
};
