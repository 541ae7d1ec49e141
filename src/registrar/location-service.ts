// The location service (Kamailio's usrloc): bindings by address of record, held in a LocationIndex for lookups
// (in-process, or shared by every node through Redis) and kept durable in the LocationStore. The registrar
// decides *what* changes (registrar.ts); this file makes a change visible, durable and announced, and expires
// bindings on time.
//
// - Reads and writes: a write names the version it read (compare-and-set per AOR), so two nodes changing one
//   AOR cannot lose each other's change; the loser re-reads and plans again. `update` is the one such loop: the
//   registrar, removals, priming and the expiry sweep all plan through it. With the in-process index reads
//   answer synchronously and nothing yields between read and write, so conflicts never happen there.
// - Expiry: the index hands out the AORs with a binding due (a one-second wheel in process; a sorted set with a
//   lease in Redis, so one node expires each); the service removes what is due, durably, and announces it.
// - Durability: `apply` updates the index first (so concurrent REGISTERs for one AOR see each other in order)
//   and resolves when the store has committed; if the store fails, the AOR is reloaded from the store so the
//   index never claims what disk does not hold.
// - Membership: with a shared index, node-membership.ts keeps this node's heartbeat and cleans up after the
//   nodes that departed.
//
// Over 400 lines on purpose: the compare-and-set loop, durability, priming, connection-bound removals and expiry
// all keep the same invariants (versions, the expiry wheel, the connection map); the bus form of binding events
// (topic and payload) closes the file.

