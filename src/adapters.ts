// The composition root, first half: which adapter serves each port, from the configuration. Embedded default:
// SQLite file, in-process cache, location index and bus. Scale-out: PostgreSQL (--database) for everything durable,
// Redis (--cache) for the shared location index and short-lived state, RabbitMQ (--bus) for events. The phone
// sign-up providers (codes, captchas) are picked here too. server.ts (and the CLI) take the adapters from here and
// nothing else imports one.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import type { Redis } from 'ioredis';
import { AmqpBus } from './bus/amqp.ts';
import type { EventBus } from './bus/event-bus.ts';
import { InProcessBus } from './bus/in-process.ts';
import { BUS_MAC_KEY, BusAuthenticator } from './bus/internal-auth.ts';
import type { Config } from './config.ts';
import type { PhoneProviders } from './identity/phone/index.ts';
import { LocalProvider } from './identity/phone/providers/local.ts';
import { SiteverifyCaptcha } from './identity/phone/providers/siteverify.ts';
import { TwilioCodeSender } from './identity/phone/providers/twilio.ts';
import { KAZOO_EXCHANGES, SWITCHBOARD_EVENTS } from './kazoo/exchanges.ts';
import type { Subsystem } from './lifecycle.ts';
import { ApnsProvider } from './messaging/push/apns.ts';
import { FcmProvider, readServiceAccount } from './messaging/push/fcm.ts';
import type { PushProvider } from './messaging/push/ports.ts';
import { vapidKeys, WebPushProvider } from './messaging/push/webpush.ts';
import { redactUrl, type Logger } from './log.ts';
import type { BusStats } from './metrics.ts';
import { deriveKey } from './secrets.ts';
import type { NonceCountTracker, NonceIssuer } from './sip/digest.ts';
import type {
  AccountAdmin,
  AccountStore,
  ApiKeyStore,
  Cache,
  CredentialStore,
  FailureCounter,
  LocationCluster,
  LocationIndex,
  LocationStore,
  PhoneStore,
  PresenceStore,
  RefreshTokenStore,
  SealedSipPasswordStore,
  SigningKeyStore,
} from './storage/ports.ts';
import type { AppSessionStore, MessageStore } from './storage/ports/messaging.ts';
import type { LinkedAccountStore, VaultStore } from './storage/ports/bridge.ts';
import { MemoryCache } from './storage/memory/cache.ts';
import { MemoryFailureCounter } from './storage/memory/failure-counter.ts';
import { MemoryLocationIndex } from './storage/memory/location-index.ts';
import { NonceCountWindow } from './storage/memory/nonce-counts.ts';
import { PostgresAccountStore } from './storage/postgres/account-store.ts';
import { openPostgres, type Db } from './storage/postgres/database.ts';
import { PostgresLocationStore } from './storage/postgres/location-store.ts';
import { PostgresMessageStore } from './storage/postgres/message-store.ts';
import { PostgresBridgeStore } from './storage/postgres/bridge-store.ts';
import { PostgresPhoneStore } from './storage/postgres/phone-store.ts';
import { PostgresPresenceStore } from './storage/postgres/presence-store.ts';
import { PostgresSealedSipPasswordStore } from './storage/postgres/sealed-sip-password-store.ts';
import { PostgresTokenStore } from './storage/postgres/token-store.ts';
import { RedisCache } from './storage/redis/cache.ts';
import { openRedis } from './storage/redis/client.ts';
import { RedisFailureCounter } from './storage/redis/failure-counter.ts';
import { RedisLocationIndex } from './storage/redis/location-index.ts';
import { RedisNonceCounts } from './storage/redis/nonce-counts.ts';
import { SqliteAccountStore } from './storage/sqlite/account-store.ts';
import { WalCheckpointer } from './storage/sqlite/checkpointer.ts';
import { openDatabase } from './storage/sqlite/database.ts';
import { SqliteLocationStore } from './storage/sqlite/location-store.ts';
import { SqliteMessageStore } from './storage/sqlite/message-store.ts';
import { SqliteBridgeStore } from './storage/sqlite/bridge-store.ts';
import { SqlitePhoneStore } from './storage/sqlite/phone-store.ts';
import { SqlitePresenceStore } from './storage/sqlite/presence-store.ts';
import { SqliteSealedSipPasswordStore } from './storage/sqlite/sealed-sip-password-store.ts';
import { SqliteTokenStore } from './storage/sqlite/token-store.ts';

