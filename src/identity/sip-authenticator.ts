// Authenticates SIP requests (Kamailio's auth + auth_db split: protocol rules in sip/digest.ts, credentials in
// the CredentialStore, policy here): Digest challenges per configured algorithm sharing one nonce, response
// verification against the stored HA1, stale nonces, nonce-count replay protection, and brute-force lockouts
// (lockout.ts: per account and source, per source, per account for sources it never authenticated from). Beside
// Digest, Bearer tokens (RFC 8898) verified by the TokenService, with RFC 6750's errors.
//
// Failure counters are keyed like HTTP login's (account-service.ts): guesses over SIP and HTTP count together.
// Everything the client chose is bounded (oversizedDirective) and the lockouts are checked before any credential
// is looked up, so a locked source costs no query and no cache entry. 401s to UDP sources are bounded per source
// (challenge-limiter.ts): beyond it they are dropped, not aimed at whoever a forged source address names.

import type { Config, DigestAlgorithm } from '../config.ts';
import { Errors } from '../errors.ts';
import { ThrottledLog, type Logger } from '../log.ts';
import { isPromise, later } from '../maybe-promise.ts';
import { digestChallenge, digestCredentials, oversizedDirective, parseAuthHeader, verifyDigest, type AuthHeader, type DigestCredentials, type NonceCheck, type NonceCountResult, type NonceCountTracker, type NonceIssuer } from '../sip/digest.ts';
import { H, quote, sipError, type SipRequest, type SipResponse } from '../sip/message/index.ts';
import type { Source } from '../sip/transport/types.ts';
import type { CredentialStore, FailureCounter, FoundCredential } from '../storage/ports.ts';
import { accountKey } from './account-service.ts';
import { ChallengeLimiter } from './challenge-limiter.ts';
import { Lockout, type LockoutKeys, type Locked } from './lockout.ts';
import { TokenError, type TokenService } from './tokens.ts';

// On the REGISTER path the in-process adapters answer synchronously; awaiting a plain value would still cost a
// microtask and a promise each time, so values are awaited only when they are promises.

const UNKNOWN_USER_HA1: Record<DigestAlgorithm, string> = {
  MD5: '0'.repeat(32),
  'SHA-256': '0'.repeat(64),
  'SHA-512-256': '0'.repeat(64),
};

/** The Digest response checked against the credential found; unknown users cost the same hash work as known ones, so timing does not tell which names exist. */
function checkResponse(header: AuthHeader, creds: DigestCredentials, found: FoundCredential | null, req: SipRequest): boolean {
  return verifyDigest(header, creds, found ? found.credential.ha1 : UNKNOWN_USER_HA1[creds.algorithm], req.method, req.body);
}

/** What one Digest check is about, handed along its steps. */
interface DigestCheck {
  req: SipRequest;
  source: Source;
  realm: string;
  header: AuthHeader;
  creds: DigestCredentials;
  keys: LockoutKeys;
}

type ValidNonce = Extract<NonceCheck, { valid: true }>;

/** verifyEarly's findings: what it could check before the lockouts answered, and what is left to do. */
interface EarlyCheck {
  nonce: NonceCheck;
  lookup: Promise<FoundCredential | null> | null;
  deferred: boolean;
  found: FoundCredential | null;
  ok: boolean;
  claim: NonceCountResult | Promise<NonceCountResult> | null;
}

export interface SipIdentity {
  accountId: string;
  /** The username the client authenticated as. */
  authUser: string;
  realm: string;
  /** Addresses of record (user@domain) this identity may act for. */
  aors: string[];
  scheme: 'digest' | 'bearer';
}

export type AuthFailure =
  | 'no-credentials'
  | 'malformed'
  | 'unknown-user'
  | 'wrong-password'
  | 'stale-nonce'
  | 'bad-nonce'
  | 'replay'
  | 'locked'
  | 'challenge-limited'
  | 'invalid-token'
  | 'insufficient-scope';

export type AuthOutcome = { ok: true; identity: SipIdentity } | { ok: false; response: SipResponse; reason: AuthFailure };

