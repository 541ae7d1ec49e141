// Prometheus scrape endpoint. Open without credentials to the configured source networks only (loopback by
// default: a Prometheus on the same host); from anywhere else it takes a Bearer token of an admin (the console's
// charts) or an API key with the metrics.read permission, and answers 401 (403 for other credentials). The figures
// are not secret one by one, but together they show load, user counts and failures as they happen.
//
// The source is request.ip: the peer's address, or the client's from X-Forwarded-For when the HTTP app trusts
// the proxy it came through. A reverse proxy on this host that the app does not trust looks like loopback: do
// not forward /metrics through it (README, Security).

import { BlockList, isIP } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { isSwitchboardError, sbError } from '../../errors.ts';
import { sendCode, sendError } from '../reply-error.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import { isAdmin, principalOf, type Authenticator } from '../authenticate.ts';

export const METRICS_PERMISSION = 'metrics.read';

export interface MetricsRouteOptions {
  metrics: Metrics;
  /** Verifies credentials; without it (tests of the bare route) only `openTo` sources are served. */
  auth?: Authenticator;
  /** CIDRs served without credentials (default: loopback). */
  openTo?: readonly string[];
}

/** A matcher for CIDRs (or bare addresses); IPv4-mapped IPv6 addresses match their IPv4 networks. */
export function networkMatcher(list: readonly string[]): (address: string) => boolean {
  // "none" (an environment variable cannot be empty): credentials always.
  const cidrs = list.filter((c) => c !== 'none');
  if (cidrs.length === 0) return () => false;
  const blocks = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/');
    const family = isIP(net);
    if (family === 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits)) || Number(bits) > (family === 6 ? 128 : 32)) {
      throw sbError('CONFIG_ERR_INVALID', `--metrics-open-to: ${JSON.stringify(cidr)} is not an address or CIDR`);
    }
    if (bits === undefined) blocks.addAddress(net, family === 6 ? 'ipv6' : 'ipv4');
    else blocks.addSubnet(net, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
  }
  return (address) => {
    const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(a);
    return family !== 0 && blocks.check(a, family === 6 ? 'ipv6' : 'ipv4');
  };
}

export const metricsRoutes: FastifyPluginAsync<MetricsRouteOptions> = async (app, opts) => {
  const open = networkMatcher(opts.openTo ?? ['127.0.0.0/8', '::1/128']);
  const allowed = async (req: FastifyRequest, reply: FastifyReply) => {
    if (open(req.ip)) return;
    const p = opts.auth ? await principalOf(req, opts.auth) : null;
    if (!p) {
      reply.header('WWW-Authenticate', 'Bearer realm="switchboard"');
      req.log.info({ from: req.ip }, '/metrics refused: no credentials from a source not in --metrics-open-to');
      throw sbError('HTTP_ERR_UNAUTHORIZED', `/metrics needs an admin token or an API key with ${METRICS_PERMISSION} from ${req.ip}`);
    }
    if (isAdmin(p) || p.scopes.includes(METRICS_PERMISSION)) return;
    throw sbError('HTTP_ERR_FORBIDDEN', `needs the admin role or the ${METRICS_PERMISSION} permission`);
  };
  app.get('/metrics', { preHandler: allowed }, async (_req, reply) => {
    const body = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(body);
  });
};

/** The listener of --metrics-listen: /metrics alone, errors in the HTTP API's JSON shape. */
export function buildMetricsApp(o: MetricsRouteOptions & { log: Logger }): FastifyInstance {
  const app = Fastify({ loggerInstance: o.log.child({ component: 'metrics-http' }) as FastifyBaseLogger, disableRequestLogging: true });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isSwitchboardError(err) && err.http) return sendError(reply, err);
    req.log.error({ err }, '/metrics failed');
    return sendCode(reply, 'HTTP_ERR_INTERNAL');
  });
  app.setNotFoundHandler((req, reply) => {
    sendCode(reply, 'HTTP_ERR_NOT_FOUND', `no route ${req.method} ${req.url}`);
  });
  app.decorateRequest('principal', null);
  app.register(metricsRoutes, o);
  return app;
}

/** Splits --metrics-listen "host:port" ("[::1]:9100" for IPv6). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw sbError('CONFIG_ERR_INVALID', `--metrics-listen: expected host:port, got ${JSON.stringify(value)}`);
  return { host: m[1] ?? m[2], port };
}
