// Calls as one subsystem (lifecycle.ts): the stateful forking proxy (proxy.ts) on the endpoint's INVITE, ACK and
// in-dialog methods, with the location service to find devices, the SIP authenticator to challenge callers (407),
// presence for --call-presence-policy and the bus for call events. Composed after presence, stopped before it.

import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { PresenceService } from '../presence/presence-service.ts';
import type { LocationService } from '../registrar/location-service.ts';
import { deriveKey } from '../secrets.ts';
import type { SipStack } from '../sip/subsystem.ts';
import { createProxy, type Proxy } from './proxy.ts';
import { loadRoutingModule } from './routing-hook.ts';

export interface CallsOptions {
  config: Config;
  node: string;
  master: Buffer;
  sip: SipStack;
  location: LocationService;
  identity: { authenticator: SipAuthenticator; accountExists(username: string, realm: string): boolean | Promise<boolean> };
  presence: PresenceService;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
}

export interface CallsSubsystem extends Subsystem {
  /** Adds a call routing hook (routing-hook.ts): the library form of --routing-module. */
  readonly onRoute: Proxy['onRoute'];
}

export async function createCalls(o: CallsOptions): Promise<CallsSubsystem> {
  const { config } = o;
  const proxy = createProxy({
    endpoint: o.sip.endpoint,
    location: o.location,
    userExists: async (aor) => {
      const at = aor.lastIndexOf('@');
      return o.identity.accountExists(aor.slice(0, at), aor.slice(at + 1));
    },
    authenticator: o.identity.authenticator,
    realms: config.realms,
    isLocalHost: (h) => o.sip.isLocalHost(h),
    node: o.node,
    // Every node verifies every node's Record-Route: the key comes from the master key they share.
    routeKey: deriveKey(o.master, 'proxy-record-route'),
    rules: config.calls,
    presence: (aor) => o.presence.state(aor),
    route: config.calls.routingModule ? await loadRoutingModule(config.calls.routingModule) : undefined,
    log: o.log.child({ component: 'proxy' }),
    bus: o.bus,
    registry: o.metrics.registry,
  });
  return {
    name: 'calls',
    onRoute: (hook) => proxy.onRoute(hook),
    start: () => proxy.start(),
    stop: () => proxy.stop(),
  };
}
