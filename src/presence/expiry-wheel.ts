// Expiry without a timer per item (as the location service and the transaction FIFO do it): one-second buckets
// of items due in that second, swept once a second. A refresh adds the item again under its new second and leaves
// the old entry behind; the sweep hands out only what is really due, so a stale entry costs one comparison.

export class ExpiryWheel<T> {
  private readonly buckets = new Map<number, T[]>();
  private cursor: number;
  private readonly expiresAt: (item: T) => number;
  private readonly live: (item: T) => boolean;

  /** `expiresAt` reads an item's current deadline (epoch ms); `live` says whether it is still held. */
  constructor(now: number, expiresAt: (item: T) => number, live: (item: T) => boolean) {
    this.cursor = Math.floor(now / 1000);
    this.expiresAt = expiresAt;
    this.live = live;
  }

  add(item: T): void {
    const sec = Math.max(this.cursor, Math.ceil(this.expiresAt(item) / 1000));
    let b = this.buckets.get(sec);
    if (!b) this.buckets.set(sec, (b = []));
    b.push(item);
  }

  /** Every held item whose deadline is at or before `now`, each once. */
  due(now: number): T[] {
    const nowSec = Math.floor(now / 1000);
    const out: T[] = [];
    const seen = new Set<T>();
    for (let sec = this.cursor; sec <= nowSec; sec++) {
      const b = this.buckets.get(sec);
      if (!b) continue;
      this.buckets.delete(sec);
      for (const item of b) {
        if (seen.has(item) || !this.live(item)) continue;
        // Not due: it was refreshed, and its new deadline has an entry of its own.
        if (this.expiresAt(item) > now) continue;
        seen.add(item);
        out.push(item);
      }
    }
    this.cursor = nowSec + 1;
    return out;
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }
}
