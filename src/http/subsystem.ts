// HTTP as one subsystem (lifecycle.ts): the API, console and /metrics app on --http-listen, and /metrics on its own
// address with --metrics-listen. Started last (the console shows the SIP listeners), stopped first.

import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Subsystem } from '../lifecycle.ts';
import type { ListenerAddress } from '../sip/transport/types.ts';
import { buildHttpApp, type HttpDeps } from './app.ts';
import { buildMetricsApp, networkMatcher, parseListen } from './routes/metrics.ts';
import { linkedAccountRoutes, type LinkedAccountRoutesOptions } from './routes/linked-accounts.ts';
import { messageRoutes, type MessageRoutesOptions } from './routes/messages.ts';
import { sipPasswordRoutes, type SipPasswordRoutesOptions } from './routes/sip-passwords.ts';

export interface HttpOptions extends Omit<HttpDeps, 'console' | 'metricsOpenTo' | 'loginRateLimit' | 'trustProxy' | 'timeouts'> {
  config: Config;
  /** Workers on one host share the ports (SO_REUSEPORT). */
  reusePort: boolean;
  /** The SIP listeners (for the console's softphone), known once the SIP stack has started. */
  sip: () => ListenerAddress[];
  bus: NonNullable<HttpDeps['console']>['bus'];
  /** The operator's opt-in to reversible SIP passwords (routes/sip-passwords.ts). */
  sipPasswords: Omit<SipPasswordRoutesOptions, 'auth'>;
  /** App sessions and the inbox (routes/messages.ts). */
  messaging?: Omit<MessageRoutesOptions, 'auth' | 'realms' | 'maxBody' | 'rateLimitPerMinute' | 'loginRateLimitPerMinute' | 'log'>;
  /** The IM bridge's linked accounts and vault (routes/linked-accounts.ts). */
  bridge?: Omit<LinkedAccountRoutesOptions, 'rateLimitPerMinute'>;
}

export interface HttpSubsystem extends Subsystem {
  /** The API's address (after start). */
  readonly address: { address: string; port: number };
}

/** Bad /metrics settings fail the start (at composition), not the first request. */
export function checkHttpConfig(config: Config): void {
  networkMatcher(config.metrics.openTo);
  if (config.metrics.listen) parseListen(config.metrics.listen);
}

export function createHttp(o: HttpOptions): HttpSubsystem {
  const { config, log } = o;
  const metricsListen = config.metrics.listen ? parseListen(config.metrics.listen) : null;
  const reuse = o.reusePort ? { reusePort: true } : {};
  let http: FastifyInstance | null = null;
  let metricsHttp: FastifyInstance | null = null;
  const address = { address: '', port: 0 };
  return {
    name: 'http',
    address,
    async start() {
      const { config: _config, reusePort: _reusePort, sip, bus, sipPasswords, messaging, bridge, ...deps } = o;
      const app = buildHttpApp({
        ...deps,
        loginRateLimit: config.http.loginRateLimit,
        trustProxy: config.http.trustProxy,
        timeouts: { requestMs: config.http.requestTimeout * 1000, headersMs: config.http.headersTimeout * 1000, keepAliveMs: config.http.keepAliveTimeout * 1000 },
        console: { bus, sip: sip(), realms: config.realms },
        // With a listener of its own, /metrics on the HTTP port takes credentials only (the admin console's charts).
        metricsOpenTo: metricsListen ? [] : config.metrics.openTo,
      });
      http = app;
      app.register(sipPasswordRoutes, { ...sipPasswords, auth: { tokens: deps.identity.tokens, apiKeys: deps.identity.apiKeys } });
      if (messaging) {
        app.register(messageRoutes, {
          ...messaging,
          auth: { tokens: deps.identity.tokens, apiKeys: deps.identity.apiKeys },
          realms: config.realms,
          maxBody: config.messaging.maxBody,
          rateLimitPerMinute: config.messaging.rateLimit,
          loginRateLimitPerMinute: config.http.loginRateLimit,
          log: log.child({ component: 'messaging' }),
        });
      }
      if (bridge) app.register(linkedAccountRoutes, { ...bridge, rateLimitPerMinute: config.http.loginRateLimit });
      await app.listen({ host: config.http.host, port: config.http.port, ...reuse });
      Object.assign(address, app.server.address() as { address: string; port: number });
      if (metricsListen) {
        metricsHttp = buildMetricsApp({ metrics: deps.metrics, auth: { tokens: deps.identity.tokens, apiKeys: deps.identity.apiKeys }, openTo: config.metrics.openTo, log });
        await metricsHttp.listen({ host: metricsListen.host, port: metricsListen.port, ...reuse });
        log.info({ metrics: metricsHttp.server.address(), openTo: config.metrics.openTo }, '/metrics listening on its own address');
      }
    },
    async stop() {
      await http?.close();
      await metricsHttp?.close();
    },
  };
}
