// The location service's ports: the durable store of bindings, the hot index every lookup reads, and (for an
// index shared by several nodes) the cluster around it: who is alive, the flows each holds, who loads the index.

import type { MaybePromise } from '../../maybe-promise.ts';

/** One registered contact of an address of record (the location service's row, Kamailio's usrloc ucontact). */
export interface BindingRecord {
  /** Address of record key: user@domain, host lower-cased. */
  aor: string;
  /** Identity of the binding within the AOR: "+sip.instance|reg-id" for RFC 5626 flows, else the normalised contact URI. */
  key: string;
  /** Contact URI as registered. */
  contact: string;
  /** Contact header parameters other than expires and q, as written (e.g. ;+sip.instance="<urn:…>";reg-id=1). */
  params: string;
  q: number | null;
  /** Epoch ms. */
  expiresAt: number;
  callId: string;
  cseq: number;
  /** Path header values (RFC 3327), outermost first. */
  path: string[];
  instanceId: string | null;
  regId: number | null;
  transport: string;
  sourceAddress: string;
  sourcePort: number;
  localAddress: string;
  localPort: number;
  /** Connection the REGISTER arrived on (stream transports), valid on `node` only. */
  connectionId: number | null;
  /** The node (process) holding that connection. */
  node: string;
  userAgent: string | null;
  /** Epoch ms the binding was first created, and of the last REGISTER that touched it. */
  createdAt: number;
  updatedAt: number;
  /** The account that registered it. */
  accountId: string | null;
}

/** A binding nothing can reach once its connection closes: WebSocket contacts (.invalid hosts), RFC 5626 flows. */
export function diesWithConnection(b: BindingRecord): boolean {
  return b.connectionId !== null && (b.transport === 'WS' || b.transport === 'WSS' || b.regId !== null);
}

export type BindingWrite = { op: 'put'; binding: BindingRecord } | { op: 'delete'; aor: string; key: string };

export interface LocationStore {
  /** Every stored binding (the caller drops the expired ones); used to prime the in-memory index. */
  loadAll(): Promise<BindingRecord[]>;
  /** Applies the writes atomically; resolves once they are durable (group-committed with concurrent writes). */
  write(ops: BindingWrite[]): Promise<void>;
  /** Reads bindings straight from the store (CLI, other processes): of one AOR, or all. */
  list(aor?: string): Promise<BindingRecord[]>;
  /**
   * Housekeeping for log-structured adapters, called periodically with the live set: rewrite it and drop what
   * it supersedes once the journal has outgrown it. Adapters that update in place leave this out.
   */
  maintain?(live: LiveBindings): Promise<void>;
  close?(): void;
}

export interface LiveBindings {
  count: number;
  all(): Iterable<BindingRecord>;
}

/** An AOR's bindings as read, with the version a write must still find (compare-and-set). */
export interface AorState {
  /** May hold bindings that expired but were not swept yet: callers filter by expiresAt. */
  bindings: BindingRecord[];
  version: number | BindingRecord[] | null;
}

/**
 * The hot copy of the location: in-process (one node; reads answer synchronously) or shared (Redis: every node
 * reads and writes the same index, with compare-and-set per AOR and expiry claimed by one node at a time).
 * The LocationStore stays the durable truth; the index is rebuilt from it when empty.
 */
export interface LocationIndex {
  /** True when several nodes share it (writes can then conflict; a LocationCluster comes with it). */
  readonly shared: boolean;
  read(aor: string): MaybePromise<AorState>;
  /** Replaces the AOR's bindings if they are still at `version`; false when another writer got there first. */
  write(aor: string, version: AorState['version'], next: BindingRecord[]): MaybePromise<boolean>;
  /** Replaces the AOR's bindings unconditionally (priming, reload after a failed store write). */
  load(bindings: BindingRecord[], aor?: string): MaybePromise<void>;
  /** AORs holding a binding due by `now`, claimed so that one node expires each. */
  claimDue(now: number): MaybePromise<string[]>;
  /** Every AOR with its bindings. */
  entries(): AsyncIterable<[string, BindingRecord[]]>;
  /** Binding and AOR counts (a shared index answers from its last refresh). */
  counts(): { bindings: number; aors: number };
  /**
   * Synchronous walk of the current bindings, each handed out only while still current (the in-process index),
   * for a log-structured store's compaction.
   */
  walk?(): Iterable<BindingRecord>;
  close?(): void;
}

/**
 * The cluster side of a shared location index (Redis): node membership by heartbeat, the AORs holding each node's
 * connection-bound bindings, and the lease that lets one node load the index for all. The adapter of a shared
 * index implements it too; an in-process index has none (the location service then does none of this).
 */
export interface LocationCluster {
  /** This node is alive until `until` (epoch ms); refreshed every few seconds. */
  heartbeat(node: string, until: number): Promise<void>;
  /**
   * Nodes whose heartbeat lapsed before `now`, each with the time it lapsed, claimed for a minute by
   * the caller (so one node cleans up after each, and another if that one dies too). A node known to hold flows
   * but with no heartbeat on record is given one until `graceUntil`.
   */
  claimDeparted(now: number, graceUntil: number): Promise<Array<{ node: string; lapsedAt: number }>>;
  /** The AORs that held a connection-bound binding of `node` (some may no longer). */
  flowAors(node: string): Promise<string[]>;
  /** `node` is gone and cleaned up: forget its heartbeat and its flow AORs. */
  forgetNode(node: string): Promise<void>;
  /** Whether the index already holds the deployment's bindings; 'mine' when the caller took the lease to load it. */
  beginPriming(): Promise<'primed' | 'mine' | 'busy'>;
  /** The index is loaded: the lease ends and the others find it primed. */
  endPriming(): Promise<void>;
  /** Whether the index still holds the deployment's bindings (false after Redis lost its data). */
  isPrimed(): Promise<boolean>;
}
