// The in-process Cache (the embedded default; Redis shares the same state between nodes). Through the Cache
// methods values are kept serialised, as Redis keeps them: a caller never holds the stored object, and
// compareAndSet compares the JSON text. Through `sync` (SyncCache) the value itself is kept and handed back, its
// text made only if the async side asks: a SUBSCRIBE's rate-limit bucket went through a JSON.stringify and a
// JSON.parse per permit, 140 of 3,880 ms sampled in bench/presence-hotpath.bench.ts (2026-12-07). Expiry follows
// the injected clock; expired entries are dropped when read and swept periodically, and the map is bounded so a
// flood of distinct keys cannot grow it forever.

import type { Cache, JsonValue, SyncCache } from '../ports.ts';

interface Entry {
  /** The value's text; null until the async side needs it for a value set through `sync`. */
  json: string | null;
  /** The value as `sync` sets and returns it; undefined until `sync` reads a value set as text. */
  value: JsonValue | undefined;
  expiresAt: number;
}

function textOf(e: Entry): string {
  if (e.json === null) e.json = JSON.stringify(e.value);
  return e.json;
}

export class MemoryCache implements Cache {
  private readonly map = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly maxEntries: number;
  private readonly timer: NodeJS.Timeout;

  constructor(now: () => number = Date.now, maxEntries = 1_000_000) {
    this.now = now;
    this.maxEntries = maxEntries;
    this.timer = setInterval(() => this.sweep(), 30_000);
    this.timer.unref();
  }

  private live(key: string): Entry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  /** Stores `json` (the async side) or `value` (sync, kept as given) under `key`. */
  private put(key: string, json: string | null, value: JsonValue | undefined, ttlSeconds: number): void {
    if (!(ttlSeconds > 0)) {
      this.map.delete(key);
      return;
    }
    const e = this.map.get(key);
    if (e !== undefined) {
      // In place: a bucket is rewritten at every permit, and a Map keeps a key's insertion order on set anyway.
      e.json = json;
      e.value = value;
      e.expiresAt = this.now() + ttlSeconds * 1000;
      return;
    }
    if (this.map.size >= this.maxEntries) {
      this.sweep();
      // Still full: drop the oldest insertion rather than refuse.
      if (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value!);
    }
    this.map.set(key, { json, value, expiresAt: this.now() + ttlSeconds * 1000 });
  }

  /** The same operations without a promise each, on the values themselves (SyncCache: neither side changes them). */
  readonly sync: SyncCache = {
    get: <T extends JsonValue = JsonValue>(key: string): T | null => {
      const e = this.live(key);
      if (e === undefined) return null;
      if (e.value === undefined) e.value = JSON.parse(e.json!) as JsonValue;
      return e.value as T;
    },
    set: (key: string, value: JsonValue, ttlSeconds: number): void => this.put(key, null, value, ttlSeconds),
  };

  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | null> {
    const e = this.live(key);
    return e === undefined ? null : (JSON.parse(textOf(e)) as T);
  }

  async set(key: string, value: JsonValue, ttlSeconds: number): Promise<void> {
    this.put(key, JSON.stringify(value), undefined, ttlSeconds);
  }

  async setIfAbsent(key: string, value: JsonValue, ttlSeconds: number): Promise<boolean> {
    if (this.live(key) !== undefined) return false;
    this.put(key, JSON.stringify(value), undefined, ttlSeconds);
    return true;
  }

  async compareAndSet(key: string, expected: JsonValue | null, value: JsonValue | null, ttlSeconds: number): Promise<boolean> {
    const e = this.live(key);
    const current = e === undefined ? null : textOf(e);
    const want = expected === null ? null : JSON.stringify(expected);
    if (current !== want) return false;
    if (value === null) this.map.delete(key);
    else this.put(key, JSON.stringify(value), undefined, ttlSeconds);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }

  sweep(): void {
    const now = this.now();
    for (const [k, e] of this.map) if (e.expiresAt <= now) this.map.delete(k);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
