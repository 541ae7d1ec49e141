// Failure counters, lockouts and known sources on Redis, shared by every node: a guess counted on one node counts
// on all, and a source an account authenticated from through one node is known to all.

import type { Redis } from 'ioredis';
import type { FailureCounter } from '../ports.ts';
import { LuaScript } from './lua-script.ts';

// INCR, and start the window on the first failure.
const HIT = new LuaScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`);

export class RedisFailureCounter implements FailureCounter {
  private readonly r: Redis;

  constructor(r: Redis) {
    this.r = r;
  }

  async hit(key: string, windowSeconds: number): Promise<number> {
    return (await HIT.run(this.r, ['fail:' + key], [windowSeconds * 1000])) as number;
  }

  async lock(key: string, seconds: number): Promise<void> {
    await this.r.set('lock:' + key, '1', 'PX', seconds * 1000);
  }

  async lockedFor(key: string): Promise<number> {
    const ms = await this.r.pttl('lock:' + key);
    return ms > 0 ? Math.ceil(ms / 1000) : 0;
  }

  async reset(key: string): Promise<void> {
    await this.r.del('fail:' + key);
  }

  async remember(key: string, seconds: number): Promise<void> {
    if (seconds > 0) await this.r.set('seen:' + key, '1', 'PX', seconds * 1000);
  }

  async remembered(key: string): Promise<boolean> {
    return (await this.r.exists('seen:' + key)) === 1;
  }
}
