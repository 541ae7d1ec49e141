// Access tokens (JWT, RFC 7519) issued to accounts, and their verification for HTTP and SIP (RFC 8898 Bearer).
//
// Verification pins the algorithms (never `none`, never HMAC, so a public key can never be used as an HMAC
// secret), checks signature, exp/nbf, iss and aud, and caches what it validated until the token expires: a
// cached check is a Map lookup (bench/RESULTS.md). Keys come from the local KeyRing or a remote JWKS URL that
// jose fetches, caches and re-fetches when a token names an unknown kid.
//
// Another issuer's tokens (remote JWKS) are not ours: their claims are mapped, never taken verbatim. The user name
// comes from the configured claim, the realm is the configured one or a configured claim naming a realm we serve
// (never the request's), their roles count only through the configured mapping to ours, their scopes only where
// they name ours (sip.register, presence), and `dev`/`dcr` (our device binding) are dropped.
//
// Every verified token, cached or not, then passes the acceptance check (acceptWith): whether its account still
// accepts it (identity/credential-validity.ts).

import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { isPromise } from '../maybe-promise.ts';
import type { Account } from '../storage/ports.ts';
import type { KeyRing } from './keys.ts';

export interface TokenConfig {
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  /** Remote JWKS URL: tokens are then verified against that issuer's keys instead of ours. */
  jwksUrl: string | null;
  /** Least time between key reloads triggered by unknown kids (remote JWKS fetches, or local key store reads). */
  jwksCooldownSeconds?: number;
  algorithms: string[];
  /** How another issuer's claims map to ours; required with jwksUrl. */
  remote?: RemoteClaims | null;
}

export interface RemoteClaims {
  /** The claim holding the user name (e.g. preferred_username). */
  usernameClaim: string;
  /** The realm of every token of that issuer; or null, and then realmClaim names it. */
  realm: string | null;
  realmClaim: string | null;
  /** Realms we serve: a realm read from a claim must be one of them. */
  realms: readonly string[];
  /** The claim holding the issuer's roles, a dotted path into the payload (Keycloak: realm_access.roles). */
  rolesClaim: string;
  /** The issuer's role names → ours; any other role is ignored. */
  roleMap: Readonly<Record<string, string>>;
}

/** A user name as our accounts have them (identity/accounts.ts): SIP user characters, no '@', so the AOR is user@realm. */
const REMOTE_USER_RE = /^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]{1,128}$/;

/** Scopes another issuer may grant: ours that carry no privilege beyond the user's own registrations and presence. */
const REMOTE_SCOPES = ['sip.register', 'presence'];

/** Loopback hosts, where a JWKS URL may be plain http (tests, a sidecar). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Why a JWKS URL is not acceptable, or null: https only, except on loopback (keys fetched in clear could be swapped). */
export function jwksUrlProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'jwks-url is not a URL';
  }
  if (u.protocol === 'https:') return null;
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return null;
  return 'jwks-url must be https:// (plain http only on loopback: keys fetched in clear can be replaced on the way)';
}

export interface AccessClaims extends JWTPayload {
  sub: string;
  exp: number;
  username?: string;
  realm?: string;
  roles?: string[];
  scope?: string;
}

/** Why a token was refused, in RFC 6750's vocabulary. */
export class TokenError extends Error {
  readonly error: 'invalid_token' | 'insufficient_scope';
  constructor(error: 'invalid_token' | 'insufficient_scope', description: string) {
    super(description);
    this.error = error;
  }
}

export function scopesFor(account: Account): string[] {
  const scopes = ['sip.register', 'presence'];
  if (account.roles.includes('admin')) scopes.push('admin');
  return scopes;
}

export class TokenService {
  private readonly cfg: TokenConfig;
  private readonly keys: KeyRing;
  private readonly remote: JWTVerifyGetKey | null;
  private readonly cache = new Map<string, AccessClaims>();
  private readonly cacheMax: number;
  private readonly now: () => number;
  cacheHits = 0;
  private readonly remoteClaims: RemoteClaims | null;
  private accept: ((claims: AccessClaims) => boolean | Promise<boolean>) | null = null;
  private lastKidReload = -Infinity;
  private readonly kidCooldownMs: number;

  constructor(cfg: TokenConfig, keys: KeyRing, opts: { cacheMax?: number; now?: () => number } = {}) {
    this.cfg = cfg;
    this.keys = keys;
    if (cfg.jwksUrl) {
      const problem = jwksUrlProblem(cfg.jwksUrl);
      if (problem) throw new Error(problem);
      if (!cfg.remote) throw new Error('a remote JWKS needs a claim mapping (user name claim and realm)');
    }
    this.remoteClaims = cfg.jwksUrl ? cfg.remote! : null;
    this.remote = cfg.jwksUrl ? createRemoteJWKSet(new URL(cfg.jwksUrl), { cooldownDuration: (cfg.jwksCooldownSeconds ?? 30) * 1000, cacheMaxAge: 600_000 }) : null;
    this.kidCooldownMs = (cfg.jwksCooldownSeconds ?? 30) * 1000;
    this.cacheMax = opts.cacheMax ?? 100_000;
    this.now = opts.now ?? Date.now;
  }