/** The push providers configured (FCM and APNs with their credentials; Web Push with a VAPID key from the master key). */
export function pushProviders(config: Config, master: Buffer): { providers: PushProvider[]; webpush: WebPushProvider | null } {
  const p = config.push;
  const providers: PushProvider[] = [];
  if (p.fcmServiceAccount) providers.push(new FcmProvider(readServiceAccount(p.fcmServiceAccount), p.fcmUrl));
  if (p.apnsKeyFile) providers.push(new ApnsProvider({ key: readFileSync(p.apnsKeyFile, 'utf8'), keyId: p.apnsKeyId!, teamId: p.apnsTeamId!, topic: p.apnsTopic, url: p.apnsUrl }));
  const webpush = p.webpush
    ? new WebPushProvider({ vapid: vapidKeys(deriveKey(master, 'webpush-vapid')), subject: p.webpushSubject ?? `mailto:postmaster@${config.realms[0]}`, allowedHosts: p.webpushHosts })
    : null;
  if (webpush) providers.push(webpush);
  return { providers, webpush };
}

export type Accounts = AccountStore & AccountAdmin & CredentialStore;
export type Tokens = SigningKeyStore & RefreshTokenStore & ApiKeyStore;

/** The durable stores: SQLite or PostgreSQL. */
export interface DurableStores {
  kind: 'sqlite' | 'postgres';
  accounts: Accounts;
  location: LocationStore & { commits: number; appended: number };
  tokens: Tokens;
  sealedPasswords: SealedSipPasswordStore;
  phone: PhoneStore;
  presence: PresenceStore;
  /** Stored messages and app sessions (messaging/). */
  messages: MessageStore & AppSessionStore;
  /** The vault and linked accounts (bridge/). */
  bridge: VaultStore & LinkedAccountStore;
  /** Where it is, for the logs (never a password). */
  describe: string;
  close(): Promise<void>;
}

export function databaseFile(config: Config): string {
  return path.join(config.dataDir, 'switchboard.db');
}

export async function openDurable(config: Config): Promise<DurableStores> {
  if (config.storage.database === 'sqlite') {
    const file = databaseFile(config);
    const db: DatabaseSync = openDatabase({ file, durability: config.storage.durability, checkpointsElsewhere: true });
    const checkpointer = new WalCheckpointer(file);
    const location = new SqliteLocationStore(db);
    const presence = new SqlitePresenceStore(db);
    return {
      kind: 'sqlite',
      accounts: new SqliteAccountStore(db),
      location,
      tokens: new SqliteTokenStore(db),
      sealedPasswords: new SqliteSealedSipPasswordStore(db),
      phone: new SqlitePhoneStore(db),
      presence,
      messages: new SqliteMessageStore(db),
      bridge: new SqliteBridgeStore(db),
      describe: databaseFile(config),
      async close() {
        location.close();
        presence.close();
        await checkpointer.close();
        db.close();
      },
    };
  }
  const db: Db = await openPostgres({ url: config.storage.database, schema: config.storage.databaseSchema });
  const location = new PostgresLocationStore(db);
  const presence = new PostgresPresenceStore(db);
  return {
    kind: 'postgres',
    accounts: new PostgresAccountStore(db),
    location,
    tokens: new PostgresTokenStore(db),
    sealedPasswords: new PostgresSealedSipPasswordStore(db),
    phone: new PostgresPhoneStore(db),
    presence,
    messages: new PostgresMessageStore(db),
    bridge: new PostgresBridgeStore(db),
    describe: `${redactUrl(config.storage.database)} schema ${config.storage.databaseSchema}`,
    async close() {
      await location.drain();
      await presence.drain?.();
      await db.end();
    },
  };
}

/** Short-lived shared state and the location index: in-process, or Redis for several nodes. */
export interface CacheStores {
  kind: 'memory' | 'redis';
  cache: Cache & { close?(): void };
  failures: FailureCounter & { close?(): void };
  locationIndex: LocationIndex;
  /** The cluster around a shared location index (Redis: the same adapter); null in process. */
  locationCluster: LocationCluster | null;
  /** The nonce-count tracker for the issuer (in-process: a window of this process's nonces). */
  nonceCounts(issuer: NonceIssuer, nonceTtlSeconds: number): NonceCountTracker;
  describe: string;
  close(): Promise<void>;
}