import { domainWord, valueWord, type EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import { isPromise, settle, type MaybePromise } from '../maybe-promise.ts';
import { NodeMembership } from './node-membership.ts';
import { parked, parkOrDrop } from './push-params.ts';
import { diesWithConnection, type AorState, type BindingRecord, type BindingWrite, type LocationCluster, type LocationIndex, type LocationStore } from '../storage/ports/location.ts';

export { diesWithConnection };

export type BindingEvent = 'added' | 'refreshed' | 'removed' | 'expired';

export interface BindingChange {
  event: BindingEvent;
  binding: BindingRecord;
}

const BATCH = { batch: true } as const;

/** How long a starting node waits for another to finish loading the shared index before it gives up. */
const PRIMING_WAIT_MS = 15 * 60_000;

/** Another writer changed the AOR between our read and our write. */
export class LocationConflict extends Error {
  constructor(aor: string) {
    super(`bindings of ${aor} changed concurrently`);
  }
}

export interface LocationServiceOptions {
  store: LocationStore;
  index: LocationIndex;
  /** The cluster around a shared index (membership, flows, the priming lease); none for an in-process index. */
  cluster?: LocationCluster | null;
  /** This process's node name: bindings it holds connections for carry it. */
  node?: string;
  bus: EventBus;
  log: Logger;
  now?: () => number;
  /** Shared index: how often this node says it is alive (ms; default 5000); it is taken for gone after four silent periods. */
  heartbeatMs?: number;
  /** Called for every change after it is durable (metrics, connection keep-alive, Kazoo). */
  onChange?: (changes: BindingChange[]) => void;
}

/** What a plan makes of an AOR: its bindings afterwards, and the changes that lead there (announced). */
export interface LocationPlan {
  next: BindingRecord[];
  changes: BindingChange[];
}

/** A plan that changes nothing and says why (the registrar's refusal, or nothing to do). */
export interface Declined<R> {
  declined: R;
}

/** Compare-and-set attempts before a change is given up (LocationConflict): ten writers racing on one AOR. */
const ATTEMPTS = 10;

export interface UpdateOptions {
  /** The first read, already started (the registrar reads while it authenticates). */
  first?: MaybePromise<AorState> | null;
  /**
   * Index only: the plan's `next` goes into the index, nothing to the store and nothing is announced (the caller
   * does both for a batch: priming, the expiry sweep). Otherwise the change is applied: index, store, announce.
   */
  indexOnly?: boolean;
}

export class LocationService {
  private readonly index: LocationIndex;
  private readonly cluster: LocationCluster | null;
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
  private expiring: Promise<void> | null = null;
  /** With a shared index: this node's heartbeat and the clean-up after departed nodes. */
  private readonly membership: NodeMembership | null;

  constructor(o: LocationServiceOptions) {
    this.node = o.node ?? null;
    this.index = o.index;
    this.cluster = o.cluster ?? null;
    this.store = o.store;
    this.bus = o.bus;
    this.log = o.log;
    this.now = o.now ?? Date.now;
    this.onChange = o.onChange;
    const cluster = this.cluster;
    this.membership =
      cluster && this.node !== null
        ? new NodeMembership({
            cluster,
            node: this.node,
            heartbeatMs: o.heartbeatMs ?? 5000,
            bus: o.bus,
            log: o.log,
            now: this.now,
            remove: (aor, drop) => this.release(aor, drop),
            reload: () => this.reloadAll(),
          })
        : null;
  }

  /** True when the index is shared by several nodes (reads are then asynchronous). */
  get shared(): boolean {
    return this.index.shared;
  }

  /**
   * Fills the index from the store (once for all nodes when it is shared), deletes the bindings that expired
   * while nobody was running and those that needed a connection of this node's previous incarnation, and starts
   * the expiry timer.
   */
  async prime(): Promise<{ loaded: number; expired: number; orphaned: number }> {
    const now = this.now();
    let lease: 'primed' | 'mine' | 'busy' = 'mine';
    const cluster = this.cluster;
    if (cluster) {
      // Another node is loading the shared index: wait for it, as long as it keeps its lease (a million AORs take
      // a minute or so); a node that dies mid-way lets its lease lapse and one of the waiters takes over.
      const deadline = this.now() + PRIMING_WAIT_MS;
      let told = 0;
      while ((lease = await cluster.beginPriming()) === 'busy') {
        if (this.now() > deadline) throw new Error(`another node has been loading the shared location index for over ${PRIMING_WAIT_MS / 60_000} minutes`);
        if (this.now() - told > 10_000) {
          told = this.now();
          this.log.info('waiting for another node to finish loading the shared location index');
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const rows = await this.store.loadAll();
    const gone: BindingRecord[] = [];
    const orphaned: BindingRecord[] = [];
    const live: BindingRecord[] = [];
    for (const b of rows) {
      if (b.expiresAt <= now) gone.push(b);
      // Our previous incarnation's connections are gone: the bindings that needed them are unreachable (those a
      // push can wake are parked, below, and stay until they expire).
      else if (b.connectionId !== null && b.node === this.node && diesWithConnection(b) && !parked(b)) orphaned.push(b);
      else live.push(b);
    }
    const kept = lease === 'mine' ? orphaned.map(parkOrDrop).filter((b) => b !== null) : [];
    if (lease === 'mine') {
      if (kept.length) await this.store.write(kept.map((binding) => ({ op: 'put' as const, binding })));
      await this.index.load([...live, ...kept]);
      await cluster?.endPriming();
    } else {
      // The shared index is primed already: take our orphans out of it, and what expired while no node ran (announced
      // below; left in, the expiry sweep would announce it again, and the counts would hold it meanwhile).
      for (const b of orphaned) await this.release(b.aor, (x) => x.key === b.key && x.connectionId === b.connectionId);
      for (const aor of new Set(gone.map((b) => b.aor))) {
        try {
          await this.update(aor, (_, s) => {
            const keep = s.bindings.filter((x) => x.expiresAt > now);
            return keep.length === s.bindings.length ? { declined: null } : { next: keep, changes: [] };
          }, { indexOnly: true });
        } catch (err) {
          // Left for the expiry sweep (which announces it once more): a start does not fail on one busy AOR.
          if (!(err instanceof LocationConflict)) throw err;
        }
      }
    }
    const dropped = lease === 'mine' ? orphaned.filter((b) => parkOrDrop(b) === null) : []; // release() did the rest
    if (gone.length || dropped.length) {
      await this.store.write([...gone, ...dropped].map((b) => ({ op: 'delete' as const, aor: b.aor, key: b.key })));
      this.announce([...gone.map((binding) => ({ event: 'expired' as const, binding })), ...dropped.map((binding) => ({ event: 'removed' as const, binding }))]);
    }
    this.timer = setInterval(() => void this.expire(), 1000);
    this.timer.unref();
    await this.membership?.start();
    if (this.store.maintain) {
      this.maintenance = setInterval(() => this.maintain(), 10_000);
      this.maintenance.unref();
    }
    return { loaded: lease === 'mine' ? live.length + kept.length : this.index.counts().bindings, expired: gone.length, orphaned: orphaned.length };
  }

  get size(): number {
    return this.index.counts().bindings;
  }

  get aorCount(): number {
    return this.index.counts().aors;
  }

  /** The AOR's bindings and their version, for a read-compute-write (registrar). */
  read(aor: string): AorState | Promise<AorState> {
    return this.index.read(aor);
  }

  /** Current bindings of an AOR (live ones only; an expired binding not yet swept is left out). */
  lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]> {
    return settle(this.index.read(aor), (s) => live(s.bindings, this.now()));
  }

  /** Every AOR with its live bindings. */
  async *entries(): AsyncIterable<[string, BindingRecord[]]> {
    const now = this.now();
    for await (const [aor, list] of this.index.entries()) {
      const l = live(list, now);
      if (l.length) yield [aor, l];
    }
  }

  /**
   * Replaces the AOR's bindings with `next`, given the changes that lead there, if they are still as read in
   * `state` (else LocationConflict). The index changes now; the promise resolves when durable, after which the
   * changes are announced.
   */
  apply(aor: string, state: AorState, next: BindingRecord[], changes: BindingChange[]): Promise<void> {
    if (changes.length === 0) return Promise.resolve();
    // Bindings that expired but were not swept yet leave with this change; say so, and first: they lapsed before
    // this change, which may register the same contact again (stored and announced after its predecessor went, a
    // re-registration's put was followed by the lapsed binding's delete, and a restart lost it).
    const now = this.now();
    let lapsed = 0;
    for (const b of state.bindings) if (b.expiresAt <= now && !next.includes(b)) changes.splice(lapsed++, 0, { event: 'expired', binding: b });
    const written = this.index.write(aor, state.version, next);
    if (isPromise(written)) return written.then((ok) => this.persist(aor, ok, changes));
    return this.persist(aor, written, changes);
  }

  /**
   * The one read-plan-write loop. Reads the AOR, lets `plan` compute the change from its live bindings (and the
   * whole state, expired ones included), and writes it if the AOR is still as read; when another writer changed
   * it meanwhile, reads and plans again (at most ATTEMPTS times, then LocationConflict). A plan that returns
   * `{ declined }` writes nothing, and that is the result. Store failures reject; nothing is thrown.
   *
   * Promise chains, not an async loop: an in-process read answers at once, so the first attempt plans and writes
   * without suspending, and only the store's commit is waited for. As async functions this and apply's persist
   * (under the registrar's own two) cost a frame, a promise and a microtask each per REGISTER; the chain of .then
   * measured 0.21 against 0.68 us for the five layers (a microbenchmark of the same shape).
   */
  update<R>(aor: string, plan: (live: BindingRecord[], state: AorState) => LocationPlan | Declined<R>, o: UpdateOptions = {}): Promise<LocationPlan | Declined<R>> {
    try {
      return this.attempt(aor, plan, o, 1);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Attempt `attempt` of update(): read, plan, write; the next attempt on a conflict. May throw (update catches). */
  private attempt<R>(aor: string, plan: (live: BindingRecord[], state: AorState) => LocationPlan | Declined<R>, o: UpdateOptions, attempt: number): Promise<LocationPlan | Declined<R>> {
    const read = attempt === 1 && o.first ? o.first : this.index.read(aor);
    if (isPromise(read)) return read.then((state) => this.planned(aor, plan, o, attempt, state));
    return this.planned(aor, plan, o, attempt, read);
  }

  private planned<R>(aor: string, plan: (live: BindingRecord[], state: AorState) => LocationPlan | Declined<R>, o: UpdateOptions, attempt: number, state: AorState): Promise<LocationPlan | Declined<R>> {
    const p = plan(live(state.bindings, this.now()), state);
    if ('declined' in p) return Promise.resolve(p);
    if (o.indexOnly) {
      const again = (written: boolean): LocationPlan | Promise<LocationPlan | Declined<R>> => {
        if (written) return p;
        if (attempt >= ATTEMPTS) throw new LocationConflict(aor);
        return this.attempt(aor, plan, o, attempt + 1);
      };
      const w = this.index.write(aor, state.version, p.next);
      return isPromise(w) ? w.then(again) : Promise.resolve(again(w));
    }
    return this.apply(aor, state, p.next, p.changes).then(
      () => p,
      (err: unknown) => {
        if (!(err instanceof LocationConflict) || attempt >= ATTEMPTS) throw err;
        return this.attempt(aor, plan, o, attempt + 1);
      },
    );
  }

  /** `apply` against whatever the AOR holds now (callers that did not read first: tools, tests, benchmarks). */
  async replace(aor: string, next: BindingRecord[], changes: BindingChange[]): Promise<void> {
    return this.apply(aor, await this.index.read(aor), next, changes);
  }

  private persist(aor: string, written: boolean, changes: BindingChange[]): Promise<void> {
    if (!written) return Promise.reject(new LocationConflict(aor));
    const writes: BindingWrite[] = [];
    for (const c of changes) {
      if (c.event === 'added' || c.event === 'refreshed') {
        writes.push({ op: 'put', binding: c.binding });
        const id = c.binding.connectionId;
        if (id !== null && c.binding.node === this.node && diesWithConnection(c.binding) && !parked(c.binding)) {
          let set = this.byConnection.get(id);
          if (!set) this.byConnection.set(id, (set = new Set()));
          set.add(aor);
        }
      } else writes.push({ op: 'delete', aor: c.binding.aor, key: c.binding.key });
    }
    let durable: Promise<void>;
    try {
      durable = this.store.write(writes);
    } catch (e) {
      durable = Promise.reject(e);
    }
    return durable.then(
      () => this.announce(changes),
      (e: unknown) => this.reload(aor).then(() => Promise.reject(e)),
    );
  }

  /**
   * Read-modify-write of one AOR with retries on conflict: `edit` gets the live bindings and returns the ones to
   * keep (it may only remove); the removed ones are announced as `event`.
   */
  private async mutate(aor: string, edit: (live: BindingRecord[]) => BindingRecord[], event: BindingEvent = 'removed'): Promise<BindingRecord[]> {
    let gone: BindingRecord[] = [];
    await this.update(aor, (current) => {
      const keep = edit(current);
      gone = current.filter((b) => !keep.includes(b));
      if (gone.length === 0) return { declined: null };
      return { next: keep, changes: gone.map((binding) => ({ event, binding })) };
    });
    return gone;
  }

  /** Removes every binding of an AOR (its account was deleted, a switch asked), durably, announcing each. */
  async removeAor(aor: string): Promise<void> {
    await this.mutate(aor, () => []);
  }

  /**
   * A connection of this node closed: the bindings that can only be reached through it (WebSocket contacts with
   * .invalid hosts, RFC 5626 flows) go, durably and announced, except those with push parameters, which are parked
   * (release). Plain TCP/TLS bindings stay until they expire: their contact may be reachable by a new connection.
   */
  async connectionClosed(node: string, connectionId: number): Promise<number> {
    const aors = this.byConnection.get(connectionId);
    if (!aors) return 0;
    this.byConnection.delete(connectionId);
    let removed = 0;
    for (const aor of aors) {
      removed += await this.release(aor, (b) => b.connectionId === connectionId && b.node === node && diesWithConnection(b));
    }
    return removed;
  }

  /**
   * The AOR's live bindings that `pick` selects lost their connection: those with push parameters are parked (they
   * stay, durably, until their own expiry, and the proxy pushes them: fork late) without an announcement, since the
   * device is still registered; the rest are removed, durably and announced. Returns how many were removed.
   */
  private async release(aor: string, pick: (b: BindingRecord) => boolean): Promise<number> {
    let removed: BindingRecord[] = [];
    let kept: BindingRecord[] = [];
    const done = await this.update(aor, (current, state) => {
      const next: BindingRecord[] = [];
      removed = [];
      kept = [];
      for (const b of current) {
        const left = pick(b) && !parked(b) ? parkOrDrop(b) : b;
        if (left === null) removed.push(b);
        else if (left !== b) kept.push(left);
        if (left !== null) next.push(left);
      }
      if (removed.length === 0 && kept.length === 0) return { declined: null };
      // Expired ones not yet swept stay for the sweep, which announces them.
      return { next: [...next, ...state.bindings.filter((b) => !current.includes(b))], changes: [] };
    }, { indexOnly: true });
    if ('declined' in done) return 0;
    try {
      await this.store.write([...kept.map((binding) => ({ op: 'put' as const, binding })), ...removed.map((b) => ({ op: 'delete' as const, aor: b.aor, key: b.key }))]);
    } catch (e) {
      await this.reload(aor);
      throw e;
    }
    if (removed.length) this.announce(removed.map((binding) => ({ event: 'removed' as const, binding })));
    return removed.length;
  }

  /** Lets a log-structured store compact itself against the live set (in-process index only). */
  maintain(): Promise<void> {
    const index = this.index;
    const walk = index.walk?.bind(index);
    if (!this.store.maintain || !walk) return Promise.resolve();
    return this.store
      .maintain({ count: index.counts().bindings, all: walk })
      .catch((err: unknown) => this.log.error({ err }, 'location store maintenance failed'));
  }

  /** Re-reads one AOR from the store after a failed write. */
  private async reload(aor: string): Promise<void> {
    try {
      const rows = (await this.store.list(aor)).filter((b) => b.expiresAt > this.now());
      await this.index.load(rows, aor);
    } catch (e) {
      this.log.error({ err: e, aor }, 'could not reload bindings after a failed write');
    }
  }

  /** Removes every binding whose time has come, durably, and announces them. One sweep at a time. */
  expire(): Promise<void> {
    if (this.expiring) return this.expiring;
    this.expiring = this.sweep().finally(() => (this.expiring = null));
    return this.expiring;
  }

  private async sweep(): Promise<void> {
    const now = this.now();
    let due: string[];
    try {
      due = await this.index.claimDue(now);
    } catch (err) {
      this.log.error({ err }, 'could not read the bindings due to expire');
      return;
    }
    const expired: BindingRecord[] = [];
    for (const aor of due) {
      try {
        const done = await this.update(aor, (_, state) => {
          const keep = state.bindings.filter((b) => b.expiresAt > now);
          if (keep.length < state.bindings.length) {
            return { next: keep, changes: state.bindings.filter((b) => b.expiresAt <= now).map((binding) => ({ event: 'expired' as const, binding })) };
          }
          // Nothing due after all (refreshed since): put it back on the wheel at its earliest expiry.
          if (state.version !== null && this.index.shared) return { next: state.bindings, changes: [] };
          return { declined: null };
        }, { indexOnly: true });
        if (!('declined' in done)) for (const c of done.changes) expired.push(c.binding);
      } catch (err) {
        this.log.error({ err, aor }, 'could not expire the bindings of an AOR');
      }
    }
    if (expired.length === 0) return;
    try {
      await this.store.write(expired.map((b) => ({ op: 'delete', aor: b.aor, key: b.key })));
      this.announce(expired.map((binding) => ({ event: 'expired', binding })));
    } catch (err) {
      this.log.error({ err, count: expired.length }, 'could not delete expired bindings from the store; they stay out of the index and are removed on the next start');
    }
  }

  /** Loads every live binding from the store into the index (the shared index lost its data). */
  private async reloadAll(): Promise<number> {
    const now = this.now();
    const rows = (await this.store.loadAll()).filter((b) => b.expiresAt > now);
    await this.index.load(rows);
    return rows.length;
  }

  /**
   * Leaving a shared deployment (graceful stop): this node's connection-bound bindings go now, and the other
   * nodes hear of it (node-membership.ts). In-process, nothing to do: a restart finds them.
   */
  async depart(): Promise<void> {
    if (!this.membership) return;
    try {
      await this.membership.depart();
      this.byConnection.clear();
    } catch (err) {
      this.log.error({ err }, 'could not remove this node\u2019s connection-bound bindings on departure; the other nodes will once its heartbeat lapses');
    }
  }

  private announce(changes: BindingChange[]): void {
    this.onChange?.(changes);
    for (const c of changes) this.bus.publish(bindingTopic(c.event, c.binding.aor), bindingEvent(c), BATCH);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.maintenance) clearInterval(this.maintenance);
    this.membership?.stop();
    this.timer = this.maintenance = null;
    this.index.close?.();
  }
}

/** The bindings not yet expired at `now` (the same array when all are). */
export function live(list: BindingRecord[], now: number): BindingRecord[] {
  for (let i = 0; i < list.length; i++) if (list[i].expiresAt <= now) return list.filter((b) => b.expiresAt > now);
  return list;
}

/**
 * The topic of a binding event: `binding.<event>.<domain>.<user>`, each word encoded as Kazoo encodes routing keys
 * (registration.success.<realm>.<user>), so a consumer binds to what it follows: `binding.#` for everything,
 * `binding.*.<domain>.<user>` for one address of record (the presence service's watched presentities), and a
 * broker delivers nothing to nodes that follow none of it.
 */
export function bindingTopic(event: BindingEvent | '*', aor: string): string {
  const at = aor.lastIndexOf('@');
  return `binding.${event}.${domainWord(aor.slice(at + 1))}.${valueWord(aor.slice(0, at))}`;
}

/** The event payload: the binding as JSON with remaining lifetime, what every bus consumer gets. */
export function bindingEvent(c: BindingChange): Record<string, unknown> {
  const b = c.binding;
  const expires = c.event === 'removed' || c.event === 'expired' ? 0 : Math.max(0, Math.round((b.expiresAt - Date.now()) / 1000));
  return {
    event: c.event,
    aor: b.aor,
    key: b.key,
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
    connectionId: b.connectionId,
    node: b.node,
    userAgent: b.userAgent,
    accountId: b.accountId,
  };
}
