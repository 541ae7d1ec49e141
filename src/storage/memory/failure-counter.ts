// In-process failure counters and lockouts with expiry (the embedded default; Redis shares them between nodes).
// Fixed windows: a key's count starts at its first failure and resets when the window ends. Entries are swept
// when both their window and their lock are over, so a flood of distinct keys cannot grow the map forever.

import type { FailureCounter } from '../ports.ts';

interface Entry {
  count: number;
  windowEnd: number;
  lockedUntil: number;
}

export class MemoryFailureCounter implements FailureCounter {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private readonly maxEntries: number;

  constructor(now: () => number = Date.now, maxEntries = 1_000_000) {
    this.now = now;
    this.maxEntries = maxEntries;
    this.timer = setInterval(() => this.sweep(), 10_000);
    this.timer.unref();
  }

  hit(key: string, windowSeconds: number): number {
    const now = this.now();
    let e = this.entries.get(key);
    if (!e) {
      if (this.entries.size >= this.maxEntries) this.sweep();
      e = { count: 0, windowEnd: now + windowSeconds * 1000, lockedUntil: 0 };
      this.entries.set(key, e);
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
      e = { count: 0, windowEnd: now, lockedUntil: 0 };
      this.entries.set(key, e);
    }
    e.lockedUntil = now + seconds * 1000;
  }

  lockedFor(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    const left = e.lockedUntil - this.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  reset(key: string): void {
    this.entries.delete(key);
  }

  sweep(): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (e.windowEnd <= now && e.lockedUntil <= now) this.entries.delete(k);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