export interface SipAuthenticatorOptions {
  /** peekSipCredential, when there, answers from a cache without asking the store (see CachedCredentialStore). */
  credentials: CredentialStore & { peekSipCredential?(authUser: string, realm: string, algorithm: DigestAlgorithm): FoundCredential | null | undefined };
  nonces: NonceIssuer;
  nonceCounts: NonceCountTracker;
  failures: FailureCounter;
  /** Built from `failures` and `policy` when not given (server.ts shares one with HTTP login and devices). */
  lockout?: Lockout;
  digest: Config['digest'];
  policy: Config['auth'];
  log: Logger;
  /** Bearer tokens (RFC 8898): accepted when set. */
  bearer?: TokenService | null;
  /** Add a Bearer challenge to 401s (RFC 8898 §2.3) — some Digest clients refuse 401s that carry one. */
  offerBearer?: boolean;
  now?: () => number;
  onFailure?: (reason: AuthFailure) => void;
  /** Called after each successful Digest authentication, on the REGISTER path: must be cheap and must not throw. */
  onDigestAuthenticated?: (identity: SipIdentity) => void;
}

export class SipAuthenticator {
  private readonly o: SipAuthenticatorOptions;
  private readonly lockout: Lockout;
  private readonly challenges: ChallengeLimiter;
  /** Failed checks are logged once each, at most 20 lines a second: a guessing flood must not become a log flood. */
  private readonly failures: ThrottledLog;
  private readonly offered: ReadonlySet<DigestAlgorithm>;
  private readonly now: () => number;

  constructor(o: SipAuthenticatorOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.offered = new Set(o.digest.algorithms);
    this.lockout = o.lockout ?? new Lockout({ failures: o.failures, policy: o.policy, log: o.log, now: o.now });
    this.challenges = new ChallengeLimiter(o.policy.challengeBurst ?? 0, o.policy.challengeRate ?? 0, this.now);
    this.failures = new ThrottledLog(o.log, 20);
  }

  /**
   * Authenticates `req` for `realm`; on failure the outcome carries the response to send (401/403/400).
   * `scope` is what a Bearer token must grant for this request (RFC 8898 §2.2). The outcome comes at once when
   * nothing had to be waited for (in-process lockouts, nonce counts and a cached credential: every Digest check on
   * the embedded path), a promise otherwise: as an async function it cost a promise, a suspension and a microtask
   * per check even then.
   */
  authenticate(req: SipRequest, source: Source, realm: string, scope = 'sip.register'): AuthOutcome | Promise<AuthOutcome> {
    const header = this.pickCredentials(req, realm);
    // No credentials, nothing to check: the challenge goes out without asking the failure counters (a locked address
    // or account meets its lockout on the request that answers it). Over a shared cache that is a round trip saved on
    // every REGISTER's first leg.
    if (header === null) return this.challenge(req, source, realm, false, 'no-credentials');
    if (header === 'malformed') return this.fail(req, 'malformed', 'malformed Authorization');
    if (header.scheme === 'bearer') return this.bearer(req, source, realm, scope, header);
    const long = oversizedDirective(header);
    if (long !== null) {
      this.failures.info({ from: source.address, directive: long }, 'SIP Digest credentials with an oversized directive refused');
      return this.fail(req, 'malformed', `Digest ${long} longer than 256 bytes`);
    }
    const creds = digestCredentials(header);
    if (!creds) return this.fail(req, 'malformed', 'malformed Digest credentials');
    // The lockouts first: the reads leave together (one round trip to a shared cache); in-process they answer at once
    // and a locked source is refused before anything else is done for it.
    const keys = this.lockout.keys(accountKey(creds.username, realm), source.address);
    const verdict = this.lockout.check(keys);
    if (verdict !== 0 && !isPromise(verdict)) return this.locked(req, verdict, { account: creds.username, realm, address: source.address });
    later(verdict); // awaited below, unless an earlier answer goes out
    // With the credential cached, a Digest answer is checked now (nonce, then response: CPU only), and a correct one
    // with a fresh nonce has its count claimed at once: the claim then leaves in the same write to a shared cache as
    // the lockout reads, one round trip for all. A claim made for a locked account or address is harmless (the count
    // is the client's own, on a request we refuse). The store is asked only once the lockouts are known to allow it.
    const early = this.verifyEarly(header, creds, req, realm, verdict === 0);
    const check: DigestCheck = { req, source, realm, header, creds, keys };
    if (verdict === 0) return this.afterLockouts(check, early);
    return verdict.then((v) => (v !== 0 ? this.locked(req, v, { account: creds.username, realm, address: source.address }) : this.afterLockouts(check, early)));
  }

