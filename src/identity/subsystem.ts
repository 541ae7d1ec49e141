// Identity as one subsystem (lifecycle.ts): accounts, credentials and their cache, lockout, signing keys and
// tokens, API keys, reversible SIP passwords, phone sign-up, and the SIP authenticator (Digest nonces, Bearer).
// Built from ports: the stores, the short-lived cache, the bus and the phone providers that server.ts picked.
//
// What an account change means for the rooms built after this one (its bindings, its presence) goes out through
// hooks they subscribe to.

import { randomBytes } from 'node:crypto';
import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import { Hook, type Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { deriveKey } from '../secrets.ts';
import { NonceIssuer, type NonceCountTracker } from '../sip/digest.ts';
import type {
  AccountAdmin,
  AccountStore,
  ApiKeyStore,
  Cache,
  CredentialStore,
  FailureCounter,
  PhoneStore,
  RefreshTokenStore,
  SealedSipPasswordStore,
  SigningKeyStore,
} from '../storage/ports.ts';
import { AccountService } from './account-service.ts';
import { ApiKeys } from './api-keys.ts';
import { CachedCredentialStore, shareInvalidations, type CredentialInvalidation } from './credential-cache.ts';
import { CredentialValidity } from './credential-validity.ts';
import { KeyRing } from './keys.ts';
import { Lockout } from './lockout.ts';
import { PasswordHasher } from './passwords.ts';
import { createPhoneServices, type PhoneProviders, type PhoneServices } from './phone/index.ts';
import { createRateLimiters, parseLimiterSpecs } from './rate-limiter.ts';
import { RefreshTokens } from './refresh-tokens.ts';
import { ReversibleSipPasswords, REVERSIBLE_SIP_PASSWORD_KEY } from './reversible-passwords.ts';
import { Sealer } from './seal.ts';
import { SipAuthenticator } from './sip-authenticator.ts';
import { TokenService } from './tokens.ts';

export type AccountStores = AccountStore & AccountAdmin & CredentialStore;

export interface IdentityOptions {
  config: Config;
  node: string;
  /** The deployment's master key (every secret here is derived from it). */
  master: Buffer;
  stores: {
    accounts: AccountStores;
    tokens: SigningKeyStore & RefreshTokenStore & ApiKeyStore;
    sealedPasswords: SealedSipPasswordStore;
    phone: PhoneStore;
  };
  /** Short-lived state: failure counts, sessions and rate-limit buckets, nonce counts (memory or Redis). */
  cache: Cache;
  failures: FailureCounter;
  nonceCounts: (issuer: NonceIssuer, nonceTtlSeconds: number) => NonceCountTracker;
  phoneProviders: PhoneProviders;
  bus: EventBus;
  metrics: Metrics;
  /** Clock of the phone sign-up services (tests move it). */
  now: () => number;
  log: Logger;
}

export interface Identity extends Subsystem {
  readonly accounts: AccountStores;
  readonly credentials: CachedCredentialStore;
  readonly accountService: AccountService;
  readonly hasher: PasswordHasher;
  readonly keys: KeyRing;
  readonly tokens: TokenService;
  readonly refresh: RefreshTokens;
  readonly apiKeys: ApiKeys;
  readonly sipPasswords: ReversibleSipPasswords;
  readonly phone: PhoneServices;
  readonly authenticator: SipAuthenticator;
  /** Whether a local account of this name exists and is enabled (cached; credential-validity.ts). */
  accountExists(username: string, realm: string): boolean | Promise<boolean>;
  /** An account's devices must re-register: its bindings go (phone sign-up: re-registration, lock, unlink). */
  readonly disconnect: Hook<string>;
  /** An account was deleted (its AOR): its bindings and presence go. */
  readonly accountDeleted: Hook<string>;
  /** An account's password changed (its id): its app sessions end. */
  readonly passwordChanged: Hook<string>;
  /** Every new password with the one before when the change was made with it (the bridge's vault rewraps). */
  readonly passwordSet: Hook<{ accountId: string; password: string; previous: string | null }>;
  /** Accounts were disabled, enabled or deleted: every cached credential and validity goes, here and on every node. */
  forgetAccounts(): void;
}

export function createIdentity(o: IdentityOptions): Identity {
  const { config, master, log } = o;
  const accounts = o.stores.accounts;
  const tokenStore = o.stores.tokens;
  const credentials = new CachedCredentialStore(accounts, config.storage.credentialCacheTtl, { maxBytes: config.storage.credentialCacheBytes });
  const invalidate: CredentialInvalidation = shareInvalidations(credentials, o.bus, o.node);
  // One lockout for SIP Digest, HTTP login and device Basic authentication (lockout.ts).
  const passwordChanged = new Hook<string>();
  const passwordSet = new Hook<{ accountId: string; password: string; previous: string | null }>();
  const lockout = new Lockout({ failures: o.failures, policy: config.auth, log: log.child({ component: 'auth' }) });

  // Accounts, password hashing, signing keys (sealed under the master key), tokens, API keys.
  const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
  const keys = new KeyRing({
    store: tokenStore,
    sealer: new Sealer(deriveKey(master, 'jwt-signing-keys'), 'jwt-private-key'),
    alg: config.tokens.algorithm,
    tokenTtlSeconds: config.tokens.accessTtl,
  });
  o.metrics.observeSigningKeys(() => keys.reloads);
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
  const stopValidity = validity.follow(o.bus);
  apiKeys.acceptWith((key) => validity.account(key.accountId, key.createdAt));
  // Here at once, not only when our own event comes back from the bus (over AMQP a broker round trip later): a call
  // to an account just created must not meet the cached "no such user".
  const credentialsChanged = (authUsers: readonly string[]) => {
    invalidate.users(authUsers);
    validity.clear();
  };

  // Reversible SIP passwords (operator opt-in per account, sealed).
  const sipPasswords = new ReversibleSipPasswords({
    store: o.stores.sealedPasswords,
    key: deriveKey(master, REVERSIBLE_SIP_PASSWORD_KEY),
    cacheTtlSeconds: config.storage.credentialCacheTtl,
  });
  const accountService = new AccountService({
    accounts,
    credentials: accounts,
    invalidateCredentials: credentialsChanged,
    hasher,
    failures: o.failures,
    lockout,
    policy: config.auth,
    defaultRealm: config.realms[0],
    log: log.child({ component: 'identity' }),
    // An account opted into a reversible SIP password gets the new one sealed too, so switches never see a stale one.
    onPasswordChanged: async (account, password, previous) => {
      if (await sipPasswords.isEnabled(account.id)) await sipPasswords.enable(account.id, password);
      await passwordSet.run({ accountId: account.id, password, previous });
      await passwordChanged.run(account.id);
    },
  });

  // Phone sign-up: sessions and rate-limit buckets in the cache, phone accounts in the durable store, codes and
  // captchas through the providers server.ts picked.
  const disconnect = new Hook<string>();
  const phone = createPhoneServices(
    {
      store: o.stores.phone,
      accounts,
      cache: o.cache,
      limiters: createRateLimiters(parseLimiterSpecs(config.phone.rateLimits), o.cache, o.now),
      tokens,
      realm: config.realms[0],
      maxDevices: config.phone.maxDevices,
      linkKey: deriveKey(master, 'phone-link-code'),
      now: o.now,
      log: log.child({ component: 'phone' }),
      invalidate: credentialsChanged,
      disconnect: (aor) => disconnect.run(aor),
      lockout,
    },
    o.phoneProviders,
    {
      pacing: { sms: config.phone.smsPacing, voice: config.phone.voicePacing, check: config.phone.checkPacing },
      codeKey: deriveKey(master, 'phone-verification-code'),
      sweepSeconds: config.phone.sweepInterval,
    },
  );
  // Device tokens are checked against their device too (it exists, unlocked, the same device), over HTTP and SIP alike.
  tokens.acceptWith(validity.tokenCheck(config.tokens.jwksUrl !== null, phone.devices.acceptBearer));

  // Digest: nonces keyed from the master key; nonce counts tracked in the cache.
  const nonces = new NonceIssuer(deriveKey(master, 'digest-nonce'), config.digest.nonceTtl, randomBytes(4).readUInt32BE(0));
  const m = o.metrics;
  const authenticator = new SipAuthenticator({
    credentials,
    nonces,
    nonceCounts: o.nonceCounts(nonces, config.digest.nonceTtl),
    failures: o.failures,
    lockout,
    digest: config.digest,
    policy: config.auth,
    log: log.child({ component: 'auth' }),
    bearer: config.tokens.sipBearer === 'off' ? null : tokens,
    offerBearer: config.tokens.sipBearer === 'offer',
    onFailure: (reason) => m.authFailures.inc(reason),
    onDigestAuthenticated: phone.devices.onSipAuthenticated,
  });

  return {
    name: 'identity',
    accounts,
    credentials,
    accountService,
    hasher,
    keys,
    tokens,
    refresh,
    apiKeys,
    sipPasswords,
    phone,
    authenticator,
    disconnect,
    accountDeleted: new Hook<string>(),
    passwordChanged,
    passwordSet,
    accountExists: (username, realm) => validity.exists(username, realm),
    forgetAccounts() {
      invalidate.all();
      validity.clear();
    },
    async start() {
      await keys.load();
    },
    stop() {
      credentials.close();
      invalidate.stop();
      stopValidity();
      phone.close();
    },
  };
}
