// The composition root: the only place (with adapters.ts) that picks adapters. It builds each room's subsystem
// (lifecycle.ts) from ports in dependency order and adds it to one lifecycle: start runs in that order, stop in the
// reverse one. Nothing here handles a request: the REGISTER path is UDP → parser → transaction → endpoint
// (sip/subsystem.ts) → registrar → authenticator → location service → store (registrar/subsystem.ts) → reply.

import { hostname, networkInterfaces } from 'node:os';
import { openBus, openCache, openDurable, phoneProviders, pushProviders, type Accounts } from './adapters.ts';
import type { EventBus } from './bus/event-bus.ts';
import { checkFileModes, secretFiles } from './file-modes.ts';
import type { Config } from './config.ts';
import type { AccountService } from './identity/account-service.ts';
import type { CachedCredentialStore } from './identity/credential-cache.ts';
import type { KeyRing } from './identity/keys.ts';
import type { PhoneServices } from './identity/phone/index.ts';
import type { ReversibleSipPasswords } from './identity/reversible-passwords.ts';
import { createIdentity } from './identity/subsystem.ts';
import type { TokenService } from './identity/tokens.ts';
import { checkHttpConfig, createHttp } from './http/subsystem.ts';
import type { KazooDirectory } from './kazoo/directory.ts';
import { createKazoo, kazooIdentity } from './kazoo/subsystem.ts';
import { Lifecycle } from './lifecycle.ts';
import { createLogger, type Logger } from './log.ts';
import { createMessaging, type Messaging } from './messaging/subsystem.ts';
import { createBridge, type BridgeSubsystem } from './bridge/subsystem.ts';
import { Metrics } from './metrics.ts';
import type { PresenceService } from './presence/presence-service.ts';
import { replicatingStore } from './presence/replication.ts';
import { createPresence } from './presence/subsystem.ts';
import { createCalls, type CallsSubsystem } from './proxy/subsystem.ts';
import type { RouteHook } from './proxy/routing-hook.ts';
import { parseSubscribeRate } from './presence/subscribe-rate.ts';
import type { LocationService } from './registrar/location-service.ts';
import { createRegistrar } from './registrar/subsystem.ts';
import { loadMasterKey } from './secrets.ts';
import type { SipEndpoint } from './sip/endpoint.ts';
import { createSipStack } from './sip/subsystem.ts';
import type { TransportLayer } from './sip/transport/layer.ts';
import type { ListenerAddress } from './sip/transport/types.ts';
import { workerNodeId } from './workers.ts';

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
  onRoute: CallsSubsystem['onRoute'];
  /** App sessions and the durable inbox. */
  messaging: Messaging;
  /** The IM bridge: vault, linked accounts, this process's connector. */
  bridge: BridgeSubsystem;
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
  /** Call routing hooks in place before the listeners open (index.ts), after --routing-module's. */
  routeHooks?: RouteHook[];
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const worker = opts.worker ?? null;
  const node = worker === null ? (config.cluster.nodeId ?? hostname()) : workerNodeId(config, worker);
  const log = (opts.log ?? createLogger(config.logLevel)).child(worker === null ? {} : { node });
  const now = opts.now ?? Date.now;
  const reusePort = worker !== null;
  // Secrets on disk private to us: refused (or warned about) before anything reads them.
  const masterKeyFile = !process.env.SWITCHBOARD_MASTER_KEY;
  checkFileModes(config.dataDir, secretFiles(config.dataDir, { masterKeyFile, sqlite: config.storage.database === 'sqlite' }), config.fileModeCheck, log);
  // Bad /metrics and SUBSCRIBE-rate settings fail the start, not the first request.
  checkHttpConfig(config);
  const subscribeRate = parseSubscribeRate(config.presence.subscribeRate);

  const life = new Lifecycle(log);
  let ready = false;
  const compose = async () => {
    // Storage: durable (SQLite file, or PostgreSQL shared by every node) and short-lived (in-process, or Redis with
    // the shared location index). Open before anything else, closed after everything else.
    const durable = await openDurable(config);
    const shared = openCache(config, now, log.child({ component: 'cache' }));
    life.add({
      name: 'storage',
      async stop() {
        await shared.close();
        await durable.close();
      },
    });
    log.info({ database: durable.describe, cache: shared.describe, node }, 'storage open');
    const master = loadMasterKey(config.dataDir);
    const metrics = new Metrics();

    // The bus: with an AMQP URL, RabbitMQ (events shared between nodes, the Kazoo directory on Kazoo's exchanges);
    // this process's queue is its Kazoo Server-ID.
    const kazooId = kazooIdentity(config, node, master, shared.locationIndex.shared);
    const { bus, shared: sharedBus, stats: busStats } = life.add(openBus(config, { master, nodeQueue: kazooId.serverId, log: log.child({ component: 'bus' }) }));
    if (busStats) metrics.observeBus(busStats);

    // The SIP stack: every service registers its methods on its endpoint and sends through it. Its listeners open
    // after the services have started (below).
    const interfaceAddresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    const sip = life.add(createSipStack({ config, node, reusePort, bus, metrics, interfaceAddresses, log }));

    const identity = life.add(
      createIdentity({
        config,
        node,
        master,
        stores: { accounts: durable.accounts, tokens: durable.tokens, sealedPasswords: durable.sealedPasswords, phone: durable.phone },
        cache: shared.cache,
        failures: shared.failures,
        nonceCounts: (issuer, ttl) => shared.nonceCounts(issuer, ttl),
        phoneProviders: phoneProviders(config, log, now),
        bus,
        metrics,
        now,
        log,
      }),
    );

    // Push providers (messaging) are picked before the registrar: it answers 555 for the others (RFC 8599).
    const push = pushProviders(config, master);
    const pushAdvert = { providers: push.providers.map((p) => p.name), pnsreg: config.push.pnsreg, vapid: push.webpush?.publicKey ?? null };
    const registrar = life.add(createRegistrar({ config, node, store: durable.location, index: shared.locationIndex, cluster: shared.locationCluster, bus, sip, identity, metrics, log, push: pushAdvert, master }));

    // With a shared bus, publications and policies written here are replicated to the other nodes.
    const presenceStore = sharedBus ? replicatingStore(durable.presence, bus, node) : durable.presence;
    const presence = life.add(
      createPresence({ config, node, sip, registrar, identity, store: presenceStore, bus, replicate: sharedBus, subscribeRate, cache: shared.cache, now, log }),
    ).service;
    identity.accountDeleted.on((aor) => presence.removePresentity(aor));

    // Calls: INVITE and in-dialog requests routed to registered devices (RFC 3261 §16).
    const calls = life.add(await createCalls({ config, node, master, sip, location: registrar.location, identity, presence, gruus: registrar.gruus, bus, metrics, log }));
    for (const hook of opts.routeHooks ?? []) calls.onRoute(hook);

    const kazoo =
      sharedBus && config.kazoo.directory === 'on'
        ? life.add(
            createKazoo({
              config,
              id: kazooId,
              version: SERVER_VERSION,
              bus,
              credentials: identity.credentials,
              accounts: identity.accounts,
              passwords: identity.sipPasswords,
              location: registrar.location,
              bindingChanges: registrar.bindingChanges,
              log: log.child({ component: 'kazoo' }),
            }),
          ).directory
        : null;

    const messaging = life.add(
      createMessaging({
        config,
        node,
        master,
        store: durable.messages,
        accounts: identity.accounts,
        phone: durable.phone,
        passwordChanged: identity.passwordChanged,
        sip: { handle: (method, handler) => sip.endpoint.handle(method, handler), relay: sip.relay },
        bindingChanges: registrar.bindingChanges,
        fork: calls.fork,
        registered: async (aor) => (await registrar.location.lookup(aor)).length > 0,
        gruus: registrar.gruus,
        authenticator: identity.authenticator,
        push,
        bus,
        cache: shared.cache,
        metrics,
        now,
        log,
      }),
    );

    // Fork late: the proxy wakes push-only devices through messaging's providers (RFC 8599).
    calls.setPushWaker((b, kind, ttl) => messaging.pusher.wakeBinding(b, kind, ttl));

    // The IM bridge: the vault opens with password sessions; incoming IMs go to the inbox.
    const bridge = life.add(
      createBridge({
        config,
        node,
        master,
        deployment: kazooId.deployment,
        store: durable.bridge,
        bus,
        accounts: identity.accountService,
        sessions: messaging.sessions,
        sessionChanges: messaging.sessionChanges,
        passwordSet: identity.passwordSet,
        inbox: messaging.inbox,
        now,
        log,
      }),
    );

    // Every method has its handler and every state is primed: the SIP listeners open (and on stop close first).
    life.add(sip.listening);

    const http = life.add(
      createHttp({
        config,
        reusePort,
        log,
        metrics,
        location: registrar.location,
        ready: () => ready,
        version: SERVER_VERSION,
        identity: {
          accounts: identity.accountService,
          store: identity.accounts,
          tokens: identity.tokens,
          refresh: identity.refresh,
          keys: identity.keys,
          apiKeys: identity.apiKeys,
        },
        onAccountStatusChanged: () => identity.forgetAccounts(),
        onAccountDeleted: async (account) => {
          identity.forgetAccounts();
          await identity.accountDeleted.run(account.aor);
        },
        presence,
        phone: { verification: identity.phone.verification, registration: identity.phone.registration, devices: identity.phone.devices, lock: identity.phone.lock },
        checkSync: registrar.checkSync,
        sip: () => sip.listeners,
        bus,
        sipPasswords: { accounts: identity.accounts, credentials: identity.accounts, passwords: identity.sipPasswords },
        calls: { live: () => calls.liveCalls(), node },
        messaging: {
          sessions: messaging.sessions,
          inbox: messaging.inbox,
          accounts: identity.accounts,
          devices: identity.phone.devices,
          vapidPublicKey: messaging.vapidPublicKey,
          pushProviders: messaging.pusher.names,
          tickets: messaging.tickets,
          bridge: {
            passwordLogin: (login, password, address) => bridge.passwordLogin(login, password, address),
            sessionStarted: (s, how) => bridge.sessionStarted(s, how),
            send: (s, linked, to, body) => bridge.bridge.send(s, linked, to, body),
            frames: (accountId, send) => bridge.bridge.listen(accountId, send),
          },
        },
        bridge: { sessions: messaging.sessions, bridge: bridge.bridge, vault: bridge.vault },
      }),
    );
    return { bus, metrics, sip, identity, registrar, presence, calls, kazoo, messaging, bridge, http };
  };
  // What was opened while composing closes again if composing fails (start does the same for its own failures).
  const { bus, metrics, sip, identity, registrar, presence, calls, kazoo, messaging, bridge, http } = await compose().catch(async (err: unknown): Promise<never> => {
    await life.stop();
    throw err;
  });

  await life.start();
  ready = true;
  log.info(
    { sip: sip.listeners.map((l) => `${l.transport} ${l.address}:${l.port}`), http: `${http.address.address}:${http.address.port}`, realms: config.realms, version: SERVER_VERSION },
    worker === null ? 'Switchboard started' : 'worker started',
  );

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      log.info('Switchboard stopping');
      await life.stop();
      log.info('Switchboard stopped');
    })();
    return stopping;
  };

  return {
    config,
    accountService: identity.accountService,
    tokens: identity.tokens,
    keys: identity.keys,
    log,
    sip: sip.listeners,
    http: { address: http.address.address, port: http.address.port },
    location: registrar.location,
    accounts: identity.accounts,
    credentials: identity.credentials,
    bus,
    kazoo,
    sipPasswords: identity.sipPasswords,
    metrics,
    presence,
    phone: identity.phone,
    endpoint: sip.endpoint,
    transports: sip.transports,
    onRoute: (hook) => calls.onRoute(hook),
    messaging,
    bridge,
    stop,
  };
}
