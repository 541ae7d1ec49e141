// A bounded LRU with TTL in front of the CredentialStore: the HA1 lookup on every authenticated REGISTER is a
// Map hit, not a query. Misses are cached briefly too, so a flood of unknown usernames does not become a flood
// of queries, and concurrent misses for one key share one lookup. Changes made through any node invalidate at
// once on every node (`shareInvalidations`, over the bus); changes made behind the servers' backs (a tool
// writing the database) show after the TTL.
//
// Both halves are bounded by (estimated) bytes, not just entries, and swept of expired entries: usernames are the
// client's choice. Unknown users get their own LRU with an eighth of the budget, so a flood of random names evicts
// only other random names, never the accounts that are really registering (each eviction of those would be a
// store query on their next REGISTER).

import type { EventBus } from '../bus/event-bus.ts';
import type { DigestAlgorithm } from '../sip/digest.ts';
import type { CredentialStore, FoundCredential } from '../storage/ports.ts';

type Found = FoundCredential | null;

interface Entry {
  value: Found;
  expiresAt: number;
  bytes: number;
  /** Hit since it was inserted or last given its second chance (set at creation: adding it later reshapes). */
  used: boolean;
}

/**
 * Heap of one entry beyond its strings (Map slot, entry and result objects, the AOR array): ~260 bytes measured
 * with 100k entries (heapUsed before/after), rounded up.
 */
const ENTRY_OVERHEAD = 320;

/** Estimated bytes an entry holds: strings at two bytes a character (V8 keeps ASCII at one; this errs high). */
function entryBytes(key: string, value: Found): number {
  let n = ENTRY_OVERHEAD + key.length * 2;
  if (value) {
    n += (value.credential.accountId.length + value.credential.authUser.length + value.credential.realm.length + value.credential.ha1.length) * 2;
    for (const aor of value.aors) n += aor.length * 2 + 16;
  }
  return n;
}

/**
 * An approximate LRU bounded by bytes: a Map in insertion order with second chances (CLOCK). A hit marks its entry;
 * eviction takes the oldest unmarked one, moving marked ones to the end unmarked. Moving the entry on every hit
 * (delete + set) left a deleted slot in the Map's table each time, and the table's rebuilds were promoted: 67 bytes
 * of every registration for the young collector to copy (bench/tools/gc-trace.sh, ALLOC_LIVE=1). Now a cache that
 * fits its users never changes its Map on the REGISTER path.
 */
class ByteLru {
  readonly map = new Map<string, Entry>();
  bytes = 0;
  private readonly budget: number;

  constructor(budget: number) {
    this.budget = budget;
  }

  get(key: string): Entry | undefined {
    return this.map.get(key);
  }

  touch(e: Entry): void {
    e.used = true;
  }

