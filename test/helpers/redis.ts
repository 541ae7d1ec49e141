// Redis for tests: the machine's server at 127.0.0.1:6379 (or SWITCHBOARD_TEST_REDIS), a fresh key prefix per
// use, its keys deleted afterwards. Missing server: skip, or fail under SWITCHBOARD_REQUIRE_PEERS=1.

import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.SWITCHBOARD_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';

let reachable: boolean | null = null;

export async function redisMissing(): Promise<string | false> {
  if (reachable === null) {
    const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
    r.on('error', () => {});
    try {
      await r.connect();
      reachable = (await r.ping()) === 'PONG';
    } catch {
      reachable = false;
    } finally {
      r.disconnect();
    }
  }
  if (reachable) return false;
  if (process.env.SWITCHBOARD_REQUIRE_PEERS === '1') throw new Error(`Redis required at ${REDIS_URL}`);
  return `Redis not reachable at ${REDIS_URL}`;
}

export function freshPrefix(): string {
  return `sbtest:${randomBytes(6).toString('hex')}:`;
}

export async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL);
  try {
    // Every key first, then one DEL: all gone at once, as when Redis restarts (deleting batch by batch let a node's
    // heartbeat re-prime the index half-way, and the scan then missed what it had put back).
    const all: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      all.push(...keys);
    } while (cursor !== '0');
    for (let i = 0; i < all.length; i += 50_000) await r.del(...all.slice(i, i + 50_000));
  } finally {
    r.disconnect();
  }
}
