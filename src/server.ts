// The composition root: the only place that picks adapters, wires services to ports, opens listeners and shuts
// everything down in order. Nothing else imports an adapter.

import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { InProcessBus } from './bus/in-process.ts';
import type { EventBus } from './bus/event-bus.ts';
import type { Config } from './config.ts';
import { CachedCredentialStore } from './identity/credential-cache.ts';
import { SipAuthenticator } from './identity/sip-authenticator.ts';
import { AccountService } from './identity/account-service.ts';
import { ApiKeys } from './identity/api-keys.ts';
import { KeyRing } from './identity/keys.ts';
import { PasswordHasher } from './identity/passwords.ts';
import { RefreshTokens } from './identity/refresh-tokens.ts';
import { Sealer } from './identity/seal.ts';
import { TokenService } from './identity/tokens.ts';
import { SqliteTokenStore } from './storage/sqlite/token-store.ts';
import { buildHttpApp } from './http/app.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { LocationService } from './registrar/location-service.ts';
import { Registrar } from './registrar/registrar.ts';
import { deriveKey, loadMasterKey } from './secrets.ts';
import { loadTlsFiles } from './certificates.ts';
import { NonceIssuer } from './sip/digest.ts';
import { SipEndpoint } from './sip/endpoint.ts';
import { TransportLayer } from './sip/transport/layer.ts';
import type { ListenerAddress } from './sip/transport/types.ts';
import { MemoryFailureCounter } from './storage/memory/failure-counter.ts';
import { NonceCountWindow } from './storage/memory/nonce-counts.ts';
import { SqliteAccountStore } from './storage/sqlite/account-store.ts';
import { openDatabase } from './storage/sqlite/database.ts';
import { SqliteLocationStore } from './storage/sqlite/location-store.ts';
import type { DatabaseSync } from 'node:sqlite';

export interface RunningServer {
  config: Config;
  accountService: AccountService;
  tokens: TokenService;
  keys: KeyRing;
  log: Logger;
  sip: ListenerAddress[];
  http: { address: string; port: number };
  location: LocationService;
  accounts: SqliteAccountStore;
  credentials: CachedCredentialStore;
  bus: EventBus;
  metrics: Metrics;
  stop(): Promise<void>;
}

export const SERVER_VERSION = '0.1.0';

export function databaseFile(config: Config): string {
  return path.join(config.dataDir, 'switchboard.db');
}

export async function startServer(config: Config, opts: { log?: Logger } = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.logLevel);
  const node = hostname();
  let ready = false;

  // Storage (embedded default: SQLite) and the in-process bus.
  const db: DatabaseSync = openDatabase({ file: databaseFile(config), durability: config.storage.durability });
  const accounts = new SqliteAccountStore(db);
  const locationStore = new SqliteLocationStore(db);
  const credentials = new CachedCredentialStore(accounts, config.storage.credentialCacheTtl);
  const failures = new MemoryFailureCounter();
  const bus = new InProcessBus(log.child({ component: 'bus' }));

  // Location service, primed before any listener opens.
  let metrics: Metrics | null = null;
  let transports: TransportLayer | null = null;
  const location = new LocationService({
    store: locationStore,
    node,
    bus,
    log: log.child({ component: 'location' }),
    onChange: (changes) => {
      for (const c of changes) {
        metrics?.bindingChanges.inc(c.event);
        // A binding on a TCP connection keeps that connection open for as long as the binding lives.
        const b = c.binding;
        if (b.connectionId !== null && (c.event === 'added' || c.event === 'refreshed')) transports?.keepConnection(b.connectionId, b.expiresAt);
      }
    },
  });
  const primed = await location.prime();
  log.info({ bindings: primed.loaded, expiredWhileDown: primed.expired, connectionsGone: primed.orphaned }, 'location service primed from the store');

  // Identity: accounts, password hashing, signing keys (sealed under the master key), tokens, API keys.
  const master = loadMasterKey(config.dataDir);
  const tokenStore = new SqliteTokenStore(db);
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
    },
    keys,
  );
  const refresh = new RefreshTokens(tokenStore, config.tokens.refreshTtl);
  const apiKeys = new ApiKeys(tokenStore);
  const accountService = new AccountService({
    accounts,
    credentials: accounts,
    credentialCache: credentials,
    hasher,
    failures,
    policy: config.auth,
    defaultRealm: config.realms[0],
    log: log.child({ component: 'identity' }),
  });

  // Digest: nonces keyed from the master key; nonce counts tracked in-process.
  const boot = randomBytes(4).readUInt32BE(0);
  const nonces = new NonceIssuer(deriveKey(master, 'digest-nonce'), config.digest.nonceTtl, boot);
  const nonceCounts = new NonceCountWindow(boot, () => nonces.nextIndex);

  const endpoint = new SipEndpoint({
    logger: log.child({ component: 'sip' }),
    supported: ['path'],
    forceRport: config.sip.forceRport,
    serverHeader: config.sip.serverHeader,
  });
  metrics = new Metrics({
    activeBindings: () => location.size,
    aors: () => location.aorCount,
    tcpConnections: () => transports?.connectionCount ?? 0,
    serverTransactions: () => endpoint.stats.serverTransactions,
    storeCommits: () => ({ commits: locationStore.commits, writes: locationStore.appended }),
  });
  const m = metrics;
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
    digest: config.digest,
    policy: config.auth,
    log: log.child({ component: 'auth' }),
    bearer: config.tokens.sipBearer === 'off' ? null : tokens,
    offerBearer: config.tokens.sipBearer === 'offer',
    onFailure: (reason) => m.authFailures.inc(reason),
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
    onOutcome: (outcome) => m.registrations.inc(outcome),
  });
  endpoint.handle('REGISTER', registrar.handle);

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
    tls: tlsFiles ? { key: tlsFiles.key, cert: tlsFiles.cert, verifyPeers: config.tls.verifyPeers } : null,
    transports: config.sip.transports,
    maxMessageSize: config.sip.maxMessageSize,
    tcpIdleTimeoutMs: config.sip.tcpIdleTimeout * 1000,
    tcpMaxConnections: config.sip.tcpMaxConnections,
    reusePort: false,
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
    identity: { accounts: accountService, store: accounts, hasher, tokens, refresh, keys, apiKeys },
    onAccountDeleted: (account) => location.removeAor(account.aor),
  });
  await http.listen({ host: config.http.host, port: config.http.port });
  const httpAddr = http.server.address() as { address: string; port: number };
  ready = true;
  log.info({ sip: sip.map((l) => `${l.transport} ${l.address}:${l.port}`), http: `${httpAddr.address}:${httpAddr.port}`, realms: config.realms, version: SERVER_VERSION }, 'Switchboard started');

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      log.info('Switchboard stopping');
      // Stop taking requests, let those in flight finish (their writes commit), then close storage.
      endpoint.stopAccepting();
      await endpoint.drain(5000);
      await transports!.close();
      location.close();
      endpoint.close();
      await http.close();
      await bus.close();
      failures.close();
      db.close();
      log.info('Switchboard stopped');
    })();
    return stopping;
  };

  return { config, accountService, tokens, keys, log, sip, http: { address: httpAddr.address, port: httpAddr.port }, location, accounts, credentials, bus, metrics: m, stop };
}
