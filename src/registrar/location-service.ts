// The location service (Kamailio's usrloc): bindings by address of record, held in memory for lookups and
// kept durable in the LocationStore. The registrar decides *what* changes (registrar.ts); this file makes a
// change visible, durable and announced, and expires bindings on time.
//
// - Index: Map<aor, BindingRecord[]>, primed from the store at startup.
// - Expiry: a wheel of one-second buckets; a bucket holds the AORs that have a binding due in that second, and
//   the sweep expires whatever of those AORs' bindings is due then. A refresh schedules the AOR again at the new
//   time and leaves the old entry to find nothing; entries are AOR strings already held by the index (8 bytes
//   each), not binding objects, which kept every refreshed binding alive for its old lifetime (measured: tens of
//   MB per 20,000 refreshes in the REGISTER benchmark). No per-binding timers.
// - Durability: `apply` updates memory synchronously (so concurrent REGISTERs for one AOR see each other in
//   order) and resolves when the store has committed; if the store fails, the AOR is reloaded from the store
//   so memory never claims what disk does not hold.

import type { EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import type { BindingRecord, BindingWrite, LocationStore } from '../storage/ports.ts';

export type BindingEvent = 'added' | 'refreshed' | 'removed' | 'expired';

export interface BindingChange {
  event: BindingEvent;
  binding: BindingRecord;
}

export interface LocationServiceOptions {
  store: LocationStore;
  /** This process's node name: bindings it holds connections for carry it. */
  node?: string;
  bus: EventBus;
  log: Logger;
  now?: () => number;
  /** Called for every change after it is durable (metrics, connection keep-alive). */
  onChange?: (changes: BindingChange[]) => void;
}

export class LocationService {
  private readonly index = new Map<string, BindingRecord[]>();
  private readonly wheel = new Map<number, string[]>();
  private wheelCursor = 0;
  private bindingCount = 0;
  private readonly store: LocationStore;
  private readonly bus: EventBus;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly onChange?: (changes: BindingChange[]) => void;
  private timer: NodeJS.Timeout | null = null;
  private maintenance: NodeJS.Timeout | null = null;
  private readonly node: string | null;
  /** Connection id → AORs with a binding that lives and dies with that connection (WS, WSS, RFC 5626 flows). */
  private readonly byConnection = new Map<number, Set<string>>();

  constructor(o: LocationServiceOptions) {
    this.node = o.node ?? null;
    this.store = o.store;
    this.bus = o.bus;
    this.log = o.log;
    this.now = o.now ?? Date.now;
    this.onChange = o.onChange;
  }

  /** Loads live bindings from the store, deletes the ones that expired while we were down, starts the expiry timer. */
  async prime(): Promise<{ loaded: number; expired: number; orphaned: number }> {
    const now = this.now();
    const rows = await this.store.loadAll();
    const gone: BindingRecord[] = [];
    const orphaned: BindingRecord[] = [];
    for (const b of rows) {
      if (b.expiresAt <= now) {
        gone.push(b);
        continue;
      }
      // Our previous incarnation's connections are gone: the bindings that needed them are unreachable.
      if (b.connectionId !== null && b.node === this.node && diesWithConnection(b)) {
        orphaned.push(b);
        continue;
      }
      let list = this.index.get(b.aor);
      if (!list) this.index.set(b.aor, (list = []));
      list.push(b);
      this.bindingCount++;
      this.schedule(b);
    }
    if (gone.length || orphaned.length) {
      await this.store.write([...gone, ...orphaned].map((b) => ({ op: 'delete' as const, aor: b.aor, key: b.key })));
      this.announce([...gone.map((binding) => ({ event: 'expired' as const, binding })), ...orphaned.map((binding) => ({ event: 'removed' as const, binding }))]);
    }
    this.wheelCursor = Math.floor(now / 1000);
    this.timer = setInterval(() => this.expire(), 1000);
    this.timer.unref();
    if (this.store.maintain) {
      this.maintenance = setInterval(() => this.maintain(), 10_000);
      this.maintenance.unref();
    }
    return { loaded: this.bindingCount, expired: gone.length, orphaned: orphaned.length };
  }

  /**
   * A connection of this node closed: the bindings that can only be reached through it (WebSocket contacts with
   * .invalid hosts, RFC 5626 flows) go, durably and announced. Plain TCP/TLS bindings stay until they expire:
   * their contact may be reachable by a new connection.
   */
  async connectionClosed(node: string, connectionId: number): Promise<number> {
    const aors = this.byConnection.get(connectionId);
    if (!aors) return 0;
    this.byConnection.delete(connectionId);
    let removed = 0;
    for (const aor of aors) {
      const current = this.lookup(aor);
      const dead = current.filter((b) => b.connectionId === connectionId && b.node === node && diesWithConnection(b));
      if (dead.length === 0) continue;
      removed += dead.length;
      await this.apply(aor, current.filter((b) => !dead.includes(b)), dead.map((binding) => ({ event: 'removed' as const, binding })));
    }
    return removed;
  }

  /**
   * Lets a log-structured store compact itself against the live set.
   *
   * The store rewrites the live set in slices and yields to the event loop between them, while REGISTERs keep
   * changing the index (apply() replaces an AOR's array, expire() splices it in place). So a binding is handed
   * out only if it is still current when the store asks for it (the store writes each slice in the turn it
   * gathered it): one refreshed or removed meanwhile already has a newer journal row, or one on its way, and
   * rewriting the old object after it would bring back a removed binding or roll back an acknowledged refresh.
   * Each AOR's array is copied before walking it, so an in-place splice cannot make the walk skip a binding
   * (whose rows the compaction would then delete).
   */
  maintain(): Promise<void> {
    if (!this.store.maintain) return Promise.resolve();
    const index = this.index;
    return this.store
      .maintain({
        count: this.bindingCount,
        *all() {
          for (const [aor, list] of index) {
            for (const b of list.slice()) {
              const current = index.get(aor);
              if (current !== undefined && current.includes(b)) yield b;
            }
          }
        },
      })
      .catch((err: unknown) => this.log.error({ err }, 'location store maintenance failed'));
  }

  get size(): number {
    return this.bindingCount;
  }

  get aorCount(): number {
    return this.index.size;
  }

  /** Current bindings of an AOR (live ones only; an expired binding not yet swept is left out). */
  lookup(aor: string): BindingRecord[] {
    const list = this.index.get(aor);
    if (!list) return [];
    const now = this.now();
    for (let i = 0; i < list.length; i++) if (list[i].expiresAt <= now) return list.filter((b) => b.expiresAt > now);
    return list;
  }

  /** Every AOR with its live bindings. */
  *entries(): IterableIterator<[string, BindingRecord[]]> {
    for (const aor of this.index.keys()) {
      const live = this.lookup(aor);
      if (live.length) yield [aor, live];
    }
  }

  /**
   * Replaces the AOR's bindings with `next`, given the changes that lead there. Memory changes now; the promise
   * resolves when durable, after which the changes are announced.
   */
  async apply(aor: string, next: BindingRecord[], changes: BindingChange[]): Promise<void> {
    if (changes.length === 0) return;
    const old = this.index.get(aor);
    const before = old?.length ?? 0;
    // Bindings that expired but were not swept yet leave with this change; say so.
    if (old) {
      const now = this.now();
      for (const b of old) if (b.expiresAt <= now && !next.includes(b)) changes.push({ event: 'expired', binding: b });
    }
    if (next.length) this.index.set(aor, next);
    else this.index.delete(aor);
    this.bindingCount += next.length - before;
    const writes: BindingWrite[] = [];
    for (const c of changes) {
      if (c.event === 'added' || c.event === 'refreshed') {
        writes.push({ op: 'put', binding: c.binding });
        this.schedule(c.binding);
        const id = c.binding.connectionId;
        if (id !== null && diesWithConnection(c.binding)) {
          let set = this.byConnection.get(id);
          if (!set) this.byConnection.set(id, (set = new Set()));
          set.add(aor);
        }
      } else writes.push({ op: 'delete', aor: c.binding.aor, key: c.binding.key });
    }
    try {
      await this.store.write(writes);
    } catch (e) {
      await this.reload(aor);
      throw e;
    }
    this.announce(changes);
  }

  /** Removes every binding of an AOR (its account was deleted), durably, announcing each removal. */
  async removeAor(aor: string): Promise<void> {
    const current = this.lookup(aor);
    await this.apply(aor, [], current.map((binding) => ({ event: 'removed' as const, binding })));
  }

  /** Re-reads one AOR from the store after a failed write. */
  private async reload(aor: string): Promise<void> {
    try {
      const rows = (await this.store.list(aor)).filter((b) => b.expiresAt > this.now());
      const before = this.index.get(aor)?.length ?? 0;
      if (rows.length) this.index.set(aor, rows);
      else this.index.delete(aor);
      this.bindingCount += rows.length - before;
      for (const b of rows) this.schedule(b);
    } catch (e) {
      this.log.error({ err: e, aor }, 'could not reload bindings after a failed write');
    }
  }

  private schedule(b: BindingRecord): void {
    const sec = Math.ceil(b.expiresAt / 1000);
    let bucket = this.wheel.get(sec);
    if (!bucket) this.wheel.set(sec, (bucket = []));
    bucket.push(b.aor);
  }

  /** Removes every binding whose time has come, in one store write, and announces them. */
  expire(): Promise<void> {
    const now = this.now();
    const nowSec = Math.floor(now / 1000);
    const expired: BindingRecord[] = [];
    const aors = new Set<string>();
    for (let sec = this.wheelCursor; sec <= nowSec; sec++) {
      const bucket = this.wheel.get(sec);
      if (!bucket) continue;
      this.wheel.delete(sec);
      for (const aor of bucket) aors.add(aor);
    }
    for (const aor of aors) {
      const list = this.index.get(aor);
      if (!list) continue; // removed since
      let due = 0;
      for (const b of list) {
        if (b.expiresAt > now) continue;
        expired.push(b);
        due++;
      }
      if (due === 0) continue; // refreshed since: nothing due
      const keep = list.filter((b) => b.expiresAt > now);
      // A new array, never an in-place splice: a compaction may be walking the old one.
      if (keep.length) this.index.set(aor, keep);
      else this.index.delete(aor);
      this.bindingCount -= list.length - keep.length;
    }
    this.wheelCursor = nowSec + 1;
    if (expired.length === 0) return Promise.resolve();
    return this.store.write(expired.map((b) => ({ op: 'delete', aor: b.aor, key: b.key }))).then(
      () => this.announce(expired.map((binding) => ({ event: 'expired', binding }))),
      (err: unknown) => this.log.error({ err, count: expired.length }, 'could not delete expired bindings from the store; they stay out of memory and are removed on the next start'),
    );
  }

  private announce(changes: BindingChange[]): void {
    this.onChange?.(changes);
    for (const c of changes) this.bus.publish(`binding.${c.event}`, bindingEvent(c));
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.maintenance) clearInterval(this.maintenance);
    this.timer = this.maintenance = null;
  }
}

/** Bindings that nothing can reach once their connection closes. */
export function diesWithConnection(b: BindingRecord): boolean {
  return b.transport === 'WS' || b.transport === 'WSS' || b.regId !== null;
}

/** The event payload: the binding as JSON with remaining lifetime, what every bus consumer gets. */
export function bindingEvent(c: BindingChange): Record<string, unknown> {
  const b = c.binding;
  const expires = c.event === 'removed' || c.event === 'expired' ? 0 : Math.max(0, Math.round((b.expiresAt - Date.now()) / 1000));
  return {
    event: c.event,
    aor: b.aor,
    contact: b.contact,
    params: b.params,
    expires,
    expiresAt: b.expiresAt,
    q: b.q,
    callId: b.callId,
    cseq: b.cseq,
    path: b.path,
    instanceId: b.instanceId,
    regId: b.regId,
    transport: b.transport,
    sourceAddress: b.sourceAddress,
    sourcePort: b.sourcePort,
    node: b.node,
    userAgent: b.userAgent,
    accountId: b.accountId,
  };
}
