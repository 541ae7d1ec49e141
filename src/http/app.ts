// The HTTP application (Fastify): one plugin per domain under routes/, JSON error bodies in one shape
// ({"error":{"code","message"}}) for every failure, including validation and unknown routes.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { isSwitchboardError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { LocationService } from '../registrar/location-service.ts';
import type { Metrics } from '../metrics.ts';
import { healthRoutes } from './routes/health.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { registrationRoutes } from './routes/registrations.ts';

export interface HttpDeps {
  log: Logger;
  metrics: Metrics;
  location: LocationService;
  /** Readiness: false while starting or shutting down. */
  ready: () => boolean;
}

export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    trustProxy: false,
    // Unknown query or body properties are errors, not silently dropped: a misspelt filter must not list all.
    ajv: { customOptions: { removeAdditional: false } },
    // Per-request lines would drown the log at scrape and API rates; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isSwitchboardError(err) && err.http) {
      return reply.status(err.http).send({ error: { code: err.code, message: err.message } });
    }
    if (err.validation) {
      return reply.status(400).send({ error: { code: 'HTTP_ERR_VALIDATION', message: err.message } });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'HTTP handler failed');
    return reply.status(status).send({ error: { code: err.code ?? 'HTTP_ERR_INTERNAL', message: status === 500 ? 'internal error' : err.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({ error: { code: 'HTTP_ERR_NOT_FOUND', message: `no route ${req.method} ${req.url}` } });
  });
  app.register(healthRoutes, { ready: deps.ready });
  app.register(metricsRoutes, { metrics: deps.metrics });
  app.register(registrationRoutes, { location: deps.location });
  return app;
}
