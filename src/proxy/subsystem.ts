// Calls as one subsystem (lifecycle.ts): the stateful forking proxy (proxy.ts) on the endpoint's INVITE, ACK and
// in-dialog methods, and its non-INVITE forking (non-invite.ts) that messaging delivers MESSAGE with; the location
// service to find devices (GRUUs resolved by the registrar's Gruus), the SIP authenticator to challenge callers
// (407), presence for --call-presence-policy and the bus for call events. Composed after presence, stopped before it.

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
import type { TransportName } from '../sip/transport/types.ts';
import { createProxy, type Proxy } from './proxy.ts';
import { loadRoutingModule } from './routing-hook.ts';
import { createNonInviteFork, type NonInviteFork } from './non-invite.ts';
import type { Gruus } from '../registrar/gruu.ts';
import { LateForks, type DeviceWaker } from './fork-late.ts';

export interface CallsOptions {
  config: Config;
  node: string;
  master: Buffer;
  sip: SipStack;
  location: LocationService;
  identity: { authenticator: SipAuthenticator; accountExists(username: string, realm: string): boolean | Promise<boolean> };
  presence: PresenceService;
  /** RFC 5627: resolves a GRUU Request-URI to its AOR and instance (registrar/gruu.ts). */
  gruus: Pick<Gruus, 'resolve'>;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
}

export interface CallsSubsystem extends Subsystem {
  /** Adds a call routing hook (routing-hook.ts): the library form of --routing-module. */
  readonly onRoute: Proxy['onRoute'];
  /** Non-INVITE forking (non-invite.ts): how MESSAGE reaches a user's devices. */
  readonly fork: NonInviteFork;
  /** Fork late (fork-late.ts): how a push-only device is woken (messaging's push providers, set at composition). */
  setPushWaker(w: DeviceWaker | null): void;
  /** The calls ringing or answered now on this node (the console, GET /v1/calls). */
  readonly liveCalls: Proxy['liveCalls'];
}

export async function createCalls(o: CallsOptions): Promise<CallsSubsystem> {
  const { config } = o;
  const lateForks = new LateForks({ bus: o.bus, location: o.location, node: o.node, isOpen: (id) => o.sip.transports.isConnectionOpen(id), log: o.log.child({ component: 'proxy' }) });
  const late = config.push.forkLateTimeout > 0 ? lateForks : undefined;
  const proxy = createProxy({
    endpoint: o.sip.endpoint,
    location: o.location,
    userExists: (aor) => {
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
    gruus: o.gruus,
    route: config.calls.routingModule ? await loadRoutingModule(config.calls.routingModule) : undefined,
    log: o.log.child({ component: 'proxy' }),
    bus: o.bus,
    registry: o.metrics.registry,
    late: late && { forks: late, timeoutMs: config.push.forkLateTimeout * 1000 },
    relay: o.sip.relay,
  });
  const fork = createNonInviteFork({
    location: o.location,
    relay: o.sip.relay,
    isOurAddress: (transport, address, port) => o.sip.isLocalHost(address) && o.sip.endpoint.localAddress(transport as TransportName)?.port === port,
    branchTimeoutMs: config.calls.nonInviteTimeout * 1000,
    late: late && { forks: late, timeoutMs: config.push.forkLateMessageTimeout * 1000 },
    log: o.log.child({ component: 'proxy' }),
  });
  return {
    name: 'calls',
    fork,
    onRoute: (hook) => proxy.onRoute(hook),
    setPushWaker: (w) => lateForks.setWaker(w),
    liveCalls: () => proxy.liveCalls(),
    start: () => proxy.start(),
    stop: () => {
      proxy.stop();
      lateForks.close();
    },
  };
}
