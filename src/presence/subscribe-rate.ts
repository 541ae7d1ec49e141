// The SUBSCRIBE rate per watcher (--presence-subscribe-rate): a token bucket per authenticated watcher account
// in the shared cache (so the limit holds across nodes), "size/seconds-per-permit" as --rate-limits writes them.
// The default, 200 at once and one more a second, lets a phone subscribe to a 200-entry buddy (BLF) list at boot
// and refresh thousands of subscriptions an hour, and bounds what one account can make us store and notify.

import { parseBucketSpec, RateLimiter, type BucketConfig } from '../identity/rate-limiter.ts';
import type { Cache, JsonValue, SyncCache } from '../storage/ports.ts';

/** The bucket of a "size/seconds" spec, or null for "off" or "0" (unlimited). */
export function parseSubscribeRate(spec: string): BucketConfig | null {
  return parseBucketSpec(spec, '--presence-subscribe-rate');
}

/**
 * With an in-process cache (one node: nothing to share the buckets with) they are kept in a LocalBuckets of their
 * own, as objects; over a shared cache (Redis) in it, as before.
 */
export function subscribeLimiter(bucket: BucketConfig, cache: Cache, now: () => number = Date.now): RateLimiter {
  return new RateLimiter('presenceSubscribe', bucket, cache.sync ? new LocalBuckets(now) : cache, now);
}

/** Entries a LocalBuckets holds at most: as many accounts as the in-process cache's bound. */
const MAX_BUCKETS = 1_000_000;
/** How often expired buckets are swept out, as the in-process cache does. */
const SWEEP_MS = 30_000;

/**
 * The in-process cache's semantics (expiry by the same clock, at most MAX_BUCKETS entries, expired ones swept) for
 * the SUBSCRIBE buckets alone, keeping the value taken rather than its JSON. A SUBSCRIBE takes a permit, and through
 * the shared in-process cache that was a JSON.parse of the bucket, a JSON.stringify of the next and an entry
 * object each: 140 of 3,880 ms sampled in bench/presence-hotpath.bench.ts (2026-12-07), and 3 us a subscription
 * off the bench's 46-49 with the limit off altogether. The only user is RateLimiter, which replaces a bucket and
 * never changes one it was given, so holding the object is as safe as holding its text. Sweeps run from set(),
 * every SWEEP_MS, rather than on a timer: nothing to stop at shutdown.
 */
export class LocalBuckets implements Cache {
  private readonly map = new Map<string, { value: JsonValue; expiresAt: number }>();
  private readonly now: () => number;
  private nextSweep: number;

  constructor(now: () => number) {
    this.now = now;
    this.nextSweep = now() + SWEEP_MS;
  }

  readonly sync: SyncCache = {
    get: <T extends JsonValue = JsonValue>(key: string): T | null => {
      const e = this.map.get(key);
      if (e === undefined) return null;
      if (e.expiresAt <= this.now()) {
        this.map.delete(key);
        return null;
      }
      return e.value as T;
    },
    set: (key: string, value: JsonValue, ttlSeconds: number): void => {
      const now = this.now();
      if (now >= this.nextSweep) this.sweep(now);
      if (!(ttlSeconds > 0)) {
        this.map.delete(key);
        return;
      }
      const e = this.map.get(key);
      if (e !== undefined) {
        e.value = value;
        e.expiresAt = now + ttlSeconds * 1000;
        return;
      }
      if (this.map.size >= MAX_BUCKETS) {
        this.sweep(now);
        // Still full: drop the oldest insertion rather than refuse (a dropped bucket is a full one).
        if (this.map.size >= MAX_BUCKETS) this.map.delete(this.map.keys().next().value!);
      }
      this.map.set(key, { value, expiresAt: now + ttlSeconds * 1000 });
    },
  };

  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | null> {
    return this.sync.get<T>(key);
  }

  async set(key: string, value: JsonValue, ttlSeconds: number): Promise<void> {
    this.sync.set(key, value, ttlSeconds);
  }

  async setIfAbsent(key: string, value: JsonValue, ttlSeconds: number): Promise<boolean> {
    if (this.sync.get(key) !== null) return false;
    this.sync.set(key, value, ttlSeconds);
    return true;
  }

  async compareAndSet(key: string, expected: JsonValue | null, value: JsonValue | null, ttlSeconds: number): Promise<boolean> {
    const current = this.sync.get(key);
    if (JSON.stringify(current) !== JSON.stringify(expected)) return false;
    if (value === null) this.map.delete(key);
    else this.sync.set(key, value, ttlSeconds);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }

  private sweep(now: number): void {
    this.nextSweep = now + SWEEP_MS;
    for (const [k, e] of this.map) if (e.expiresAt <= now) this.map.delete(k);
  }
}
