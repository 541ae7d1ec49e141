// Short-lived shared state with expiry: the cache (verification sessions, rate-limit buckets, used link tokens)
// and the failure counters behind lockouts. In-process (memory/) or Redis.

/** A JSON value as the cache stores it: adapters serialise, so nothing relies on in-process object identity. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Shared short-lived state with expiry: verification sessions, rate-limit buckets, used link tokens. In-process
 * (memory/cache.ts) or Redis. Values are JSON; TTLs are in seconds (fractions are rounded up by adapters that
 * need whole units). Every operation is atomic on its key, so services build read-modify-write on
 * compareAndSet (Redis: a small Lua script) instead of locks.
 */
export interface Cache {
  get<T extends JsonValue = JsonValue>(key: string): Promise<T | null>;
  set(key: string, value: JsonValue, ttlSeconds: number): Promise<void>;
  /** Sets only when the key holds nothing (SET NX); true when it was set. */
  setIfAbsent(key: string, value: JsonValue, ttlSeconds: number): Promise<boolean>;
  /**
   * Replaces the value only if the key still holds `expected` (compared as serialised JSON; null = absent);
   * true when it did. `value` null deletes.
   */
  compareAndSet(key: string, expected: JsonValue | null, value: JsonValue | null, ttlSeconds: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /**
   * An in-process cache's get and set answered at once, for hot paths that would otherwise pay a promise and a
   * microtask per call (a SUBSCRIBE's rate-limit bucket). Nothing runs between two synchronous calls, so a get
   * then a set is as atomic as compareAndSet. Absent on a shared cache.
   */
  readonly sync?: SyncCache;
}

/**
 * The synchronous half of an in-process Cache: the same semantics as its get and set, on the values themselves.
 * `get` returns the stored value and `set` keeps the one given, so neither side may change a value once handed
 * over (RateLimiter replaces a bucket, never changes one); the async methods still see copies.
 */
export interface SyncCache {
  get<T extends JsonValue = JsonValue>(key: string): T | null;
  set(key: string, value: JsonValue, ttlSeconds: number): void;
}

/** Counters with expiry for failures and lockouts; in-process or shared (Redis). */
export interface FailureCounter {
  /** Adds one failure under `key` within a window of `windowSeconds`; returns the count in the window. */
  hit(key: string, windowSeconds: number): number | Promise<number>;
  /** Locks `key` for `seconds`. */
  lock(key: string, seconds: number): void | Promise<void>;
  /** Seconds the key stays locked, 0 when not locked. */
  lockedFor(key: string): number | Promise<number>;
  /**
   * False when no key is locked at all (an in-process counter knows at once): the lockout then asks nothing else.
   * Absent where finding out costs what the reads cost (a shared cache, whose reads leave together anyway).
   */
  anyLocked?(): boolean;
  reset(key: string): void | Promise<void>;
  /** Marks `key` (a source an account authenticated from) for `seconds`. */
  remember(key: string, seconds: number): void | Promise<void>;
  /** Whether `key` is marked. */
  remembered(key: string): boolean | Promise<boolean>;
}