  /** The Digest check once the lockouts allow it: the nonce, the credential, the response, the nonce count. */
  private afterLockouts(c: DigestCheck, early: EarlyCheck): AuthOutcome | Promise<AuthOutcome> {
    const { req, source, realm, header, creds } = c;
    if (!this.answerable(creds)) return this.challenge(req, source, realm, false, 'bad-nonce');
    const { nonce } = early;
    // A nonce we did not issue (or a secret that changed): not the client's fault, just challenge again.
    if (!nonce.valid) return this.challenge(req, source, realm, false, 'bad-nonce');
    if (early.lookup !== null || early.deferred) {
      const lookup = early.lookup ?? this.o.credentials.findSipCredential(creds.username, realm, creds.algorithm);
      if (isPromise(lookup)) return lookup.then((found) => this.responseChecked(c, nonce, found, checkResponse(header, creds, found, req), null));
      return this.responseChecked(c, nonce, lookup, checkResponse(header, creds, lookup, req), null);
    }
    return this.responseChecked(c, nonce, early.found, early.ok, early.claim);
  }

  private responseChecked(c: DigestCheck, nonce: ValidNonce, found: FoundCredential | null, ok: boolean, claim: NonceCountResult | Promise<NonceCountResult> | null): AuthOutcome | Promise<AuthOutcome> {
    if (!ok || found === null) return this.wrongAnswer(c, found);
    // The client knows the password but used an old nonce: re-challenge with stale=true (RFC 7616 §3.3).
    if (nonce.stale) return this.challenge(c.req, c.source, c.realm, true, 'stale-nonce');
    claim ??= this.o.nonceCounts.claim(nonce.info, c.creds.nc ?? 1);
    if (typeof claim === 'string') return this.counted(c, found, claim);
    return claim.then((counted) => this.counted(c, found, counted));
  }

  private async wrongAnswer(c: DigestCheck, found: FoundCredential | null): Promise<AuthOutcome> {
    const reason: AuthFailure = found ? 'wrong-password' : 'unknown-user';
    this.failures.info({ user: c.creds.username, realm: c.realm, from: c.source.address, reason }, 'SIP authentication failed');
    await this.lockout.fail(c.keys);
    return this.challenge(c.req, c.source, c.realm, false, reason);
  }

  private counted(c: DigestCheck, found: FoundCredential, counted: NonceCountResult): AuthOutcome {
    if (counted === 'stale') return this.challenge(c.req, c.source, c.realm, true, 'stale-nonce');
    if (counted === 'replay') {
      this.failures.warn({ user: c.creds.username, realm: c.realm, from: c.source.address, nc: c.creds.nc }, 'digest nonce-count replayed');
      return this.challenge(c.req, c.source, c.realm, false, 'replay');
    }
    this.lockout.succeeded(c.keys, found.credential);
    const identity: SipIdentity = { accountId: found.credential.accountId, authUser: c.creds.username, realm: c.realm, aors: found.aors, scheme: 'digest' };
    this.o.onDigestAuthenticated?.(identity);
    return { ok: true, identity };
  }

  /** A Bearer token, once the source's lockout allows it. */
  private async bearer(req: SipRequest, source: Source, realm: string, scope: string, header: AuthHeader): Promise<AuthOutcome> {
    const keys = this.lockout.sourceKeys(source.address);
    const verdict = this.lockout.check(keys);
    const v = isPromise(verdict) ? await verdict : verdict;
    if (v !== 0) return this.locked(req, v, { address: source.address });
    return this.authenticateBearer(req, source, realm, scope, header.token ?? '', keys);
  }

