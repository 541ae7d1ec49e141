// The SUBSCRIBE rate per watcher (--presence-subscribe-rate): a token bucket per authenticated watcher account
// in the shared cache (so the limit holds across nodes), "size/seconds-per-permit" as --rate-limits writes them.
// The default, 200 at once and one more a second, lets a phone subscribe to a 200-entry buddy (BLF) list at boot
// and refresh thousands of subscriptions an hour, and bounds what one account can make us store and notify.

import { parseBucketSpec, RateLimiter, type BucketConfig } from '../identity/rate-limiter.ts';
import type { Cache } from '../storage/ports.ts';

/** The bucket of a "size/seconds" spec, or null for "off" or "0" (unlimited). */
export function parseSubscribeRate(spec: string): BucketConfig | null {
  return parseBucketSpec(spec, '--presence-subscribe-rate');
}

export function subscribeLimiter(bucket: BucketConfig, cache: Cache, now?: () => number): RateLimiter {
  return new RateLimiter('presenceSubscribe', bucket, cache, now);
}
