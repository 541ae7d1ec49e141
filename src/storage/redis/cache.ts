// The Cache port on Redis: JSON values with TTLs, SET NX, and compare-and-set in a Lua script so that the
// read-compare-write is atomic across every node.

import type { Redis } from 'ioredis';
import type { Cache, JsonValue } from '../ports.ts';
import { LuaScript } from './lua-script.ts';

// KEYS[1] key; ARGV: expectAbsent ('1'|'0'), expected JSON, new JSON ('' deletes), ttl ms.
const CAS = new LuaScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
return 1`);

export class RedisCache implements Cache {
  private readonly r: Redis;

  constructor(r: Redis) {
    this.r = r;
  }

  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | null> {
    const v = await this.r.get('cache:' + key);
    return v === null ? null : (JSON.parse(v) as T);
  }

  async set(key: string, value: JsonValue, ttlSeconds: number): Promise<void> {
    if (!(ttlSeconds > 0)) {
      await this.r.del('cache:' + key);
      return;
    }
    await this.r.set('cache:' + key, JSON.stringify(value), 'PX', Math.ceil(ttlSeconds * 1000));
  }

  async setIfAbsent(key: string, value: JsonValue, ttlSeconds: number): Promise<boolean> {
    return (await this.r.set('cache:' + key, JSON.stringify(value), 'PX', Math.ceil(ttlSeconds * 1000), 'NX')) === 'OK';
  }

  async compareAndSet(key: string, expected: JsonValue | null, value: JsonValue | null, ttlSeconds: number): Promise<boolean> {
    const r = await CAS.run(
      this.r,
      ['cache:' + key],
      [
        expected === null ? '1' : '0',
        expected === null ? '' : JSON.stringify(expected),
        value === null ? '' : JSON.stringify(value),
        Math.max(1, Math.ceil(ttlSeconds * 1000)),
      ],
    );
    return r === 1;
  }

  async delete(key: string): Promise<void> {
    await this.r.del('cache:' + key);
  }
}