  set(key: string, e: Entry, now: number): void {
    this.delete(key);
    if (e.bytes > this.budget) return;
    if (this.bytes + e.bytes > this.budget) this.sweep(now);
    while (this.bytes + e.bytes > this.budget) {
      const oldest = this.map.entries().next().value;
      if (oldest === undefined) break;
      const [k, old] = oldest;
      if (old.used) {
        // Its second chance: to the end, unmarked (each entry gets one per pass, so this ends).
        old.used = false;
        this.map.delete(k);
        this.map.set(k, old);
        continue;
      }
      this.delete(k);
    }
    this.map.set(key, e);
    this.bytes += e.bytes;
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e === undefined) return;
    this.map.delete(key);
    this.bytes -= e.bytes;
  }

  sweep(now: number): void {
    for (const [k, e] of this.map) if (e.expiresAt <= now) this.delete(k);
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

export interface CredentialCacheOptions {
  /** Heap the cache may hold, in bytes; unknown users get an eighth of it. */
  maxBytes?: number;
  /** Seconds between sweeps of expired entries (0: none; they still go when the budget runs out). */
  sweepSeconds?: number;
  now?: () => number;
}

export class CachedCredentialStore implements CredentialStore {
  private readonly known: ByteLru;
  private readonly unknown: ByteLru;
  /** Lookups in flight, so that a burst of REGISTERs for one user costs one query. */
  private readonly loading = new Map<string, Promise<Found>>();
  /** Bumped by every invalidation: a lookup that started before one must not cache what it read. */
  private generation = 0;
  private readonly inner: CredentialStore;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | null;
  hits = 0;
  misses = 0;
  /** Lookups sent to the store. */
  loads = 0;

  constructor(inner: CredentialStore, ttlSeconds: number, o: CredentialCacheOptions = {}) {
    this.inner = inner;
    this.ttlMs = ttlSeconds * 1000;
    this.negativeTtlMs = Math.min(this.ttlMs, 5000);
    this.now = o.now ?? Date.now;
    const maxBytes = o.maxBytes ?? 64 * 1024 * 1024;
    this.unknown = new ByteLru(Math.floor(maxBytes / 8));
    this.known = new ByteLru(maxBytes - Math.floor(maxBytes / 8));
    const sweepSeconds = o.sweepSeconds ?? 30;
    this.timer = sweepSeconds > 0 ? setInterval(() => this.sweep(), sweepSeconds * 1000) : null;
    this.timer?.unref();
  }

  /** Estimated heap held by the entries. */
  get bytes(): number {
    return this.known.bytes + this.unknown.bytes;
  }

  get size(): number {
    return this.known.map.size + this.unknown.map.size;
  }

  private static key(authUser: string, realm: string, algorithm: DigestAlgorithm): string {
    return authUser + '\u0000' + realm + '\u0000' + algorithm;
  }

  /** A cache hit answers synchronously; a miss returns the store's promise. */
  findSipCredential(authUser: string, realm: string, algorithm: DigestAlgorithm): Found | Promise<Found> {
    const key = CachedCredentialStore.key(authUser, realm, algorithm);
    const hit = this.hit(key);
    if (hit !== undefined) return hit;
    this.misses++;
    const inFlight = this.loading.get(key);
    if (inFlight) return inFlight;
    const p: Promise<Found> = this.fill(key, this.now(), authUser, realm, algorithm).finally(() => {
      if (this.loading.get(key) === p) this.loading.delete(key);
    });
    this.loading.set(key, p);
    return p;
  }

  /** What is cached for the key, without asking the store; undefined when nothing (fresh) is. */
  peekSipCredential(authUser: string, realm: string, algorithm: DigestAlgorithm): Found | undefined {
    return this.hit(CachedCredentialStore.key(authUser, realm, algorithm));
  }

  /** On the REGISTER path: no allocation, the known users' LRU first. */
  private hit(key: string): Found | undefined {
    const now = this.now();
    let lru = this.known;
    let e = lru.get(key);
    if (e === undefined) {
      lru = this.unknown;
      e = lru.get(key);
      if (e === undefined) return undefined;
    }
    if (e.expiresAt <= now) {
      lru.delete(key);
      return undefined;
    }
    this.hits++;
    lru.touch(e);
    return e.value;
  }

  private async fill(key: string, now: number, authUser: string, realm: string, algorithm: DigestAlgorithm): Promise<Found> {
    const gen = this.generation;
    this.loads++;
    const value = await this.inner.findSipCredential(authUser, realm, algorithm);
    if (gen !== this.generation) return value;
    const e: Entry = { value, expiresAt: now + (value ? this.ttlMs : this.negativeTtlMs), bytes: entryBytes(key, value), used: false };
    if (value) {
      this.unknown.delete(key);
      this.known.set(key, e, now);
    } else {
      this.known.delete(key);
      this.unknown.set(key, e, now);
    }
    return value;
  }

  /** Drops expired entries (also done by a timer). */
  sweep(): void {
    const now = this.now();
    this.known.sweep(now);
    this.unknown.sweep(now);
  }

  /** Forgets everything cached for an authentication username (all realms and algorithms). */
  invalidateUser(authUser: string): void {
    this.generation++;
    const prefix = authUser + '\u0000';
    for (const lru of [this.known, this.unknown]) for (const k of [...lru.map.keys()]) if (k.startsWith(prefix)) lru.delete(k);
    for (const k of this.loading.keys()) if (k.startsWith(prefix)) this.loading.delete(k);
  }

  clear(): void {
    this.generation++;
    this.known.clear();
    this.unknown.clear();
    this.loading.clear();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
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
