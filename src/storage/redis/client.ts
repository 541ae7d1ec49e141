// One ioredis connection per process for the cache adapters, with every key under a prefix so several
// deployments (or test runs) can share a Redis. The URL's password never reaches a log.

import { Redis } from 'ioredis';

export interface RedisOptions {
  url: string;
  prefix: string;
}

export function openRedis(o: RedisOptions): Redis {
  const client = new Redis(o.url, {
    keyPrefix: o.prefix,
    // Commands wait for a reconnect instead of failing at once; the caller's request times out if Redis is gone.
    maxRetriesPerRequest: 3,
    enableAutoPipelining: true,
    lazyConnect: false,
  });
  client.on('error', () => {
    // Reconnects are ioredis's job; failing commands report their own errors.
  });
  return client;
}

