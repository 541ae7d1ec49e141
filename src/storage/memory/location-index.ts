// The in-process location index: Map<aor, BindingRecord[]> and an expiry wheel of one-second buckets holding the
// AORs with a binding due in that second (AOR strings already held by the map, 8 bytes an entry: holding binding
// objects kept every refreshed binding alive for its old lifetime). Reads answer synchronously and the version
// of an AOR is its array, replaced (never mutated) on every write, so compare-and-set is an identity check.

import type { AorState, BindingRecord, LocationIndex } from '../ports.ts';

const EMPTY: BindingRecord[] = [];

export class MemoryLocationIndex implements LocationIndex {
  readonly shared = false;
  private readonly map = new Map<string, BindingRecord[]>();
  private readonly wheel = new Map<number, string[]>();
  private cursor = 0;
  private bindingCount = 0;

  read(aor: string): AorState {
    const list = this.map.get(aor);
    return { bindings: list ?? EMPTY, version: list ?? null };
  }

  write(aor: string, version: AorState['version'], next: BindingRecord[]): boolean {
    const list = this.map.get(aor) ?? null;
    if (list !== version) return false;
    this.set(aor, next);
    return true;
  }

  private set(aor: string, next: BindingRecord[]): void {
    const before = this.map.get(aor)?.length ?? 0;
    // The bindings' own AOR string goes in the wheel (and is the map's key for a new AOR): the caller's is usually
    // built from the request, and a wheel entry held that copy until the binding's expiry (76 bytes a REGISTER left
    // alive, bench/tools/gc-trace.sh with ALLOC_LIVE=1).
    const key = next.length ? next[0].aor : aor;
    if (next.length) this.map.set(key, next);
    else this.map.delete(aor);
    this.bindingCount += next.length - before;
    let earliest = Infinity;
    for (const b of next) if (b.expiresAt < earliest) earliest = b.expiresAt;
    if (earliest !== Infinity) this.schedule(key, earliest);
  }

  private schedule(aor: string, at: number): void {
    // A second the sweep has passed already would never be visited again: the next sweep takes it instead.
    const sec = this.cursor !== 0 ? Math.max(Math.ceil(at / 1000), this.cursor) : Math.ceil(at / 1000);
    let bucket = this.wheel.get(sec);
    if (!bucket) this.wheel.set(sec, (bucket = []));
    bucket.push(aor);
  }

  load(bindings: BindingRecord[], aor?: string): void {
    if (aor !== undefined) {
      this.set(aor, bindings);
      return;
    }
    const by = new Map<string, BindingRecord[]>();
    for (const b of bindings) {
      const l = by.get(b.aor);
      if (l) l.push(b);
      else by.set(b.aor, [b]);
    }
    for (const [a, list] of by) this.set(a, list);
  }

  claimDue(now: number): string[] {
    const nowSec = Math.floor(now / 1000);
    if (this.cursor === 0) {
      // First sweep: start at the earliest bucket, which may hold bindings due before now.
      this.cursor = nowSec;
      for (const sec of this.wheel.keys()) if (sec < this.cursor) this.cursor = sec;
    }
    const aors = new Set<string>();
    for (let sec = this.cursor; sec <= nowSec; sec++) {
      const bucket = this.wheel.get(sec);
      if (!bucket) continue;
      this.wheel.delete(sec);
      for (const aor of bucket) aors.add(aor);
    }
    this.cursor = nowSec + 1;
    return [...aors];
  }

  async *entries(): AsyncIterable<[string, BindingRecord[]]> {
    for (const [aor, list] of this.map) yield [aor, list];
  }

  counts(): { bindings: number; aors: number } {
    return { bindings: this.bindingCount, aors: this.map.size };
  }

  /**
   * Bindings handed out only while still current when the walker asks for them: a compaction writes each slice
   * in the turn it gathered it, so a binding refreshed or removed meanwhile (with a newer journal row already, or
   * on its way) is never written after its successor. Each array is copied before walking it.
   */
  *walk(): Iterable<BindingRecord> {
    const map = this.map;
    for (const [aor, list] of map) {
      for (const b of list.slice()) {
        const current = map.get(aor);
        if (current !== undefined && current.includes(b)) yield b;
      }
    }
  }
}