export function openCache(config: Config, now: () => number, log: Logger): CacheStores {
  if (config.storage.cache === 'memory') {
    const cache = new MemoryCache(now);
    const failures = new MemoryFailureCounter();
    return {
      kind: 'memory',
      cache,
      failures,
      locationIndex: new MemoryLocationIndex(),
      locationCluster: null,
      nonceCounts: (issuer) => new NonceCountWindow(issuer.boot, () => issuer.nextIndex),
      describe: 'in-process',
      async close() {
        cache.close();
        failures.close();
      },
    };
  }
  const redis: Redis = openRedis({ url: config.storage.cache, prefix: config.storage.cachePrefix });
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'Redis error'));
  const locationIndex = new RedisLocationIndex(redis, config.storage.cachePrefix);
  return {
    kind: 'redis',
    cache: new RedisCache(redis),
    failures: new RedisFailureCounter(redis),
    locationIndex,
    locationCluster: locationIndex,
    nonceCounts: (_issuer, ttl) => new RedisNonceCounts(redis, ttl),
    describe: `${redactUrl(config.storage.cache)} prefix ${config.storage.cachePrefix}`,
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** The event bus as a subsystem: in-process, or RabbitMQ shared by every node (and Kazoo's exchanges). */
export interface BusSubsystem extends Subsystem {
  bus: EventBus;
  /** Shared with other nodes (AMQP): publications replicate, the Kazoo directory can run. */
  shared: boolean;
  /** The AMQP bus's figures (null in-process). */
  stats: (() => BusStats) | null;
}

/** `nodeQueue`: this process's queue, its Kazoo Server-ID (kazoo/subsystem.ts). */
export function openBus(config: Config, o: { master: Buffer; nodeQueue: string; log: Logger }): BusSubsystem {
  if (config.bus.url === 'memory') {
    const bus = new InProcessBus(o.log);
    return { name: 'bus', bus, shared: false, stats: null, stop: () => bus.close() };
  }
  const amqp = new AmqpBus({
    url: config.bus.url,
    log: o.log,
    events: SWITCHBOARD_EVENTS,
    exchanges: KAZOO_EXCHANGES,
    nodeQueue: o.nodeQueue,
    outboxLimit: config.bus.outboxLimit,
    authenticator: new BusAuthenticator(deriveKey(o.master, BUS_MAC_KEY)),
    requireAuthentication: config.bus.authenticate,
  });
  return {
    name: 'bus',
    bus: amqp,
    shared: true,
    stats: () => amqp.stats(),
    async start() {
      amqp.start();
      const up = await amqp.ready(5000);
      o.log[up ? 'info' : 'warn'](
        { bus: redactUrl(config.bus.url), serverId: o.nodeQueue, connected: up },
        up ? 'AMQP bus ready' : 'AMQP broker not reachable yet; starting anyway (events wait in the outbox)',
      );
    },
    stop: () => amqp.close(),
  };
}

/**
 * Phone sign-up's providers: codes by Twilio or only logged, captchas checked by a siteverify endpoint or any
 * accepted (the local provider: not for production, and said so at start).
 */
export function phoneProviders(config: Config, log: Logger, now: () => number): PhoneProviders {
  const localProvider = new LocalProvider(
    config.phone.codeFile ? path.resolve(config.phone.codeFile) : path.join(config.dataDir, 'verification-codes.log'),
    log.child({ component: 'phone-provider' }),
    now,
  );
  const providerTimeoutMs = config.phone.providerTimeout * 1000;
  const { twilioUrl, twilioAccountSid, twilioAuthToken, twilioFrom, captchaUrl, captchaSecret, captchaSiteKey } = config.phone;
  const codes =
    config.phone.codeProvider === 'twilio'
      ? new TwilioCodeSender({ baseUrl: twilioUrl, accountSid: twilioAccountSid!, authToken: twilioAuthToken!, from: twilioFrom!, timeoutMs: providerTimeoutMs })
      : localProvider;
  const captcha = captchaUrl ? new SiteverifyCaptcha({ url: captchaUrl, secret: captchaSecret!, siteKey: captchaSiteKey, timeoutMs: providerTimeoutMs }) : localProvider;
  if (codes === localProvider || captcha === localProvider) {
    log.warn(
      { codes: codes.name, captcha: captcha.name, file: localProvider.file },
      'NOT FOR PRODUCTION: phone sign-up uses the local provider: ' +
        (codes === localProvider ? 'verification codes are only logged and written to the file, never sent; ' : '') +
        (captcha === localProvider ? 'any non-empty captcha is accepted; ' : '') +
        'configure --verification-provider twilio and --captcha-verify-url',
    );
  }
  return { codes, push: localProvider, captcha };
}
