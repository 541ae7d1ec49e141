// Prometheus scrape endpoint.

import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../../metrics.ts';

export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, opts) => {
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(body);
  });
};
