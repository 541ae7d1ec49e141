// A Lua script run by its SHA1 (EVALSHA), sent whole (EVAL) only when Redis does not hold it yet (after a restart
// or SCRIPT FLUSH). Measured under the scale-out benchmark: EVAL of the location write, its 1.2 KB body sent and
// hashed by Redis on every REGISTER, cost Redis 15 µs a call and the node a string encode of the body each time.

import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export class LuaScript {
  readonly body: string;
  readonly sha: string;

  constructor(body: string) {
    this.body = body;
    this.sha = createHash('sha1').update(body).digest('hex');
  }

  /** Runs the script with these keys (the client's key prefix applies to them) and arguments. */
  async run(r: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await r.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return r.eval(this.body, keys.length, ...keys, ...args);
    }
  }
}