  async issue(account: Account, extra: Record<string, unknown> = {}): Promise<{ token: string; expiresIn: number; claims: AccessClaims }> {
    const key = this.keys.signingKey();
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.cfg.accessTtlSeconds;
    const claims: AccessClaims = {
      sub: account.id,
      username: account.username,
      realm: account.realm,
      roles: account.roles,
      scope: scopesFor(account).join(' '),
      ...extra,
      exp,
    };
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.cfg.issuer)
      .setAudience(this.cfg.audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key.privateKey);
    return { token, expiresIn: this.cfg.accessTtlSeconds, claims };
  }

  /** A further check of every verified token, cached or not (false: invalid_token "token revoked"). */
  acceptWith(check: (claims: AccessClaims) => boolean | Promise<boolean>): void {
    this.accept = check;
  }

  /** Verifies a token; throws TokenError('invalid_token') with the reason when it does not hold. */
  async verify(token: string): Promise<AccessClaims> {
    const claims = await this.validate(token);
    if (this.accept) {
      const ok = this.accept(claims);
      if (!(isPromise(ok) ? await ok : ok)) throw new TokenError('invalid_token', 'token revoked');
    }
    return claims;
  }

  private async validate(token: string): Promise<AccessClaims> {
    const nowSec = this.now() / 1000;
    const cached = this.cache.get(token);
    if (cached !== undefined) {
      if (cached.exp > nowSec) {
        this.cacheHits++;
        return cached;
      }
      this.cache.delete(token);
    }
    let claims: AccessClaims;
    try {
      const keys = this.remote ?? (await this.localKeys(token));
      const r = await jwtVerify(token, keys, {
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        algorithms: this.cfg.algorithms,
        requiredClaims: ['sub', 'exp'],
        clockTolerance: 5,
        currentDate: new Date(this.now()),
      });
      claims = r.payload as AccessClaims;
    } catch (e) {
      throw new TokenError('invalid_token', describe(e));
    }
    if (this.remoteClaims) claims = mapRemote(claims, this.remoteClaims);
    if (this.cache.size >= this.cacheMax) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(token, claims);
    return claims;
  }

  /**
   * Local keys; a kid we do not know may have been created by another node a moment ago: re-read the store, but at
   * most once per cooldown. Without the cooldown every token with a made-up kid cost a query of the signing keys (a
   * flood of them, a flood of queries); with it such a flood costs one reload per cooldown, and a key another node
   * has just rotated in is still found within the cooldown (or the ring's periodic reload, whichever comes first).
   */
  private async localKeys(token: string): Promise<JWTVerifyGetKey> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      kid = undefined;
    }
    if (kid && !this.keys.hasKid(kid)) {
      const now = this.now();
      if (now - this.lastKidReload >= this.kidCooldownMs) {
        this.lastKidReload = now;
        await this.keys.refresh(true);
      }
    }
    return this.keys.verificationKeys();
  }

  /** Forgets cached validations (after revocations that must take effect before expiry). */
  clearCache(): void {
    this.cache.clear();
  }
}

/** Another issuer's claims in our terms (see the top of the file); invalid_token when the user or realm is missing. */
function mapRemote(p: JWTPayload, m: RemoteClaims): AccessClaims {
  const username = p[m.usernameClaim];
  if (typeof username !== 'string' || !REMOTE_USER_RE.test(username)) throw new TokenError('invalid_token', `claim ${m.usernameClaim} missing or invalid`);
  let realm = m.realm;
  if (realm === null) {
    const claimed = m.realmClaim ? p[m.realmClaim] : undefined;
    if (typeof claimed !== 'string' || !m.realms.includes(claimed.toLowerCase())) throw new TokenError('invalid_token', `claim ${m.realmClaim} missing or not a realm served here`);
    realm = claimed.toLowerCase();
  }
  let theirs: unknown = p;
  for (const part of m.rolesClaim.split('.')) theirs = theirs !== null && typeof theirs === 'object' ? (theirs as Record<string, unknown>)[part] : undefined;
  const roles = Array.isArray(theirs) ? [...new Set(theirs.filter((r): r is string => typeof r === 'string' && Object.hasOwn(m.roleMap, r)).map((r) => m.roleMap[r]))] : [];
  const granted = typeof p.scope === 'string' ? p.scope.split(' ').filter((s) => REMOTE_SCOPES.includes(s)) : [];
  if (roles.includes('admin')) granted.push('admin');
  return {
    iss: p.iss,
    aud: p.aud,
    sub: p.sub!,
    exp: p.exp!,
    ...(typeof p.iat === 'number' ? { iat: p.iat } : {}),
    username,
    realm,
    roles,
    scope: granted.join(' '),
  };
}

function describe(e: unknown): string {
  if (e instanceof errors.JWTExpired) return 'token expired';
  if (e instanceof errors.JWTClaimValidationFailed) return `claim ${e.claim} invalid`;
  if (e instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (e instanceof errors.JWSSignatureVerificationFailed) return 'signature invalid';
  if (e instanceof errors.JWKSNoMatchingKey) return 'no key matches the token';
  if (e instanceof errors.JWTInvalid || e instanceof errors.JWSInvalid || e instanceof errors.JOSENotSupported) return 'malformed token';
  return 'token invalid';
}
