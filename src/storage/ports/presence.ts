// Presence's port (RFC 3856 / 3903 / 6665): subscriptions, publications and watcher policies. The presence
// service keeps all three in memory and writes every change through this port, so they survive a restart. What a
// publication says (PresenceState) is the presence domain model, in src/presence/model.ts.

import type { PresenceState } from '../../presence/model.ts';

/** Where a request came from and where requests back must go: the subscriber's or publisher's own flow. */
export interface FlowRecord {
  transport: string;
  address: string;
  port: number;
  /** Connection of a stream transport, valid on `node` only. */
  connectionId: number | null;
  node: string;
}

/** A subscription to an event package (RFC 6665): a dialog in which we are the notifier. */
export interface SubscriptionRecord {
  /** Our identifier for it (also our dialog tag). */
  id: string;
  event: string;
  /** The Event header's id parameter, or null. */
  eventId: string | null;
  /** The presentity watched (user@domain). */
  presentity: string;
  /** The authenticated watcher (user@domain) and its account. */
  watcher: string;
  watcherAccountId: string | null;
  state: 'pending' | 'active';
  callId: string;
  /** Our tag (From of our NOTIFYs) and the subscriber's (From tag of its SUBSCRIBE). */
  localTag: string;
  remoteTag: string;
  /** The To URI of the SUBSCRIBE as written (our From), and its From value without the tag (our To). */
  localUri: string;
  remoteNameAddr: string;
  /** The subscriber's Contact URI (Request-URI of our NOTIFYs), and the Record-Route values in order. */
  remoteTarget: string;
  routeSet: string[];
  /** The last CSeq we sent in this dialog, and the last one the subscriber sent. */
  localCseq: number;
  remoteCseq: number;
  /** MIME types the subscriber accepts (empty: the package's default). */
  accept: string[];
  flow: FlowRecord;
  /** Epoch ms. */
  expiresAt: number;
  createdAt: number;
  updatedAt: number;
}

/** Event state published with PUBLISH (RFC 3903) or over HTTP. */
export interface PublicationRecord {
  /** The current entity tag; a refresh or modification replaces it. */
  etag: string;
  aor: string;
  event: string;
  state: PresenceState;
  /** The publisher's flow ('HTTP' for the HTTP API), to tell which registered device published. */
  flow: FlowRecord;
  accountId: string | null;
  expiresAt: number;
  createdAt: number;
  updatedAt: number;
}

/** Who may watch a presentity: everyone in its realm (the default), an allow list, or nobody. */
export interface WatcherPolicyRecord {
  aor: string;
  mode: 'realm' | 'allow-list' | 'nobody';
  /** Watcher addresses of record (user@domain) allowed in addition to the mode's rule. */
  allow: string[];
  updatedAt: number;
}

export type PresenceWrite =
  | { op: 'put-subscription'; subscription: SubscriptionRecord }
  | { op: 'delete-subscription'; id: string }
  | { op: 'put-publication'; publication: PublicationRecord; replaces?: string }
  | { op: 'delete-publication'; etag: string };

export interface PresenceStore {
  loadSubscriptions(): Promise<SubscriptionRecord[]>;
  loadPublications(): Promise<PublicationRecord[]>;
  loadPolicies(): Promise<WatcherPolicyRecord[]>;
  /** Applies the writes atomically; resolves once durable (group-committed with concurrent writes). */
  write(ops: PresenceWrite[]): Promise<void>;
  putPolicy(p: WatcherPolicyRecord): Promise<void>;
  deletePolicy(aor: string): Promise<void>;
  close?(): void;
}
