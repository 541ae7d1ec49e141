// The HTTP application (Fastify): one plugin per domain under routes/, schemas at the edge (OpenAPI at /docs),
// and JSON error bodies in one shape ({"error":{"code","message"}}) for every failure, including validation,
// rate limits and unknown routes.

import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { isSwitchboardError, sbError } from '../errors.ts';
import { sendCode, sendError, sendForeignError } from './reply-error.ts';
import type { AccountService } from '../identity/account-service.ts';
import type { ApiKeys } from '../identity/api-keys.ts';
import type { KeyRing } from '../identity/keys.ts';
import type { RefreshTokens } from '../identity/refresh-tokens.ts';
import type { TokenService } from '../identity/tokens.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { CheckSyncReport } from '../registrar/check-sync.ts';
import type { LocationService } from '../registrar/location-service.ts';
import type { PresenceService } from '../presence/presence-service.ts';
import type { Account, AccountAdmin, AccountStore } from '../storage/ports.ts';
import type { Authenticator } from './authenticate.ts';
import { authRoutes } from './routes/auth.ts';
import { healthRoutes } from './routes/health.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { phoneRoutes, type PhoneRoutesOptions } from './routes/phone-common.ts';
import { presenceRoutes } from './routes/presence.ts';
import { registrationRoutes } from './routes/registrations.ts';
import { userRoutes } from './routes/users.ts';
import { accountDeviceRoutes } from './routes/account-devices.ts';
import { consoleRoutes } from './routes/console.ts';
import { eventRoutes } from './routes/events.ts';
import type { EventBus } from '../bus/event-bus.ts';
import type { ListenerAddress } from '../sip/transport/types.ts';

export interface IdentityDeps {
  accounts: AccountService;
  store: AccountStore & AccountAdmin;
  tokens: TokenService;
  refresh: RefreshTokens;
  keys: KeyRing;
  apiKeys: ApiKeys;
}

export interface HttpDeps {
  log: Logger;
  metrics: Metrics;
  location: LocationService;
  identity: IdentityDeps;
  loginRateLimit: number;
  /** Addresses/CIDRs of reverse proxies whose X-Forwarded-For is believed (--http-trust-proxy); none by default. */
  trustProxy?: string[];
  /** Readiness: false while starting or shutting down. */
  ready: () => boolean;
  onAccountDeleted?: (account: Account) => Promise<void> | void;
  onAccountStatusChanged?: (account: Account) => Promise<void> | void;
  version: string;
  /** Presence state, watchers and watcher policy per account (routes/presence.ts). */
  presence?: PresenceService;
  /** Phone sign-up: verification sessions, registration, devices, registration lock (routes/phone-common.ts). */
  phone?: PhoneRoutesOptions;
  /** The browser pages (/console/, /phone/) and the live event stream (/v1/events): routes/console.ts, routes/events.ts. */
  console?: { bus: EventBus; sip: ListenerAddress[]; realms: string[] };
  /** Who may scrape /metrics without credentials (routes/metrics.ts); default loopback. */
  metricsOpenTo?: readonly string[];
  /** NOTIFY check-sync to an AOR's devices (registrar/check-sync.ts): POST /v1/registrations/{aor}/check-sync. */
  checkSync?: (aor: string) => Promise<CheckSyncReport>;
  /** Slow-client deadlines in ms (--http-request-timeout, --http-headers-timeout, --http-keep-alive-timeout). */
  timeouts?: { requestMs: number; headersMs: number; keepAliveMs: number };
}

/**
 * Fastify's defaults leave requestTimeout at 0 (a body trickled a byte a minute holds its connection forever) and
 * Node checks headersTimeout only every 30 s; these close slow clients with 408 near their deadline.
 */
function timeoutOptions(t: HttpDeps['timeouts']) {
  if (!t) return {};
  return {
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.keepAliveMs,
    http: { headersTimeout: t.headersMs, connectionsCheckingInterval: Math.max(250, Math.min(5000, t.headersMs / 4)) },
  };
}

export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    // X-Forwarded-For is believed only from the configured proxies (--http-trust-proxy); from anyone else req.ip is
    // the peer, so a client cannot pick the address its rate limits and lockouts are counted under.
    trustProxy: deps.trustProxy && deps.trustProxy.length > 0 ? deps.trustProxy : false,
    // Unknown query or body properties are errors, not silently dropped: a misspelt filter must not list all.
    ajv: { customOptions: { removeAdditional: false } },
    // Per-request lines would drown the log at scrape and API rates; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    ...timeoutOptions(deps.timeouts),
  });
  app.decorateRequest('principal', null);
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isSwitchboardError(err) && err.http) return sendError(reply, err);
    if (err.validation) return sendCode(reply, 'HTTP_ERR_VALIDATION', err.message);
    if (!(err.statusCode && err.statusCode >= 400 && err.statusCode < 500)) req.log.error({ err }, 'HTTP handler failed');
    return sendForeignError(reply, err);
  });
  app.setNotFoundHandler((req, reply) => {
    sendCode(reply, 'HTTP_ERR_NOT_FOUND', `no route ${req.method} ${req.url}`);
  });

  app.register(swagger, {
    openapi: {
      info: { title: 'Switchboard', version: deps.version, description: 'Registration, authentication and presence server: HTTP API' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An access token from /auth/login, or an API key (sbk_…)' },
          session: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'An app session from POST /v1/sessions: Session <kid>:<key>' },
        },
      },
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
  app.register(rateLimit, {
    global: false,
    // Thrown into the error handler below, like every other failure, so the body has the one shape.
    errorResponseBuilder: (_req, ctx) =>
      sbError('HTTP_ERR_RATE_LIMITED', `too many requests; retry after ${Math.ceil(ctx.ttl / 1000)} s`),
  });

  const { identity } = deps;
  const auth: Authenticator = { tokens: identity.tokens, apiKeys: identity.apiKeys };
  app.register(healthRoutes, { ready: deps.ready });
  app.register(metricsRoutes, { metrics: deps.metrics, auth, openTo: deps.metricsOpenTo });
  app.register(registrationRoutes, { location: deps.location, auth, checkSync: deps.checkSync });
  app.register(authRoutes, {
    accounts: identity.accounts,
    accountStore: identity.store,
    tokens: identity.tokens,
    refresh: identity.refresh,
    keys: identity.keys,
    auth,
    rateLimitPerMinute: deps.loginRateLimit,
  });
  app.register(userRoutes, {
    accounts: identity.accounts,
    store: identity.store,
    refresh: identity.refresh,
    apiKeys: identity.apiKeys,
    auth,
    onDeleted: deps.onAccountDeleted,
    onStatusChanged: deps.onAccountStatusChanged,
    passwordRateLimitPerMinute: deps.loginRateLimit,
  });
  if (deps.presence) app.register(presenceRoutes, { presence: deps.presence, accounts: identity.store, auth });
  if (deps.phone) app.register(phoneRoutes, deps.phone);
  if (deps.phone) app.register(accountDeviceRoutes, { devices: deps.phone.devices, auth });
  if (deps.console) {
    app.register(consoleRoutes, { sip: deps.console.sip, realms: deps.console.realms, version: deps.version });
    app.register(eventRoutes, { bus: deps.console.bus, auth });
  }
  return app;
}
