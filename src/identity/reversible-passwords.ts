// Reversible SIP passwords: an account-level opt-in for switches that must see the password itself (Kazoo's
// `Auth-Method: password`, Kamailio's kazoo routing without HA1). By default Switchboard keeps only HA1s and argon2id
// hashes; an operator who opts an account in also stores its SIP password sealed with AES-256-GCM under a key derived
// from the master key, the account id bound in as associated data (a sealed value moved to another account does not
// open). The plaintext exists only in memory while answering, and is never logged.
//
// A password changed later (HTTP, login rehash) leaves the sealed copy stale: reveal() checks the opened password
// against the account's current MD5 HA1 and refuses a stale one, so a stale copy is never handed out.

import { timingSafeEqual } from 'node:crypto';
import { computeHa1 } from '../sip/digest.ts';
import type { SealedSipPasswordStore } from '../storage/ports.ts';
import { Sealer } from './seal.ts';

/** deriveKey(master, REVERSIBLE_SIP_PASSWORD_KEY) gives the sealing key. */
export const REVERSIBLE_SIP_PASSWORD_KEY = 'sip-password-reversible';

export type Revealed = { status: 'off' } | { status: 'stale' } | { status: 'ok'; password: string };

export interface ReversibleSipPasswordsOptions {
  store: SealedSipPasswordStore;
  /** 32 bytes: deriveKey(master, REVERSIBLE_SIP_PASSWORD_KEY). */
  key: Buffer;
  /** Seconds a lookup is cached (changes made through this object apply at once). */
  cacheTtlSeconds?: number;
  now?: () => number;
}

export class ReversibleSipPasswords {
  private readonly store: SealedSipPasswordStore;
  private readonly key: Buffer;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, { sealed: string | null; expiresAt: number }>();

  constructor(o: ReversibleSipPasswordsOptions) {
    if (o.key.length !== 32) throw new Error('reversible SIP passwords need a 32-byte key');
    this.store = o.store;
    this.key = o.key;
    this.ttlMs = (o.cacheTtlSeconds ?? 60) * 1000;
    this.now = o.now ?? Date.now;
  }

  private sealer(accountId: string): Sealer {
    return new Sealer(this.key, `sip-password ${accountId}`);
  }

  /** Stores the account's SIP password sealed (opting it in, or replacing the sealed copy). */
  async enable(accountId: string, password: string): Promise<void> {
    if (password.length === 0) throw new Error('empty password');
    const sealed = this.sealer(accountId).seal(password);
    await this.store.putSealedSipPassword(accountId, sealed);
    this.cache.set(accountId, { sealed, expiresAt: this.now() + this.ttlMs });
  }

  /** Opts the account out: the sealed copy is deleted. */
  async disable(accountId: string): Promise<boolean> {
    this.cache.delete(accountId);
    return this.store.deleteSealedSipPassword(accountId);
  }

  async isEnabled(accountId: string): Promise<boolean> {
    return (await this.sealed(accountId)) !== null;
  }

  private async sealed(accountId: string): Promise<string | null> {
    const now = this.now();
    const hit = this.cache.get(accountId);
    if (hit && hit.expiresAt > now) return hit.sealed;
    const sealed = await this.store.getSealedSipPassword(accountId);
    if (this.cache.size >= 100_000) this.cache.clear();
    this.cache.set(accountId, { sealed, expiresAt: now + this.ttlMs });
    return sealed;
  }

  /**
   * The account's SIP password when it opted in and the sealed copy still matches `md5Ha1` (the HA1 of
   * username:realm:password the switch will check against); 'stale' when it no longer does.
   */
  async reveal(accountId: string, username: string, realm: string, md5Ha1: string): Promise<Revealed> {
    const sealed = await this.sealed(accountId);
    if (sealed === null) return { status: 'off' };
    let password: string;
    try {
      password = this.sealer(accountId).open(sealed).toString('utf8');
    } catch {
      return { status: 'stale' };
    }
    const want = Buffer.from(md5Ha1.toLowerCase(), 'latin1');
    const got = Buffer.from(computeHa1('MD5', username, realm, password), 'latin1');
    if (want.length !== got.length || !timingSafeEqual(want, got)) return { status: 'stale' };
    return { status: 'ok', password };
  }

  forget(accountId: string): void {
    this.cache.delete(accountId);
  }
}
