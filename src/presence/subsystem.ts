// Presence's room as a subsystem (lifecycle.ts): the service behind its facade, SUBSCRIBE and PUBLISH on the
// endpoint, primed from the store on start, replicas of the other nodes' writes followed while it runs.

import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { RegistrarSubsystem } from '../registrar/subsystem.ts';
import type { SipStack } from '../sip/subsystem.ts';
import type { Cache, PresenceStore } from '../storage/ports.ts';
import { PresenceService } from './presence-service.ts';
import { followReplicas } from './replication.ts';
import { subscribeLimiter, type parseSubscribeRate } from './subscribe-rate.ts';

/**
 * Presence (RFC 3856/3903/6665) as a subsystem: subscriptions and publications from the store, NOTIFYs through the
 * endpoint (or the relay, for another node's flow), the other nodes' publications followed on a shared bus.
 */
export function createPresence(o: {
  config: Config;
  node: string;
  sip: SipStack;
  registrar: RegistrarSubsystem;
  /** accountExists: the same cached rule the proxy's 404 uses (identity/credential-validity.ts). */
  identity: { authenticator: SipAuthenticator; accountExists(username: string, realm: string): boolean | Promise<boolean> };
  store: PresenceStore;
  bus: EventBus;
  /** Follow the other nodes' publications and policies (a shared bus). */
  replicate: boolean;
  subscribeRate: ReturnType<typeof parseSubscribeRate>;
  cache: Cache;
  now: () => number;
  log: Logger;
}): Subsystem & { service: PresenceService } {
  const { config, node, sip, log } = o;
  const service = new PresenceService({
    endpoint: sip.endpoint,
    authenticator: o.identity.authenticator,
    location: o.registrar.location,
    store: o.store,
    bus: o.bus,
    relay: sip.relay,
    // As the identity answers it: at once from its cache, a promise only when it must ask the store.
    presentityExists: (aor) => {
      const at = aor.lastIndexOf('@');
      return o.identity.accountExists(aor.slice(0, at), aor.slice(at + 1));
    },
    rules: config.presence,
    derivedContacts: config.presence.derivedContacts,
    subscribeLimiter: o.subscribeRate ? subscribeLimiter(o.subscribeRate, o.cache, o.now) : undefined,
    realms: config.realms,
    isLocalHost: sip.isLocalHost,
    node,
    log: log.child({ component: 'presence' }),
    keepFlow: (flow, until) => {
      if (flow.connectionId !== null) sip.transports.keepConnection(flow.connectionId, until);
    },
  });
  sip.endpoint.handle('SUBSCRIBE', service.handleSubscribe);
  sip.endpoint.handle('PUBLISH', service.handlePublish);
  let stopReplicas: (() => void) | null = null;
  return {
    name: 'presence',
    service,
    async start() {
      log.info(await service.prime(), 'presence primed from the store');
      if (o.replicate) stopReplicas = followReplicas(o.bus, node, service);
    },
    stop() {
      service.close();
      stopReplicas?.();
    },
  };
}
