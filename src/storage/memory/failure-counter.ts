// In-process failure counters and lockouts with expiry (the embedded default; Redis shares them between nodes).
// Fixed windows: a key's count starts at its first failure and resets when the window ends. Entries are swept
// when both their window and their lock are over, so a flood of distinct keys cannot grow the map forever; keys
// carry attacker-chosen names (bounded to 256 bytes upstream), so the maps are bounded by bytes as well as entries.
// Known sources (Lockout) are kept beside the counters, bounded the same way.

import type { FailureCounter } from '../ports.ts';

interface Entry {
  count: number;
  windowEnd: number;
  lockedUntil: number;
}

/** Per entry beyond its key's characters (Map slot, entry object, numbers): measured ~90 bytes with 100k keys. */
const ENTRY_OVERHEAD = 96;

export class MemoryFailureCounter implements FailureCounter {
  private readonly entries = new Map<string, Entry>();
  /** Known sources: key → expiry. */
  private readonly known = new Map<string, number>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  /** Estimated heap held by both maps (keys as two bytes a character). */
  bytes = 0;
  /** The latest end of any lock ever set: past it nothing is locked, and a check needs no lookup. */
  private lockedUntilMax = 0;

  constructor(now: () => number = Date.now, maxEntries = 1_000_000, maxBytes = 64 * 1024 * 1024) {
    this.now = now;
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.timer = setInterval(() => this.sweep(), 10_000);
    this.timer.unref();
  }

  private static size(key: string): number {
    return key.length * 2 + ENTRY_OVERHEAD;
  }

  hit(key: string, windowSeconds: number): number {
    const now = this.now();
    let e = this.entries.get(key);
    if (!e) {
      this.makeRoom(key);
      e = { count: 0, windowEnd: now + windowSeconds * 1000, lockedUntil: 0 };
      this.entries.set(key, e);
      this.bytes += MemoryFailureCounter.size(key);
    } else if (e.windowEnd <= now) {
      e.count = 0;
      e.windowEnd = now + windowSeconds * 1000;
    }
    return ++e.count;
  }

  lock(key: string, seconds: number): void {
    const now = this.now();
    let e = this.entries.get(key);
    if (!e) {
      this.makeRoom(key);
      e = { count: 0, windowEnd: now, lockedUntil: 0 };
      this.entries.set(key, e);
      this.bytes += MemoryFailureCounter.size(key);
    }
    e.lockedUntil = now + seconds * 1000;
    if (e.lockedUntil > this.lockedUntilMax) this.lockedUntilMax = e.lockedUntil;
  }

  anyLocked(): boolean {
    return this.lockedUntilMax > this.now();
  }

  lockedFor(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    const left = e.lockedUntil - this.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  reset(key: string): void {
    if (this.entries.delete(key)) this.bytes -= MemoryFailureCounter.size(key);
  }

  remember(key: string, seconds: number): void {
    if (seconds <= 0) return;
    if (!this.known.has(key)) {
      this.makeRoom(key);
      this.bytes += MemoryFailureCounter.size(key);
    }
    this.known.set(key, this.now() + seconds * 1000);
  }

  remembered(key: string): boolean {
    const until = this.known.get(key);
    return until !== undefined && until > this.now();
  }

  /**
   * Before adding `key`: past a bound, expired entries go; if that is not enough, the oldest counters that hold no
   * lock (a lock is what protects; a count lost early only delays one), then the oldest known sources.
   */
  private makeRoom(key: string): void {
    const need = MemoryFailureCounter.size(key);
    if (this.entries.size + this.known.size < this.maxEntries && this.bytes + need <= this.maxBytes) return;
    this.sweep();
    const now = this.now();
    const target = this.maxBytes * 0.9;
    const targetEntries = this.maxEntries * 0.9;
    const over = () => this.bytes + need > target || this.entries.size + this.known.size >= targetEntries;
    for (const [k, e] of this.entries) {
      if (!over()) return;
      if (e.lockedUntil > now) continue;
      this.entries.delete(k);
      this.bytes -= MemoryFailureCounter.size(k);
    }
    for (const k of this.known.keys()) {
      if (!over()) return;
      this.known.delete(k);
      this.bytes -= MemoryFailureCounter.size(k);
    }
  }

  sweep(): void {
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (e.windowEnd <= now && e.lockedUntil <= now) {
        this.entries.delete(k);
        this.bytes -= MemoryFailureCounter.size(k);
      }
    }
    for (const [k, until] of this.known) {
      if (until <= now) {
        this.known.delete(k);
        this.bytes -= MemoryFailureCounter.size(k);
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
