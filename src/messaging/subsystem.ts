// Messaging as one subsystem (lifecycle.ts): app sessions, the durable inbox and its sweeper. Built after identity
// (sessions end when a password changes; accounts and phone devices decide whether a session is still good) and
// before HTTP, which serves the routes (http/routes/messages.ts) from what this returns.
//
// Counters: switchboard_messages_total{event} (received, stored, duplicate, delivered, expired, refused) and
// switchboard_app_sessions_total{event} (created, rolled, ended), switchboard_pushes_total{provider,outcome}. Bus
// events: message.received|stored|delivered|expired, push.sent|failed (ids, sizes, providers: never a body or token).

import { Counter } from 'prom-client';
import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import { Sealer } from '../identity/seal.ts';
import { Hook, type Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { deriveKey } from '../secrets.ts';
import type { AccountStore, PhoneStore } from '../storage/ports.ts';
import type { AppSessionStore, MessageStore } from '../storage/ports/messaging.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { BindingChange } from '../registrar/location-service.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { SipUri } from '../sip/message/uri.ts';
import type { RequestHandler } from '../sip/endpoint.ts';
import { Inbox } from './inbox.ts';
import { DeliveryLeases } from './delivery-lease.ts';
import { forkDelivery, SipMessages, type MessageTarget, type RequestFork } from './sip-message.ts';
import type { PushProvider } from './push/ports.ts';
import { Pusher } from './push/pusher.ts';
import type { WebPushProvider } from './push/webpush.ts';
import { AppSessions, type SessionChange } from './sessions.ts';
import { StreamTickets } from './stream-tickets.ts';
import { parseBucketSpec, RateLimiter } from '../identity/rate-limiter.ts';
import type { Cache } from '../storage/ports/cache.ts';

export interface MessagingOptions {
  config: Config;
  node: string;
  master: Buffer;
  store: MessageStore & AppSessionStore;
  accounts: Pick<AccountStore, 'findById' | 'findByName'>;
  phone: Pick<PhoneStore, 'findDevice'>;
  /** Identity's: a password change ends the account's app sessions. */
  passwordChanged: Hook<string>;
  /** SIP MESSAGE (RFC 3428): the endpoint to handle it on, the flows to send through, the sender's authentication. */
  sip: {
    handle(method: string, handler: RequestHandler): void;
    relay: { send(req: SipRequest, flow: { node: string; transport: string; address: string; port: number; connectionId: number | null }): Promise<SipResponse> };
  };
  bindingChanges: Hook<readonly BindingChange[]>;
  authenticator: Pick<SipAuthenticator, 'authenticate'>;
  /** Delivery to registered devices: the proxy's non-INVITE forking (proxy/non-invite.ts). */
  fork: RequestFork;
  /** Whether an AOR has a binding now (the location service, through the shared index on a cluster). */
  registered: (aor: string) => Promise<boolean>;
  /** RFC 5627: resolves a GRUU Request-URI (registrar/gruu.ts). */
  gruus: { resolve(u: SipUri): MessageTarget | 'forged' | null };
  /** The push providers adapters.ts built from the configuration. */
  push: { providers: PushProvider[]; webpush: WebPushProvider | null };
  bus: EventBus;
  /** The shared cache: stream tickets (stream-tickets.ts), redeemable on any node; delivery leases (delivery-lease.ts). */
  cache: Cache;
  metrics: Metrics;
  now: () => number;
  log: Logger;
}

export interface Messaging extends Subsystem {
  readonly tickets: StreamTickets;
  readonly inbox: Inbox;
  readonly sessions: AppSessions;
  readonly pusher: Pusher;
  readonly sipMessages: SipMessages;
  /** Sessions rolled over or ended (the bridge zeroes what it held for them). */
  readonly sessionChanges: Hook<SessionChange>;
  /** The VAPID public key (base64url) browsers subscribe with, or null without Web Push. */
  readonly vapidPublicKey: string | null;
}

/** How long a provider may hold a message push for an offline device, seconds. */
const MESSAGE_PUSH_TTL = 86_400;

/** The purpose the session keys are sealed under (identity/seal.ts binds it in as associated data). */
export const APP_SESSION_KEY = 'app-session-key';

export function createMessaging(o: MessagingOptions): Messaging {
  const { config, log } = o;
  const m = config.messaging;
  const registers = [o.metrics.registry];
  const messages = new Counter({ name: 'switchboard_messages_total', help: 'Stored messages by event (received, stored, duplicate, delivered, expired, refused)', labelNames: ['event'], registers });
  const sessionEvents = new Counter({ name: 'switchboard_app_sessions_total', help: 'App sessions by event (created, rolled, ended)', labelNames: ['event'], registers });
  const sessionChanges = new Hook<SessionChange>();
  const sessions = new AppSessions({
    store: o.store,
    accounts: o.accounts,
    phone: o.phone,
    sealer: new Sealer(deriveKey(o.master, APP_SESSION_KEY), APP_SESSION_KEY),
    ttl: m.sessionTtl,
    overlap: m.sessionOverlap,
    now: o.now,
    onEvent: (event) => sessionEvents.inc({ event }),
    onChange: (c) => sessionChanges.emit(c),
  });
  const pushes = new Counter({ name: 'switchboard_pushes_total', help: 'Pushes by provider and outcome (sent, failed, gone: the provider called the token dead)', labelNames: ['provider', 'outcome'], registers });
  const pusher = new Pusher({
    providers: o.push.providers,
    sessions,
    bus: o.bus,
    node: o.node,
    log: log.child({ component: 'push' }),
    messageTtl: Math.min(MESSAGE_PUSH_TTL, m.ttl),
    count: (provider, outcome) => pushes.inc({ provider, outcome }),
  });
  const inbox = new Inbox({
    store: o.store,
    bus: o.bus,
    ttl: m.ttl,
    quota: m.quota,
    maxBody: m.maxBody,
    node: o.node,
    now: o.now,
    log: log.child({ component: 'messaging' }),
    count: (event) => messages.inc({ event }),
    onStored: (message, via) => {
      void pusher.messageStored(message);
      // A SIP MESSAGE is stored only when no device took it; an app's goes to the devices now (sip-message.ts).
      if (via === 'app') void sipMessages.deliverStored(message);
    },
  });
  const sending = { relay: o.sip.relay };
  const limiter = (name: string, spec: string, flag: string) => {
    const bucket = parseBucketSpec(spec, flag);
    return bucket ? new RateLimiter(name, bucket, o.cache, o.now) : null;
  };
  const sipMessages = new SipMessages({
    inbox,
    leases: new DeliveryLeases(o.cache),
    delivery: forkDelivery(o.fork, o.registered),
    sending,
    gruus: o.gruus,
    authenticator: o.authenticator,
    accounts: o.accounts,
    realms: config.realms,
    maxBody: m.maxBody,
    bus: o.bus,
    log: log.child({ component: 'message' }),
    limits: {
      sender: limiter('messageSipSender', m.sipSenderRate, '--message-sip-sender-rate'),
      source: limiter('messageSipSource', m.sipSourceRate, '--message-sip-source-rate'),
    },
  });
  o.sip.handle('MESSAGE', sipMessages.handle);
  o.bindingChanges.on((changes) => sipMessages.bindingsChanged(changes));
  o.passwordChanged.on(async (accountId) => {
    await sessions.endAccount(accountId);
  });

  let sweeper: NodeJS.Timeout | null = null;
  const sweep = async () => {
    try {
      await inbox.sweep();
      await sessions.sweep();
    } catch (err) {
      log.warn({ err }, 'messaging sweep failed');
    }
  };
  return {
    name: 'messaging',
    inbox,
    sessions,
    pusher,
    sipMessages,
    tickets: new StreamTickets(o.cache, sessions),
    sessionChanges,
    vapidPublicKey: o.push.webpush?.publicKey ?? null,
    async start() {
      await inbox.start();
      await sipMessages.start();
      if (m.sweepInterval > 0) {
        sweeper = setInterval(() => void sweep(), m.sweepInterval * 1000);
        sweeper.unref();
      }
    },
    stop() {
      if (sweeper) clearInterval(sweeper);
      inbox.stop();
      sipMessages.stop();
      pusher.close();
    },
  };
}
