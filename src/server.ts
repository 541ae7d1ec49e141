// The composition root: the only place that picks adapters, wires services to ports, opens listeners and shuts
// everything down in order. Nothing else imports an adapter.

import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { InProcessBus } from './bus/in-process.ts';
import { AmqpBus } from './bus/amqp.ts';
import { KAZOO_EXCHANGES, SWITCHBOARD_EVENTS } from './bus/kazoo/exchanges.ts';
import { KazooDirectory, kazooServerId, registrarOf } from './registrar/kazoo-directory.ts';
import type { BindingChange } from './registrar/location-service.ts';
import { ReversibleSipPasswords, REVERSIBLE_SIP_PASSWORD_KEY } from './identity/reversible-passwords.ts';
import { sipPasswordRoutes } from './http/routes/sip-passwords.ts';
import type { EventBus } from './bus/event-bus.ts';
import type { Config } from './config.ts';
import { CachedCredentialStore, shareInvalidations } from './identity/credential-cache.ts';
import { CredentialValidity } from './identity/credential-validity.ts';
import { SipAuthenticator } from './identity/sip-authenticator.ts';
import { Lockout } from './identity/lockout.ts';
import { AccountService } from './identity/account-service.ts';
import { ApiKeys } from './identity/api-keys.ts';
import { KeyRing } from './identity/keys.ts';
import { PasswordHasher } from './identity/passwords.ts';
import { RefreshTokens } from './identity/refresh-tokens.ts';
import { Sealer } from './identity/seal.ts';
import { TokenService } from './identity/tokens.ts';
import { buildHttpApp } from './http/app.ts';
import { buildMetricsApp, networkMatcher, parseListen } from './http/routes/metrics.ts';
import { createLogger, redactUrl, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { LocationService } from './registrar/location-service.ts';
import { Registrar } from './registrar/registrar.ts';
import { PresenceService } from './presence/presence-service.ts';
import { followReplicas, replicatingStore } from './presence/replication.ts';
import { parseSubscribeRate, subscribeLimiter } from './presence/subscribe-rate.ts';
import { openCache, openDurable, type Accounts } from './adapters.ts';
import { workerNodeId } from './workers.ts';
import { FlowRelay } from './bus/flow-relay.ts';
import { BUS_MAC_KEY, BusAuthenticator } from './bus/internal-auth.ts';
import { checkSyncService } from './registrar/check-sync.ts';
import path from 'node:path';
import { deriveKey, loadMasterKey } from './secrets.ts';
import { checkFileModes, secretFiles } from './file-modes.ts';
import { loadTlsFiles, tlsContextOptions } from './certificates.ts';
import { NonceIssuer } from './sip/digest.ts';
import { createProxy, type Proxy } from './proxy/proxy.ts';
import { loadRoutingModule } from './proxy/routing-hook.ts';
import { SipEndpoint } from './sip/endpoint.ts';
import { TransportLayer } from './sip/transport/layer.ts';
import { NetworkSet } from './sip/transport/networks.ts';
import type { ListenerAddress } from './sip/transport/types.ts';
import { createRateLimiters, parseLimiterSpecs } from './identity/rate-limiter.ts';
import { createPhoneServices, type PhoneServices } from './identity/phone/index.ts';
import { LocalProvider } from './identity/phone/providers/local.ts';
import { SiteverifyCaptcha } from './identity/phone/providers/siteverify.ts';
import { TwilioCodeSender } from './identity/phone/providers/twilio.ts';

export interface RunningServer {
  config: Config;
  accountService: AccountService;
  tokens: TokenService;
  keys: KeyRing;
  log: Logger;
  sip: ListenerAddress[];
  http: { address: string; port: number };
  location: LocationService;
  accounts: Accounts;
  credentials: CachedCredentialStore;
  bus: EventBus;
  /** The Kazoo directory (with an AMQP bus), or null. */
  kazoo: KazooDirectory | null;
  sipPasswords: ReversibleSipPasswords;
  metrics: Metrics;
  presence: PresenceService;
  phone: PhoneServices;
  /** The SIP endpoint and its transports (benchmarks and tests drive them directly). */
  endpoint: SipEndpoint;
  transports: TransportLayer;
  /** Adds a call routing hook (proxy/routing-hook.ts): the library form of --routing-module. */
  onRoute: Proxy['onRoute'];
  stop(): Promise<void>;
}

export const SERVER_VERSION = '0.1.0';

export { databaseFile } from './adapters.ts';

export interface StartOptions {
  log?: Logger;
  /** Clock of the phone sign-up services (tests move it). */
  now?: () => number;
  /** This process's number under --workers (workers.ts): its node id gets -w<n> and it shares the ports. */
  worker?: number | null;
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const worker = opts.worker ?? null;
  const node = worker === null ? (config.cluster.nodeId ?? hostname()) : workerNodeId(config, worker);
  const log = (opts.log ?? createLogger(config.logLevel)).child(worker === null ? {} : { node });
  const phoneNow = opts.now ?? Date.now;
  let ready = false;
  // Secrets on disk private to us: refused (or warned about) before anything reads them.
  const masterKeyFile = !process.env.SWITCHBOARD_MASTER_KEY;
  checkFileModes(config.dataDir, secretFiles(config.dataDir, { masterKeyFile, sqlite: config.storage.database === 'sqlite' }), config.fileModeCheck, log);
  // Bad /metrics and SUBSCRIBE-rate settings fail the start, not the first request.
  networkMatcher(config.metrics.openTo);
  const subscribeRate = parseSubscribeRate(config.presence.subscribeRate);
  const metricsListen = config.metrics.listen ? parseListen(config.metrics.listen) : null;

  // Storage: durable (SQLite file, or PostgreSQL shared by every node) and short-lived (in-process, or Redis with
  // the shared location index).
  const durable = await openDurable(config);
  const shared = openCache(config, phoneNow, log.child({ component: 'cache' }));
  log.info({ database: durable.describe, cache: shared.describe, node }, 'storage open');
  const accounts = durable.accounts;
  const locationStore = durable.location;
  const credentials = new CachedCredentialStore(accounts, config.storage.credentialCacheTtl, { maxBytes: config.storage.credentialCacheBytes });
  const failures = shared.failures;
  // One lockout for SIP Digest, HTTP login and device Basic authentication (lockout.ts).
  const lockout = new Lockout({ failures, policy: config.auth, log: log.child({ component: 'auth' }) });
  // With an AMQP URL the bus is RabbitMQ (events shared between nodes, the Kazoo directory on Kazoo's exchanges);
  // this process's queue is its Kazoo Server-ID.
  const kazooNode = config.kazoo.node ?? `switchboard@${node}`;
  // Every node of a deployment derives the same tag from the master key it shares. It names the queue the deployment's
  // nodes share for Kazoo's authn requests (another deployment on the broker, with other accounts, has its own and
  // answers too, deferring what it does not know), and where the nodes share the location index they are one
  // registrar to Kazoo: their Server-IDs carry the tag (kazoo-directory.ts).
  const master = loadMasterKey(config.dataDir);
  const deployment = deriveKey(master, 'kazoo-deployment').toString('hex').slice(0, 12);
  const kazooCluster = shared.locationIndex.shared ? deployment : null;
  const serverId = kazooServerId(kazooNode, kazooCluster);
  const amqp =
    config.bus.url === 'memory'
      ? null
      : new AmqpBus({
          url: config.bus.url, log: log.child({ component: 'bus' }), events: SWITCHBOARD_EVENTS, exchanges: KAZOO_EXCHANGES, nodeQueue: serverId, outboxLimit: config.bus.outboxLimit,
          authenticator: new BusAuthenticator(deriveKey(master, BUS_MAC_KEY)), requireAuthentication: config.bus.authenticate,
        });
  const bus: EventBus = amqp ?? new InProcessBus(log.child({ component: 'bus' }));
  amqp?.start();
  const invalidate = shareInvalidations(credentials, bus, node);
  // Binding changes become reg_success once the directory runs; those of the start-up (expired while down) wait.
  let kazoo: KazooDirectory | null = null;
  const kazooPending: BindingChange[] = [];

  // Location service, primed before any listener opens.
  let metrics: Metrics | null = null;
  let transports: TransportLayer | null = null;
  const location = new LocationService({
    store: locationStore,
    index: shared.locationIndex,
    node,
    bus,
    heartbeatMs: config.cluster.heartbeat * 1000,
    log: log.child({ component: 'location' }),
    onChange: (changes) => {
      for (const c of changes) {
        metrics?.bindingChanges.inc(c.event);
        // A binding on a TCP connection keeps that connection open for as long as the binding lives.
        const b = c.binding;
        if (b.connectionId !== null && (c.event === 'added' || c.event === 'refreshed')) transports?.keepConnection(b.connectionId, b.expiresAt);
      }
      if (kazoo) kazoo.onBindingChanges(changes);
      else if (amqp && config.kazoo.directory === 'on') kazooPending.push(...changes);
    },
  });
  const primed = await location.prime();
  log.info({ bindings: primed.loaded, expiredWhileDown: primed.expired, connectionsGone: primed.orphaned }, 'location service primed from the store');

  // Identity: accounts, password hashing, signing keys (sealed under the master key), tokens, API keys.
  const tokenStore = durable.tokens;
  const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
  const keys = new KeyRing({
    store: tokenStore,
    sealer: new Sealer(deriveKey(master, 'jwt-signing-keys'), 'jwt-private-key'),
    alg: config.tokens.algorithm,
    tokenTtlSeconds: config.tokens.accessTtl,
  });
  await keys.load();
  const tokens = new TokenService(
    {
      issuer: config.tokens.issuer,
      audience: config.tokens.audience,
      accessTtlSeconds: config.tokens.accessTtl,
      jwksUrl: config.tokens.jwksUrl,
      jwksCooldownSeconds: config.tokens.jwksCooldown,
      // Asymmetric algorithms only: never "none", never HMAC (a public key must not become an HMAC secret).
      algorithms: config.tokens.jwksUrl ? ['EdDSA', 'ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] : ['EdDSA', 'ES256'],
      remote: config.tokens.jwksUrl
        ? {
            usernameClaim: config.tokens.jwksUsernameClaim!,
            realm: config.tokens.jwksRealm?.toLowerCase() ?? null,
            realmClaim: config.tokens.jwksRealmClaim,
            realms: config.realms,
            rolesClaim: config.tokens.jwksRolesClaim,
            roleMap: Object.fromEntries(config.tokens.jwksRoleMap.map((m) => [m.slice(0, m.lastIndexOf('=')), m.slice(m.lastIndexOf('=') + 1)])),
          }
        : null,
    },
    keys,
  );
  const refresh = new RefreshTokens(tokenStore, config.tokens.refreshTtl);
  const apiKeys = new ApiKeys(tokenStore);
  // Whether an account still accepts its tokens and API keys (disabled, deleted, revoked since): checked as each is
  // accepted, cached, emptied on every node by the credential-change events.
  const validity = new CredentialValidity(accounts, config.storage.credentialCacheTtl);
  const stopValidity = validity.follow(bus);
  apiKeys.acceptWith((key) => validity.account(key.accountId, key.createdAt));
  const accountService = new AccountService({
    accounts,
    credentials: accounts,
    invalidateCredentials: (authUsers) => invalidate.users(authUsers),
    hasher,
    failures,
    lockout,
    policy: config.auth,
    defaultRealm: config.realms[0],
    log: log.child({ component: 'identity' }),
    // An account opted into a reversible SIP password gets the new one sealed too, so switches never see a stale one.
    onPasswordChanged: async (account, password) => {
      if (await sipPasswords.isEnabled(account.id)) await sipPasswords.enable(account.id, password);
    },
  });

  // Reversible SIP passwords (operator opt-in per account, sealed), and the Kazoo directory over AMQP.
  const sipPasswords = new ReversibleSipPasswords({
    store: durable.sealedPasswords,
    key: deriveKey(master, REVERSIBLE_SIP_PASSWORD_KEY),
    cacheTtlSeconds: config.storage.credentialCacheTtl,
  });
  if (amqp && config.kazoo.directory === 'on') {
    kazoo = new KazooDirectory({
      bus,
      credentials,
      passwords: sipPasswords,
      location,
      sender: { appName: 'switchboard', appVersion: SERVER_VERSION, node: kazooNode, serverId },
      expiresDeviation: config.kazoo.expiresDeviation,
      foreignRegistrations: config.kazoo.foreignRegistrations !== 'off',
      ownsAor: config.kazoo.foreignRegistrations === 'all' ? undefined : registrarOf(config.realms, accounts),
      cluster: kazooCluster,
      authnGroup: `switchboard.${deployment}.authn`,
      log: log.child({ component: 'kazoo' }),
    });
    kazoo.start();
    kazoo.onBindingChanges(kazooPending.splice(0));
  }
  if (amqp) {
    const up = await amqp.ready(5000);
    log[up ? 'info' : 'warn']({ bus: redactUrl(config.bus.url), serverId, kazoo: kazoo !== null, connected: up }, up ? 'AMQP bus ready' : 'AMQP broker not reachable yet; starting anyway (events wait in the outbox)');
  }

  // Phone sign-up: sessions and rate-limit buckets in the cache (in-process), phone accounts in SQLite, codes and
  // captchas through the configured providers (by default the local one, which only logs: not for production).
  const cache = shared.cache;
  const localProvider = new LocalProvider(
    config.phone.codeFile ? path.resolve(config.phone.codeFile) : path.join(config.dataDir, 'verification-codes.log'),
    log.child({ component: 'phone-provider' }),
    phoneNow,
  );
  const providerTimeoutMs = config.phone.providerTimeout * 1000;
  const { twilioUrl, twilioAccountSid, twilioAuthToken, twilioFrom, captchaUrl, captchaSecret, captchaSiteKey } = config.phone;
  const codeSender =
    config.phone.codeProvider === 'twilio'
      ? new TwilioCodeSender({ baseUrl: twilioUrl, accountSid: twilioAccountSid!, authToken: twilioAuthToken!, from: twilioFrom!, timeoutMs: providerTimeoutMs })
      : localProvider;
  const captcha = captchaUrl ? new SiteverifyCaptcha({ url: captchaUrl, secret: captchaSecret!, siteKey: captchaSiteKey, timeoutMs: providerTimeoutMs }) : localProvider;
  if (codeSender === localProvider || captcha === localProvider) {
    log.warn(
      { codes: codeSender.name, captcha: captcha.name, file: localProvider.file },
      'NOT FOR PRODUCTION: phone sign-up uses the local provider: ' +
        (codeSender === localProvider ? 'verification codes are only logged and written to the file, never sent; ' : '') +
        (captcha === localProvider ? 'any non-empty captcha is accepted; ' : '') +
        'configure --verification-provider twilio and --captcha-verify-url',
    );
  }
  const phone = createPhoneServices(
    {
      store: durable.phone,
      accounts,
      cache,
      limiters: createRateLimiters(parseLimiterSpecs(config.phone.rateLimits), cache, phoneNow),
      tokens,
      realm: config.realms[0],
      maxDevices: config.phone.maxDevices,
      linkKey: deriveKey(master, 'phone-link-code'),
      now: phoneNow,
      log: log.child({ component: 'phone' }),
      invalidate: (authUsers) => invalidate.users(authUsers),
      disconnect: (aor) => location.removeAor(aor),
      lockout,
    },
    { codes: codeSender, push: localProvider, captcha },
    {
      pacing: { sms: config.phone.smsPacing, voice: config.phone.voicePacing, check: config.phone.checkPacing },
      codeKey: deriveKey(master, 'phone-verification-code'),
      sweepSeconds: config.phone.sweepInterval,
    },
  );

  // Device tokens are checked against their device too (it exists, unlocked, the same device), over HTTP and SIP alike.
  tokens.acceptWith(validity.tokenCheck(config.tokens.jwksUrl !== null, phone.devices.acceptBearer));

  // Digest: nonces keyed from the master key; nonce counts tracked in-process.
  const boot = randomBytes(4).readUInt32BE(0);
  const nonces = new NonceIssuer(deriveKey(master, 'digest-nonce'), config.digest.nonceTtl, boot);
  const nonceCounts = shared.nonceCounts(nonces, config.digest.nonceTtl);

  const endpoint = new SipEndpoint({
    logger: log.child({ component: 'sip' }),
    supported: ['path'],
    forceRport: config.sip.forceRport,
    serverHeader: config.sip.serverHeader,
  });
  // Requests for a flow another node holds (a NOTIFY to a phone on its TCP or WebSocket connection) go through
  // that node over the bus; it answers for the connections it holds.
  const relay = new FlowRelay({
    bus,
    endpoint,
    node,
    log: log.child({ component: 'relay' }),
    connections: { isConnectionOpen: (id) => transports?.isConnectionOpen(id) ?? false, connectionPeer: (id) => transports?.connectionPeer(id) ?? null },
  });
  relay.start();
  metrics = new Metrics({
    activeBindings: () => location.size,
    aors: () => location.aorCount,
    tcpConnections: () => transports?.connectionCount ?? 0,
    serverTransactions: () => endpoint.stats.serverTransactions,
    storeCommits: () => ({ commits: locationStore.commits, writes: locationStore.appended }),
    bus: amqp ? () => amqp.stats() : undefined,
  });
  const m = metrics;
  new Counter({ name: 'switchboard_signing_key_reloads_total', help: 'Signing key reads from the store after start-up (periodic, or for a token naming an unknown kid: at most one per --jwks-cooldown)', registers: [m.registry], collect() { this.reset(); this.inc(keys.reloads); } });
  const statusText: string[] = [];
  endpoint.setObserver({
    request: (method) => m.sipRequests.inc(method),
    response: (method, status, arrivedAt) => {
      m.sipResponses.inc(method, (statusText[status] ??= String(status)));
      m.sipRequestDuration.observe(method, (performance.now() - arrivedAt) / 1000);
    },
    badMessage: (reason) => m.sipBadMessages.inc(reason),
    retransmission: () => m.sipRetransmissions.inc(),
  });

  const authenticator = new SipAuthenticator({
    credentials,
    nonces,
    nonceCounts,
    failures,
    lockout,
    digest: config.digest,
    policy: config.auth,
    log: log.child({ component: 'auth' }),
    bearer: config.tokens.sipBearer === 'off' ? null : tokens,
    offerBearer: config.tokens.sipBearer === 'offer',
    onFailure: (reason) => m.authFailures.inc(reason),
    onDigestAuthenticated: phone.devices.onSipAuthenticated,
  });

  const localHosts = new Set<string>(['localhost', node.toLowerCase()]);
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) localHosts.add(i.address.toLowerCase());
  for (const h of config.sip.hosts) localHosts.add(h.toLowerCase());
  if (config.sip.advertisedHost) localHosts.add(config.sip.advertisedHost.toLowerCase());
  const registrar = new Registrar({
    location,
    authenticator,
    rules: config.registrar,
    realms: config.realms,
    isLocalHost: (h) => localHosts.has(h.charCodeAt(0) === 91 ? h.slice(1, -1) : h),
    node,
    log: log.child({ component: 'registrar' }),
    trustedProxies: new NetworkSet(config.sip.trustedProxies),
    onOutcome: (outcome) => m.registrations.inc(outcome),
  });
  endpoint.handle('REGISTER', registrar.handle);

  // Presence (RFC 3856/3903/6665): subscriptions and publications from the store, NOTIFYs through the endpoint.
  // With a shared bus, publications and policies written here are replicated to the other nodes.
  const presenceStore = amqp ? replicatingStore(durable.presence, bus, node) : durable.presence;
  const presence = new PresenceService({
    endpoint,
    authenticator,
    location,
    store: presenceStore,
    bus,
    relay,
    presentityExists: async (aor) => {
      const at = aor.lastIndexOf('@');
      const a = await accounts.findByName(aor.slice(0, at), aor.slice(at + 1));
      return a !== null && !a.disabled;
    },
    rules: config.presence,
    derivedContacts: config.presence.derivedContacts,
    subscribeLimiter: subscribeRate ? subscribeLimiter(subscribeRate, shared.cache, phoneNow) : undefined,
    realms: config.realms,
    isLocalHost: (h) => localHosts.has(h.charCodeAt(0) === 91 ? h.slice(1, -1) : h),
    node,
    log: log.child({ component: 'presence' }),
    keepFlow: (flow, until) => {
      if (flow.connectionId !== null) transports?.keepConnection(flow.connectionId, until);
    },
  });
  const presenceLoaded = await presence.prime();
  log.info(presenceLoaded, 'presence primed from the store');
  const stopReplicas = amqp ? followReplicas(bus, node, presence) : null;
  endpoint.handle('SUBSCRIBE', presence.handleSubscribe);
  endpoint.handle('PUBLISH', presence.handlePublish);

  // ---- Calls (issue 17): the stateful forking proxy, a factory of its own (src/proxy/) ----
  const calls = createProxy({
    endpoint,
    location,
    userExists: async (aor) => ((a) => a !== null && !a.disabled)(await accounts.findByName(aor.slice(0, aor.lastIndexOf('@')), aor.slice(aor.lastIndexOf('@') + 1))),
    authenticator,
    realms: config.realms,
    isLocalHost: (h) => localHosts.has(h),
    node,
    routeKey: deriveKey(master, 'proxy-record-route'),
    rules: config.calls,
    presence: (aor) => presence.state(aor),
    route: config.calls.routingModule ? await loadRoutingModule(config.calls.routingModule) : undefined,
    log: log.child({ component: 'proxy' }),
    bus,
    registry: m.registry,
  });
  calls.start();
  // ---- end of calls ----

  // TLS and WSS: the operator's certificate, or a self-signed one generated for local use.
  const needTls = config.sip.transports.includes('TLS') || config.sip.transports.includes('WSS');
  const tlsFiles = needTls ? loadTlsFiles({ dataDir: config.dataDir, certPath: config.tls.cert, keyPath: config.tls.key }) : null;
  if (tlsFiles?.selfSigned) log.warn({ cert: tlsFiles.certPath }, 'TLS and WSS use a self-signed certificate: fine for local use; set --tls-cert and --tls-key for production');
  transports = new TransportLayer({
    hosts: config.sip.hosts,
    port: config.sip.port,
    tlsPort: config.sip.tlsPort,
    wsPort: config.sip.wsPort,
    wssPort: config.sip.wssPort,
    tls: tlsFiles ? { key: tlsFiles.key, cert: tlsFiles.cert, verifyPeers: config.tls.verifyPeers, context: tlsContextOptions(config.tls.ciphers) } : null,
    transports: config.sip.transports,
    maxMessageSize: config.sip.maxMessageSize,
    tcpIdleTimeoutMs: config.sip.tcpIdleTimeout * 1000,
    tcpMaxConnections: config.sip.tcpMaxConnections,
    maxConnectionsPerAddress: config.sip.maxConnectionsPerAddress,
    capExempt: new NetworkSet([...config.auth.trustedNetworks, ...config.sip.trustedProxies]),
    tcpMessageTimeoutMs: config.sip.tcpMessageTimeout * 1000,
    firstMessageTimeoutMs: config.sip.firstMessageTimeout * 1000,
    // Workers on one host share each port; the kernel spreads datagrams and connections between them.
    reusePort: worker !== null,
    advertisedHost: config.sip.advertisedHost,
    logger: log.child({ component: 'transport' }),
    onMessage: endpoint.receive,
    onStreamError: endpoint.streamError,
    onDrop: (reason) => m.sipBadMessages.inc(reason),
    // A flow that closes takes its WebSocket and RFC 5626 bindings with it: nothing can reach them any more.
    onConnectionClosed: (connectionId) => {
      location.connectionClosed(node, connectionId).catch((err: unknown) => log.error({ err }, 'could not remove the bindings of a closed connection'));
    },
  });
  endpoint.attach(transports);
  const sip = await transports.listen();

  const http: FastifyInstance = buildHttpApp({
    log,
    metrics: m,
    location,
    ready: () => ready,
    version: SERVER_VERSION,
    loginRateLimit: config.http.loginRateLimit,
    trustProxy: config.http.trustProxy,
    timeouts: { requestMs: config.http.requestTimeout * 1000, headersMs: config.http.headersTimeout * 1000, keepAliveMs: config.http.keepAliveTimeout * 1000 },
    identity: { accounts: accountService, store: accounts, hasher, tokens, refresh, keys, apiKeys },
    onAccountStatusChanged: () => {
      invalidate.all();
      validity.clear();
    },
    onAccountDeleted: async (account) => {
      invalidate.all();
      validity.clear();
      await location.removeAor(account.aor);
      await presence.removePresentity(account.aor);
    },
    presence,
    phone: { verification: phone.verification, registration: phone.registration, devices: phone.devices, lock: phone.lock },
    console: { bus, sip, realms: config.realms },
    // With a listener of its own, /metrics on the HTTP port takes credentials only (the admin console's charts).
    metricsOpenTo: metricsListen ? [] : config.metrics.openTo,
    checkSync: checkSyncService({ location, relay, localAddress: (t) => endpoint.localAddress(t), log: log.child({ component: 'check-sync' }) }),
  });
  http.register(sipPasswordRoutes, { accounts, credentials: accounts, passwords: sipPasswords, auth: { tokens, apiKeys } });
  await http.listen({ host: config.http.host, port: config.http.port, ...(worker !== null ? { reusePort: true } : {}) });
  const httpAddr = http.server.address() as { address: string; port: number };
  const metricsHttp = metricsListen ? buildMetricsApp({ metrics: m, auth: { tokens, apiKeys }, openTo: config.metrics.openTo, log }) : null;
  if (metricsHttp && metricsListen) {
    await metricsHttp.listen({ host: metricsListen.host, port: metricsListen.port, ...(worker !== null ? { reusePort: true } : {}) });
    log.info({ metrics: metricsHttp.server.address(), openTo: config.metrics.openTo }, '/metrics listening on its own address');
  }
  ready = true;
  log.info({ sip: sip.map((l) => `${l.transport} ${l.address}:${l.port}`), http: `${httpAddr.address}:${httpAddr.port}`, realms: config.realms, version: SERVER_VERSION }, worker === null ? 'Switchboard started' : 'worker started');

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      log.info('Switchboard stopping');
      // Stop taking requests, let those in flight finish (their writes commit), then close storage.
      endpoint.stopAccepting();
      calls.stop();
      await endpoint.drain(5000);
      // Shared deployment: the bindings only our connections reach go before the connections do.
      await location.depart();
      await transports!.close();
      location.close();
      credentials.close();
      presence.close();
      relay.close();
      endpoint.close();
      await http.close();
      await metricsHttp?.close();
      kazoo?.stop();
      await bus.close();
      stopReplicas?.();
      invalidate.stop();
      stopValidity();
      phone.close();
      await shared.close();
      await durable.close();
      log.info('Switchboard stopped');
    })();
    return stopping;
  };

  return { config, accountService, tokens, keys, log, sip, http: { address: httpAddr.address, port: httpAddr.port }, location, accounts, credentials, bus, kazoo, sipPasswords, metrics: m, presence, phone, endpoint, transports: transports!, onRoute: (hook) => calls.onRoute(hook), stop };
}
