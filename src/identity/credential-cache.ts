// A bounded LRU with TTL in front of the CredentialStore: the HA1 lookup on every authenticated REGISTER is a
// Map hit, not a query. Misses are cached briefly too, so a flood of unknown usernames does not become a flood
// of queries, and concurrent misses for one key share one lookup. Changes made through any node invalidate at
// once on every node (`shareInvalidations`, over the bus); changes made behind the servers' backs (a tool
// writing the database) show after the TTL.

import type { EventBus } from '../bus/event-bus.ts';
import type { DigestAlgorithm } from '../sip/digest.ts';
import type { CredentialStore, FoundCredential } from '../storage/ports.ts';

type Found = FoundCredential | null;

interface Entry {
  value: Found;
  expiresAt: number;
}

export class CachedCredentialStore implements CredentialStore {
  private readonly map = new Map<string, Entry>();
  /** Lookups in flight, so that a burst of REGISTERs for one user costs one query. */
  private readonly loading = new Map<string, Promise<Found>>();
  /** Bumped by every invalidation: a lookup that started before one must not cache what it read. */
  private generation = 0;
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
    const inFlight = this.loading.get(key);
    if (inFlight) return inFlight;
    const p: Promise<Found> = this.fill(key, now, authUser, realm, algorithm).finally(() => {
      if (this.loading.get(key) === p) this.loading.delete(key);
    });
    this.loading.set(key, p);
    return p;
  }

  private async fill(key: string, now: number, authUser: string, realm: string, algorithm: DigestAlgorithm): Promise<Found> {
    const gen = this.generation;
    const value = await this.inner.findSipCredential(authUser, realm, algorithm);
    if (gen !== this.generation) return value;
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, { value, expiresAt: now + (value ? this.ttlMs : this.negativeTtlMs) });
    return value;
  }

  /** Forgets everything cached for an authentication username (all realms and algorithms). */
  invalidateUser(authUser: string): void {
    this.generation++;
    const prefix = authUser + '\u0000';
    for (const k of this.map.keys()) if (k.startsWith(prefix)) this.map.delete(k);
    for (const k of this.loading.keys()) if (k.startsWith(prefix)) this.loading.delete(k);
  }

  clear(): void {
    this.generation++;
    this.map.clear();
    this.loading.clear();
  }
}

const TOPIC = 'account.credentials.changed';

export interface CredentialInvalidation {
  /** These authentication usernames' credentials changed (or appeared): forget them here and on every node. */
  users(authUsers: readonly string[]): void;
  /** An account was disabled or deleted, with whatever devices it had: forget everything, everywhere. */
  all(): void;
  stop(): void;
}

/**
 * Invalidation on every node: each change is applied to this node's cache at once and published on the bus
 * (`account.credentials.changed`), where the other nodes apply it to theirs. Without it a node would go on
 * accepting a changed password, or a deleted account, until its entries expired.
 */
export function shareInvalidations(cache: CachedCredentialStore, bus: EventBus, node: string): CredentialInvalidation {
  const unsubscribe = bus.subscribe(TOPIC, (msg) => {
    const p = msg.payload;
    if (p.node === node) return;
    if (p.all === true) cache.clear();
    else if (Array.isArray(p.authUsers)) for (const u of p.authUsers) if (typeof u === 'string') cache.invalidateUser(u);
  });
  return {
    users(authUsers) {
      for (const u of authUsers) cache.invalidateUser(u);
      bus.publish(TOPIC, { node, authUsers: [...authUsers] });
    },
    all() {
      cache.clear();
      bus.publish(TOPIC, { node, all: true });
    },
    stop: unsubscribe,
  };
}
