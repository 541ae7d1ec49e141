// The in-process Cache (the embedded default; Redis shares the same state between nodes). Values are kept
// serialised, as Redis keeps them: a caller never holds the stored object, and compareAndSet compares the JSON
// text. Expiry follows the injected clock; expired entries are dropped when read and swept periodically, and
// the map is bounded so a flood of distinct keys cannot grow it forever.

import type { Cache, JsonValue, SyncCache } from '../ports.ts';

interface Entry {
  json: string;
  expiresAt: number;
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

  private put(key: string, value: JsonValue, ttlSeconds: number): void {
    if (!(ttlSeconds > 0)) {
      this.map.delete(key);
      return;
    }
    if (!this.map.has(key) && this.map.size >= this.maxEntries) {
      this.sweep();
      // Still full: drop the oldest insertion rather than refuse.
      if (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value!);
    }
    this.map.set(key, { json: JSON.stringify(value), expiresAt: this.now() + ttlSeconds * 1000 });
  }

  /** The same operations without a promise each: everything here answers at once. */
  readonly sync: SyncCache = {
    get: <T extends JsonValue = JsonValue>(key: string): T | null => {
      const e = this.live(key);
      return e === undefined ? null : (JSON.parse(e.json) as T);
    },
    set: (key: string, value: JsonValue, ttlSeconds: number): void => this.put(key, value, ttlSeconds),
  };

  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | null> {
    return this.sync.get<T>(key);
  }

  async set(key: string, value: JsonValue, ttlSeconds: number): Promise<void> {
    this.put(key, value, ttlSeconds);
  }

  async setIfAbsent(key: string, value: JsonValue, ttlSeconds: number): Promise<boolean> {
    if (this.live(key) !== undefined) return false;
    this.put(key, value, ttlSeconds);
    return true;
  }

  async compareAndSet(key: string, expected: JsonValue | null, value: JsonValue | null, ttlSeconds: number): Promise<boolean> {
    const e = this.live(key);
    const current = e === undefined ? null : e.json;
    const want = expected === null ? null : JSON.stringify(expected);
    if (current !== want) return false;
    if (value === null) this.map.delete(key);
    else this.put(key, value, ttlSeconds);
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