  /** RFC 8898: a valid token, with the scope, for an account; RFC 6750 errors otherwise. */
  private async authenticateBearer(req: SipRequest, source: Source, realm: string, scope: string, token: string, keys: LockoutKeys): Promise<AuthOutcome> {
    const tokens = this.o.bearer;
    if (!tokens) return this.challenge(req, source, realm, false, 'no-credentials');
    let claims;
    try {
      // The token service also checks the account's and the device's state (credential-validity.ts).
      claims = await tokens.verify(token);
    } catch (e) {
      if (!(e instanceof TokenError)) throw e;
      // A bad token is no password guess, but a flood of them from one address still counts against it.
      await this.lockout.fail(keys);
      this.failures.info({ from: source.address, reason: e.message }, 'SIP Bearer token rejected');
      this.o.onFailure?.('invalid-token');
      const res = sipError(req, Errors.AUTH_ERR_CREDENTIALS, e.message);
      res.append('WWW-Authenticate', `Bearer realm=${quote(realm)}, error="invalid_token", error_description=${quote(e.message)}`);
      return { ok: false, response: res, reason: 'invalid-token' };
    }
    const granted = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    if (!granted.includes(scope)) {
      this.o.onFailure?.('insufficient-scope');
      const res = sipError(req, Errors.AUTH_ERR_SCOPE, 'insufficient scope');
      res.append('WWW-Authenticate', `Bearer realm=${quote(realm)}, error="insufficient_scope", scope=${quote(scope)}`);
      return { ok: false, response: res, reason: 'insufficient-scope' };
    }
    // The token's own user and realm only (another issuer's are mapped in tokens.ts): never the request's realm, so
    // a token without them registers nothing.
    const username = typeof claims.username === 'string' ? claims.username : null;
    const tokenRealm = typeof claims.realm === 'string' ? claims.realm : null;
    return {
      ok: true,
      identity: {
        accountId: claims.sub,
        authUser: username ?? claims.sub,
        realm: tokenRealm ?? realm,
        aors: username && tokenRealm ? [`${username}@${tokenRealm}`] : [],
        scheme: 'bearer',
      },
    };
  }

  /** An answer in an algorithm we offer, with qop unless we accept RFC 2069 answers: else it is challenged again. */
  private answerable(creds: DigestCredentials): boolean {
    return this.offered.has(creds.algorithm) && (creds.qop !== null || this.o.digest.allowNoQop);
  }

  /**
   * The part of a Digest check that needs no I/O when the credential is cached: the nonce, the response, and for a
   * correct response with a fresh nonce the nonce-count claim (started, not awaited). With `mayLoad` (the lockouts
   * already allow the request) a lookup the cache cannot answer at once is started and left running for the caller;
   * without it, only the cache is asked and the lookup is `deferred` until the lockouts are known.
   */
  private verifyEarly(header: AuthHeader, creds: DigestCredentials, req: SipRequest, realm: string, mayLoad: boolean): EarlyCheck {
    const nonce = this.o.nonces.check(creds.nonce, this.now());
    let found: FoundCredential | null = null;
    let ok = false;
    let claim: NonceCountResult | Promise<NonceCountResult> | null = null;
    if (!nonce.valid || !this.answerable(creds)) return { nonce, lookup: null, deferred: false, found, ok, claim };
    const { credentials } = this.o;
    let lookup: FoundCredential | null | Promise<FoundCredential | null> | undefined;
    if (mayLoad) lookup = credentials.findSipCredential(creds.username, realm, creds.algorithm);
    else if (credentials.peekSipCredential) lookup = credentials.peekSipCredential(creds.username, realm, creds.algorithm);
    if (lookup === undefined) return { nonce, lookup: null, deferred: true, found, ok, claim };
    if (isPromise(lookup)) {
      later(lookup); // awaited by the caller, unless an earlier answer goes out
      return { nonce, lookup, deferred: false, found, ok, claim };
    }
    found = lookup;
    ok = checkResponse(header, creds, found, req);
    if (ok && found && !nonce.stale) {
      claim = this.o.nonceCounts.claim(nonce.info, creds.nc ?? 1);
      later(claim); // awaited by the caller, unless it refuses first
    }
    return { nonce, lookup: null, deferred: false, found, ok, claim };
  }

