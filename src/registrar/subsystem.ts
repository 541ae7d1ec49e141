// The registrar as one subsystem (lifecycle.ts): the location service (primed from the store on start) and the
// RFC 3261 §10.3 rules, which take REGISTER from the endpoint. The REGISTER path runs straight through what is
// wired here: endpoint → Registrar.handle → SipAuthenticator → LocationService → store → reply.

import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import { Hook, type Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { SipStack } from '../sip/subsystem.ts';
import { NetworkSet } from '../sip/transport/networks.ts';
import type { LocationCluster, LocationIndex, LocationStore } from '../storage/ports.ts';
import { checkSyncService, type CheckSyncReport } from './check-sync.ts';
import { LocationService, type BindingChange } from './location-service.ts';
import { Gruus } from './gruu.ts';
import { Registrar } from './registrar.ts';
import { deriveKey } from '../secrets.ts';

export interface RegistrarOptions {
  config: Config;
  node: string;
  store: LocationStore & { commits: number; appended: number };
  index: LocationIndex;
  /** The cluster around a shared index (membership, flows, the priming lease); null for an in-process index. */
  cluster: LocationCluster | null;
  bus: EventBus;
  sip: SipStack;
  identity: {
    authenticator: SipAuthenticator;
    disconnect: Hook<string>;
    accountDeleted: Hook<string>;
  };
  metrics: Metrics;
  log: Logger;
  /** The master key: the temp-gruu key is derived from it (every node verifies every node's). */
  master: Buffer;
  /** RFC 8599: the push providers messaging pushes through (Registrar's push option). */
  push?: { providers: readonly string[]; pnsreg: number; vapid: string | null };
}

export interface RegistrarSubsystem extends Subsystem {
  readonly location: LocationService;
  readonly registrar: Registrar;
  /** RFC 5627: mints the GRUUs in a 200 OK and resolves a Request-URI that is one. */
  readonly gruus: Gruus;
  /** Every change of the bindings, the start-up's (expired while down) included. */
  readonly bindingChanges: Hook<readonly BindingChange[]>;
  /** The check-sync NOTIFY (RFC 3265 event "check-sync") to every flow of an AOR. */
  readonly checkSync: (aor: string) => Promise<CheckSyncReport>;
}

export function createRegistrar(o: RegistrarOptions): RegistrarSubsystem {
  const { config, node, sip, metrics: m, log } = o;
  const bindingChanges = new Hook<readonly BindingChange[]>();
  const location = new LocationService({
    store: o.store,
    index: o.index,
    cluster: o.cluster,
    node,
    bus: o.bus,
    heartbeatMs: config.cluster.heartbeat * 1000,
    log: log.child({ component: 'location' }),
    onChange: (changes) => {
      for (const c of changes) {
        m.bindingChanges.inc(c.event);
        // A binding on a TCP connection keeps that connection open for as long as the binding lives.
        const b = c.binding;
        if (b.connectionId !== null && (c.event === 'added' || c.event === 'refreshed')) sip.transports.keepConnection(b.connectionId, b.expiresAt);
      }
      bindingChanges.emit(changes);
    },
  });
  m.observeLocation({ bindings: () => location.size, aors: () => location.aorCount, storeCommits: () => ({ commits: o.store.commits, writes: o.store.appended }) });

  const gruus = new Gruus(deriveKey(o.master, 'registrar-temp-gruu'));
  const registrar = new Registrar({
    location,
    authenticator: o.identity.authenticator,
    rules: config.registrar,
    realms: config.realms,
    isLocalHost: sip.isLocalHost,
    node,
    log: log.child({ component: 'registrar' }),
    trustedProxies: new NetworkSet(config.sip.trustedProxies),
    onOutcome: (outcome) => m.registrations.inc(outcome),
    push: o.push,
    gruus,
  });
  sip.endpoint.handle('REGISTER', registrar.handle);

  // A flow that closes takes its WebSocket and RFC 5626 bindings with it: nothing can reach them any more.
  sip.connectionClosed.on((connectionId) => {
    location.connectionClosed(node, connectionId).catch((err: unknown) => log.error({ err }, 'could not remove the bindings of a closed connection'));
  });
  // Shared deployment: the bindings only our connections reach go before the connections do.
  sip.beforeClose.on(() => location.depart());
  o.identity.disconnect.on((aor) => location.removeAor(aor));
  o.identity.accountDeleted.on((aor) => location.removeAor(aor));

  return {
    name: 'registrar',
    location,
    registrar,
    gruus,
    bindingChanges,
    checkSync: checkSyncService({ location, relay: sip.relay, localAddress: (t) => sip.endpoint.localAddress(t), log: log.child({ component: 'check-sync' }) }),
    async start() {
      // Primed before any listener opens (the SIP stack starts after this).
      const primed = await location.prime();
      log.info({ bindings: primed.loaded, expiredWhileDown: primed.expired, connectionsGone: primed.orphaned }, 'location service primed from the store');
    },
    stop() {
      location.close();
    },
  };
}
