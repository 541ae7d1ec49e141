// The shared location index on Redis: every node reads and writes the same bindings.
//
// - One hash per AOR (`loc:a:<aor>`): `v` its version, `n` its binding count, `b` the bindings (positional
//   JSON, storage/binding-codec.ts). A write names the version it read and succeeds only if that is still the
//   version (a Lua script: compare-and-set), so two nodes changing one AOR cannot lose each other's change.
//   The hash expires a minute after its last binding would, so Redis cleans up even if no node is running.
// - A sorted set (`loc:due`) of AORs by their earliest expiry. A node claims the due ones with a lease (their
//   score moves 30 s ahead), so each is expired by one node, and by another if that one dies mid-way.
// - Counters (`loc:count`) kept by the scripts, returned by every write and read every few seconds for metrics.
// - `loc:primed` marks an index filled from the durable store; `loc:priming` is the lease of the node filling it.
// - Membership: `loc:nodes` holds each node by the time its heartbeat lapses; `loc:flows:<node>` the AORs that
//   held a binding reachable only through one of that node's connections (WebSocket, RFC 5626 flow), so that when
//   the node dies another one can take exactly those out.

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { decodePut, encodePut, type StoredWrite } from '../binding-codec.ts';
import { diesWithConnection, type AorState, type BindingRecord, type LocationCluster, type LocationIndex } from '../ports.ts';
import { LuaScript } from './lua-script.ts';

// KEYS: aor hash, due set, counters, and when the AOR has connection-bound bindings: the set of nodes holding
// flows, then the flow sets of those nodes. ARGV: expected version, bindings JSON, count, earliest expiry (ms),
// aor, hash expiry (ms epoch), then the names of those nodes.
// Returns 0 when the version no longer matches, else the counters (bindings, aors) after the write.
const WRITE = new LuaScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local m = tonumber(ARGV[3])
if m == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('HSET', KEYS[1], 'v', v + 1, 'n', m, 'b', ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
if #KEYS > 3 then
  for i = 5, #KEYS do redis.call('SADD', KEYS[i], ARGV[5]) end
  for i = 7, #ARGV do redis.call('SADD', KEYS[4], ARGV[i]) end
end
redis.call('HINCRBY', KEYS[3], 'bindings', m - n)
if n == 0 and m > 0 then redis.call('HINCRBY', KEYS[3], 'aors', 1) end
if n > 0 and m == 0 then redis.call('HINCRBY', KEYS[3], 'aors', -1) end
return redis.call('HMGET', KEYS[3], 'bindings', 'aors')`);

// KEYS: due set. ARGV: now, limit, lease until.
const CLAIM = new LuaScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, a in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], a) end
return due`);

// KEYS: nodes set, nodes holding flows. ARGV: now, lease until, grace until. A node holding flows but absent from
// the nodes set (its entry lost with Redis's data, and it died before its next heartbeat) is entered as if it had
// just beaten: alive, it beats again; dead, it lapses like any other. Lapsed nodes come back with their lapse time
// and get a lease.
const CLAIM_NODES = new LuaScript(`
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('ZADD', KEYS[1], 'NX', ARGV[3], n) end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
for i = 1, #gone, 2 do redis.call('ZADD', KEYS[1], ARGV[2], gone[i]) end
return gone`);

