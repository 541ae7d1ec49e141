// Access tokens (JWT, RFC 7519) issued to accounts, and their verification for HTTP and SIP (RFC 8898 Bearer).
//
// Verification pins the algorithms (never `none`, never HMAC, so a public key can never be used as an HMAC
// secret), checks signature, exp/nbf, iss and aud, and caches what it validated until the token expires: a
// cached check is a Map lookup (bench/RESULTS.md). Keys come from the local KeyRing or a remote JWKS URL that
// jose fetches, caches and re-fetches when a token names an unknown kid.

import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Account } from '../storage/ports.ts';
import type { KeyRing } from './keys.ts';

export interface TokenConfig {
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  /** Remote JWKS URL: tokens are then verified against that issuer's keys instead of ours. */
  jwksUrl: string | null;
  /** Least time between remote JWKS fetches triggered by unknown kids. */
  jwksCooldownSeconds?: number;
  algorithms: string[];
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

  constructor(cfg: TokenConfig, keys: KeyRing, opts: { cacheMax?: number; now?: () => number } = {}) {
    this.cfg = cfg;
    this.keys = keys;
    this.remote = cfg.jwksUrl ? createRemoteJWKSet(new URL(cfg.jwksUrl), { cooldownDuration: (cfg.jwksCooldownSeconds ?? 30) * 1000, cacheMaxAge: 600_000 }) : null;
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

  /** Verifies a token; throws TokenError('invalid_token') with the reason when it does not hold. */
  async verify(token: string): Promise<AccessClaims> {
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
    if (this.cache.size >= this.cacheMax) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(token, claims);
    return claims;
  }

  /** Local keys; a kid we do not know may have been created by another node a moment ago: re-read once. */
  private async localKeys(token: string): Promise<JWTVerifyGetKey> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      kid = undefined;
    }
    if (kid && !this.keys.hasKid(kid)) await this.keys.refresh(true);
    return this.keys.verificationKeys();
  }

  /** Forgets cached validations (after revocations that must take effect before expiry). */
  clearCache(): void {
    this.cache.clear();
  }
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
