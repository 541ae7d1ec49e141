// A bounded LRU with TTL in front of the CredentialStore: the HA1 lookup on every authenticated REGISTER is a
// Map hit, not a query. Misses are cached briefly too, so a flood of unknown usernames does not become a flood
// of queries. Changes made through the server invalidate at once; changes made behind its back (another
// process writing the database) show after the TTL.

import type { DigestAlgorithm } from '../sip/digest.ts';
import type { CredentialStore, FoundCredential } from '../storage/ports.ts';

type Found = FoundCredential | null;

interface Entry {
  value: Found;
  expiresAt: number;
}

export class CachedCredentialStore implements CredentialStore {
  private readonly map = new Map<string, Entry>();
  private readonly inner: CredentialStore;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly capacity: number;
  private readonly now: () => number;
  hits = 0;
  misses = 0;

  constructor(inner: CredentialStore, ttlSeconds: number, capacity = 500_000, now: () => number = Date.now) {
    this.inner = inner;
    this.ttlMs = ttlSeconds * 1000;
    this.negativeTtlMs = Math.min(this.ttlMs, 5000);
    this.capacity = capacity;
    this.now = now;
  }

  /** A cache hit answers synchronously; a miss returns the store's promise. */
  findSipCredential(authUser: string, realm: string, algorithm: DigestAlgorithm): Found | Promise<Found> {
    const key = authUser + '\u0000' + realm + '\u0000' + algorithm;
    const now = this.now();
    const e = this.map.get(key);
    if (e !== undefined && e.expiresAt > now) {
      this.hits++;
      // Refresh recency: delete + set moves the key to the end of the Map's insertion order.
      this.map.delete(key);
      this.map.set(key, e);
      return e.value;
    }
    this.misses++;
    return this.fill(key, now, authUser, realm, algorithm);
  }

  private async fill(key: string, now: number, authUser: string, realm: string, algorithm: DigestAlgorithm): Promise<Found> {
    const value = await this.inner.findSipCredential(authUser, realm, algorithm);
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, { value, expiresAt: now + (value ? this.ttlMs : this.negativeTtlMs) });
    return value;
  }

  /** Forgets everything cached for an authentication username (all realms and algorithms). */
  invalidateUser(authUser: string): void {
    const prefix = authUser + '\u0000';
    for (const k of this.map.keys()) if (k.startsWith(prefix)) this.map.delete(k);
  }

  clear(): void {
    this.map.clear();
  }
}
