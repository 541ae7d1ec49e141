// Nonce-count tracking on Redis: any node may receive the answer to a challenge another node issued (the nonce
// key is shared), so the highest nc seen per nonce lives where every node sees it. One key per nonce, expiring
// with the nonce.

import type { Redis } from 'ioredis';
import type { NonceCountResult, NonceCountTracker, NonceInfo } from '../../sip/digest.ts';
import { LuaScript } from './lua-script.ts';

// Accept nc only above the stored one; keep the key as long as the nonce can be presented.
const CLAIM = new LuaScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`);

export class RedisNonceCounts implements NonceCountTracker {
  private readonly r: Redis;
  private readonly ttlMs: number;

  /** @param nonceTtlSeconds how long a nonce is accepted (its count must be remembered that long, plus slack) */
  constructor(r: Redis, nonceTtlSeconds: number) {
    this.r = r;
    this.ttlMs = (nonceTtlSeconds + 60) * 1000;
  }

  issued(): void {
    // Keys are per nonce (boot and index), so a new nonce never meets an old count.
  }

  async claim(info: NonceInfo, nc: number): Promise<NonceCountResult> {
    const ok = await CLAIM.run(this.r, [`nc:${info.boot}:${info.index}`], [nc, this.ttlMs]);
    return ok === 1 ? 'ok' : 'replay';
  }
}
