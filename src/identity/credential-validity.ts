// When a credential stops being accepted. Every account carries a "valid after" instant (durable in the store,
// `credentialsValidAfter`): an access token issued (iat) or an API key created at or before it is refused, as is
// every credential of a disabled or deleted account. Disabling an account moves the instant to now, so its tokens
// die at once and stay dead when it is enabled again; refresh tokens are revoked in the store beside it. Device
// tokens are further bound to their device (its creation instant, `dcr`, is the device's own "valid after": a
// removed device's id given to a new device does not revive old tokens; a locked or removed device refuses them:
// phone/devices.ts).
//
// The check runs wherever a token or API key is accepted (TokenService.verify, ApiKeys.verify: HTTP, SIP Bearer,
// the event stream). It is a Map lookup: the account's state is cached for the credential cache's TTL and the
// cache is emptied on every node whenever account credentials change anywhere (`account.credentials.changed` on
// the bus, the event the Digest credential cache already follows), so a disabled account is refused at once on
// every node, and a Bearer REGISTER costs a query only on the first use after a change (or TTL) per account.

import type { EventBus } from '../bus/event-bus.ts';
import type { Account, AccountStore } from '../storage/ports.ts';
import type { AccessClaims } from './tokens.ts';

interface State {
  /** false: disabled or deleted (for names: a local account of that name is disabled). */
  live: boolean;
  validAfter: number;
  expiresAt: number;
}

type Lookup = Pick<AccountStore, 'findById' | 'findByName'>;

export class CredentialValidity {
  private readonly map = new Map<string, State>();
  private readonly loading = new Map<string, Promise<State>>();
  /** Bumped by every clear: a lookup that started before one must not cache what it read. */
  private generation = 0;
  private readonly accounts: Lookup;
  private readonly ttlMs: number;
  private readonly capacity: number;
  private readonly now: () => number;
  lookups = 0;

  constructor(accounts: Lookup, ttlSeconds: number, opts: { capacity?: number; now?: () => number } = {}) {
    this.accounts = accounts;
    this.ttlMs = ttlSeconds * 1000;
    this.capacity = opts.capacity ?? 100_000;
    this.now = opts.now ?? Date.now;
  }

  /** Whether a credential of account `id` issued at `issuedAt` (epoch ms) is still good: the account exists, is enabled and has not revoked it. */
  account(id: string, issuedAt: number): boolean | Promise<boolean> {
    return this.judge('i' + id, issuedAt, () => this.accounts.findById(id), false);
  }

  /**
   * The same for a remote issuer's user, known by name: good unless a local account of that name is disabled or
   * revoked its credentials after `issuedAt` (without a local account the issuer alone answers for its tokens).
   */
  name(username: string, realm: string, issuedAt: number): boolean | Promise<boolean> {
    return this.judge('n' + username + '\u0000' + realm, issuedAt, () => this.accounts.findByName(username, realm), true);
  }

  /**
   * Whether a local account of this name exists and is enabled: the proxy's test for 404 on every INVITE, a Map
   * lookup rather than a store read per call (that read was 5 % of the proxy's busy CPU in bench:calls). A missing
   * name is remembered for at most 5 s, as the credential cache does, so an account added by another process (a
   * bulk import) becomes callable as soon as it can register; changes made through any node clear it at once.
   */
  exists(username: string, realm: string): boolean | Promise<boolean> {
    return this.judge('e' + username + '\u0000' + realm, Infinity, () => this.accounts.findByName(username, realm), false, 5000);
  }

  private judge(key: string, issuedAt: number, load: () => Promise<Account | null>, liveWhenMissing: boolean, missingTtlMs = this.ttlMs): boolean | Promise<boolean> {
    const e = this.map.get(key);
    if (e !== undefined && e.expiresAt > this.now()) return e.live && issuedAt > e.validAfter;
    let p = this.loading.get(key);
    if (p === undefined) {
      p = this.fill(key, load, liveWhenMissing, missingTtlMs).finally(() => {
        if (this.loading.get(key) === p) this.loading.delete(key);
      });
      this.loading.set(key, p);
    }
    return p.then((s) => s.live && issuedAt > s.validAfter);
  }

  private async fill(key: string, load: () => Promise<Account | null>, liveWhenMissing: boolean, missingTtlMs: number): Promise<State> {
    const gen = this.generation;
    this.lookups++;
    const a = await load();
    const s: State = a
      ? { live: !a.disabled, validAfter: a.credentialsValidAfter, expiresAt: this.now() + this.ttlMs }
      : { live: liveWhenMissing, validAfter: 0, expiresAt: this.now() + Math.min(this.ttlMs, missingTtlMs) };
    if (gen !== this.generation) return s;
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, s);
    return s;
  }

  /** Forgets every cached state (after an account changed here, or on another node). */
  clear(): void {
    this.generation++;
    this.map.clear();
    this.loading.clear();
  }

  /**
   * Follows the credential-change events of every node (credential-cache.ts publishes them): any change empties the
   * cache. Those events name authentication usernames, not accounts, and are rare beside uses: forgetting all is
   * simpler than mapping them and costs one query per active account afterwards.
   */
  follow(bus: EventBus): () => void {
    return bus.subscribe('account.credentials.changed', () => this.clear());
  }

  /**
   * The acceptance check of an access token (TokenService.acceptWith): the account's state against its iat, then,
   * for a device token, `device` (the device still exists, unlocked, and is the one the token was issued to).
   * `remote`: tokens of another issuer, whose `sub` is not our account id; their user is known by name.
   */
  tokenCheck(remote: boolean, device?: (claims: AccessClaims) => boolean | Promise<boolean>): (claims: AccessClaims) => boolean | Promise<boolean> {
    return (claims) => {
      const issuedAt = typeof claims.iat === 'number' ? claims.iat * 1000 : 0;
      const ok = remote ? (claims.username && claims.realm ? this.name(claims.username, claims.realm, issuedAt) : false) : this.account(claims.sub, issuedAt);
      if (!device || claims.dev === undefined) return ok;
      if (ok === false) return false;
      if (ok === true) return device(claims);
      return ok.then((v) => v && device(claims));
    };
  }
}