// KEYS: the priming lease. ARGV: the holder's token, lease (ms). Extends the lease only while it is still ours.
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`);

/** AORs written at once while loading the index. */
const LOAD_LANES = 256;

const AOR_PREFIX = 'loc:a:';
const FLOWS_PREFIX = 'loc:flows:';
const NODES = 'loc:nodes';
const FLOW_NODES = 'loc:flownodes';

export class RedisLocationIndex implements LocationIndex, LocationCluster {
  readonly shared = true;
  private readonly r: Redis;
  private readonly prefix: string;
  private cached = { bindings: 0, aors: 0 };
  private readonly timer: NodeJS.Timeout;

  private readonly primingLeaseMs: number;

  /**
   * @param prefix the key prefix the client was opened with (SCAN does not apply it by itself)
   * @param primingLeaseMs how long the priming lease outlives a node that stops renewing it
   */
  constructor(r: Redis, prefix: string, primingLeaseMs = 60_000) {
    this.r = r;
    this.prefix = prefix;
    this.primingLeaseMs = primingLeaseMs;
    this.timer = setInterval(() => void this.refreshCounts(), 5000);
    this.timer.unref();
    void this.refreshCounts();
  }

  private async refreshCounts(): Promise<void> {
    try {
      const c = await this.r.hmget('loc:count', 'bindings', 'aors');
      this.cached = { bindings: Number(c[0] ?? 0), aors: Number(c[1] ?? 0) };
    } catch {
      // keep the last figures
    }
  }

  async read(aor: string): Promise<AorState> {
    const [v, b] = await this.r.hmget(AOR_PREFIX + aor, 'v', 'b');
    if (v === null || b === null) return { bindings: [], version: 0 };
    return { bindings: (JSON.parse(b) as StoredWrite[]).map(decodePut), version: Number(v) };
  }

  async write(aor: string, version: AorState['version'], next: BindingRecord[]): Promise<boolean> {
    let earliest = Infinity;
    let latest = 0;
    for (const b of next) {
      if (b.expiresAt < earliest) earliest = b.expiresAt;
      if (b.expiresAt > latest) latest = b.expiresAt;
    }
    const flowNodes: string[] = [];
    for (const b of next) if (b.node !== null && diesWithConnection(b) && !flowNodes.includes(b.node)) flowNodes.push(b.node);
    const flowKeys = flowNodes.length ? [FLOW_NODES, ...flowNodes.map((n) => FLOWS_PREFIX + n)] : [];
    const ok = await WRITE.run(
      this.r,
      [AOR_PREFIX + aor, 'loc:due', 'loc:count', ...flowKeys],
      [
        typeof version === 'number' ? version : 0,
        JSON.stringify(next.map(encodePut)),
        next.length,
        earliest === Infinity ? 0 : earliest,
        aor,
        latest + 60_000,
        ...flowNodes,
      ],
    );
    if (!Array.isArray(ok)) return false;
    // The counters after the write: this node's own changes show in its figures at once, others' within 5 s.
    this.cached = { bindings: Number(ok[0] ?? 0), aors: Number(ok[1] ?? 0) };
    return true;
  }

  async load(bindings: BindingRecord[], aor?: string): Promise<void> {
    const by = new Map<string, BindingRecord[]>();
    if (aor !== undefined) by.set(aor, bindings);
    for (const b of aor === undefined ? bindings : []) {
      const l = by.get(b.aor);
      if (l) l.push(b);
      else by.set(b.aor, [b]);
    }
    // Many AORs at once (auto-pipelined into few round trips): one at a time, a million took over four minutes
    // (3,900 AORs/s measured), every node's lookups missing meanwhile.
    const todo = by.entries();
    const lane = async (): Promise<void> => {
      for (let next = todo.next(); !next.done; next = todo.next()) {
        const [a, list] = next.value;
        // Unconditional: write over whatever is there. First as if it were absent (one round trip into an empty
        // index), then over the version read, retrying if a node races us.
        if (await this.write(a, 0, list)) continue;
        for (let i = 0; i < 10; i++) {
          const cur = await this.read(a);
          if (await this.write(a, cur.version, list)) break;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOAD_LANES, by.size) }, lane));
    await this.refreshCounts();
  }

  async claimDue(now: number): Promise<string[]> {
    return (await CLAIM.run(this.r, ['loc:due'], [now, 500, now + 30_000])) as string[];
  }

  async *entries(): AsyncIterable<[string, BindingRecord[]]> {
    let cursor = '0';
    do {
      const [next, keys] = await this.r.scan(cursor, 'MATCH', `${this.prefix}${AOR_PREFIX}*`, 'COUNT', 500);
      cursor = next;
      for (const k of keys) {
        const aor = k.slice(this.prefix.length + AOR_PREFIX.length);
        const s = await this.read(aor);
        if (s.bindings.length) yield [aor, s.bindings];
      }
    } while (cursor !== '0');
  }

  async heartbeat(node: string, until: number): Promise<void> {
    await this.r.zadd(NODES, until, node);
  }

  async claimDeparted(now: number, graceUntil: number): Promise<Array<{ node: string; lapsedAt: number }>> {
    const flat = (await CLAIM_NODES.run(this.r, [NODES, FLOW_NODES], [now, now + 60_000, graceUntil])) as string[];
    const out: Array<{ node: string; lapsedAt: number }> = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ node: flat[i], lapsedAt: Number(flat[i + 1]) });
    return out;
  }

  async flowAors(node: string): Promise<string[]> {
    return this.r.smembers(FLOWS_PREFIX + node);
  }

  async forgetNode(node: string): Promise<void> {
    await this.r.multi().zrem(NODES, node).srem(FLOW_NODES, node).unlink(FLOWS_PREFIX + node).exec();
  }

  counts(): { bindings: number; aors: number } {
    return this.cached;
  }

  async beginPriming(): Promise<'primed' | 'mine' | 'busy'> {
    if ((await this.r.exists('loc:primed')) === 1) return 'primed';
    const token = randomUUID();
    const got = await this.r.set('loc:priming', token, 'PX', this.primingLeaseMs, 'NX');
    if (got !== 'OK') return 'busy';
    // Held while this node loads (renewed every third of the lease), however long a large deployment takes; lapses
    // within a lease of the node dying.
    this.stopRenewing();
    this.renewing = setInterval(() => void RENEW.run(this.r, ['loc:priming'], [token, this.primingLeaseMs]).catch(() => {}), this.primingLeaseMs / 3);
    this.renewing.unref();
    return 'mine';
  }

  private renewing: NodeJS.Timeout | null = null;
  private stopRenewing(): void {
    if (this.renewing) clearInterval(this.renewing);
    this.renewing = null;
  }

  async isPrimed(): Promise<boolean> {
    return (await this.r.exists('loc:primed')) === 1;
  }

  async endPriming(): Promise<void> {
    this.stopRenewing();
    await this.r.set('loc:primed', String(Date.now()));
    await this.r.del('loc:priming');
  }

  close(): void {
    this.stopRenewing();
    clearInterval(this.timer);
  }
}