  /**
   * The Authorization value answering us: a Bearer token when one is present (and Bearer is on), else the first
   * Digest one for `realm` whose algorithm we offer, else the first for `realm`. null when none is for us,
   * 'malformed' when one cannot be parsed.
   */
  private pickCredentials(req: SipRequest, realm: string): AuthHeader | 'malformed' | null {
    const values = req.getAll(H.authorization);
    if (values.length === 0) return null;
    let fallback: AuthHeader | null = null;
    let malformed = false;
    for (const v of values) {
      const h = parseAuthHeader(v);
      if (!h) {
        malformed = true;
        continue;
      }
      if (h.scheme === 'bearer' && this.o.bearer && h.token) return h;
      if (h.scheme !== 'digest') continue;
      const r = h.params.get('realm');
      if (r === undefined || r.toLowerCase() !== realm) continue;
      const named = (h.params.get('algorithm') ?? 'MD5').toUpperCase();
      const alg = named.endsWith('-SESS') ? named.slice(0, -5) : named;
      if (this.offered.has(alg as DigestAlgorithm)) return h;
      fallback ??= h;
    }
    if (fallback) return fallback;
    return malformed ? 'malformed' : null;
  }

  /** 401 with one challenge per configured algorithm, strongest first as configured, sharing one nonce. */
  challengeResponse(req: SipRequest, realm: string, stale: boolean): SipResponse {
    const res = sipError(req, Errors.AUTH_ERR_CREDENTIALS);
    // A retransmitted REGISTER may just get a fresh challenge (as Kamailio's stateless auth_challenge does):
    // nothing to keep for 32 s per challenge.
    res.stateless = true;
    const { nonce, info } = this.o.nonces.issue(this.now());
    this.o.nonceCounts.issued(info);
    for (const algorithm of this.o.digest.algorithms) {
      res.append('WWW-Authenticate', digestChallenge({ realm, nonce, algorithm, stale }));
    }
    // After the Digest challenges: MD5-era clients read only the first one (docs/digest-clients.md).
    if (this.o.bearer && this.o.offerBearer) res.append('WWW-Authenticate', `Bearer realm=${quote(realm)}, scope="sip.register"`);
    return res;
  }

  private challenge(req: SipRequest, source: Source, realm: string, stale: boolean, reason: AuthFailure): AuthOutcome {
    if (reason !== 'no-credentials') this.o.onFailure?.(reason);
    if (source.transport === 'UDP' && this.challenges.enabled && !this.lockout.isTrusted(source.address)) {
      const take = this.challenges.take(source.address);
      if (take !== 'ok') {
        // No nonce issued, nothing serialized: the flood costs as little as it can.
        this.o.onFailure?.('challenge-limited');
        if (take === 'start') {
          this.o.log.warn({ from: source.address, burst: this.o.policy.challengeBurst, perSecond: this.o.policy.challengeRate }, 'too many challenges for one UDP source: dropping them (a flood, or a forged source address)');
        }
        const res = sipError(req, Errors.AUTH_ERR_CREDENTIALS);
        res.drop = true;
        return { ok: false, response: res, reason: 'challenge-limited' };
      }
    }
    return { ok: false, response: this.challengeResponse(req, realm, stale), reason };
  }

  private fail(req: SipRequest, reason: 'malformed', detail: string): AuthOutcome {
    this.o.onFailure?.(reason);
    return { ok: false, response: sipError(req, Errors.AUTH_ERR_MALFORMED, detail), reason };
  }

  private locked(req: SipRequest, lock: Locked, who: Record<string, string>): AuthOutcome {
    this.o.onFailure?.('locked');
    this.o.log.debug({ ...who, seconds: lock.seconds, scope: lock.scope }, 'request refused: locked out');
    const res = sipError(req, Errors.AUTH_ERR_LOCKED, 'too many failed authentication attempts');
    res.append('Retry-After', String(lock.seconds));
    return { ok: false, response: res, reason: 'locked' };
  }
}
