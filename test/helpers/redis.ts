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
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
