// Subscriptions held by the notifier: the dialog state of each (RFC 6665 §4.2, RFC 3261 §12), indexed by id,
// by dialog (Call-ID and both tags) and by presentity, with what NOTIFY sending needs per dialog: at most one
// NOTIFY in flight (a change meanwhile only marks the dialog dirty, and the next NOTIFY carries the latest
// state), and a final NOTIFY owed when the subscription ends.

import type { TransactionOutcome } from '../sip/endpoint.ts';
import { formatUri, isSipUri, parseMessage, parseNameAddr, type SipRequest, type SipResponse } from '../sip/message/index.ts';
import type { SubscriptionRecord } from '../storage/ports.ts';

export type TerminationReason = 'timeout' | 'rejected' | 'noresource' | 'deactivated' | 'giveup';

/** Who hears how a subscription's NOTIFY ended (the notifier). */
export interface NotifyListener {
  answered(s: Subscription, res: SipResponse): void;
  unanswered(s: Subscription, err: Error): void;
}

/**
 * A subscription, and the outcome of its NOTIFY in flight (there is at most one): the client transaction tells this
 * object, which tells the notifier, so a NOTIFY of a fan-out allocates no promise or closure for its answer.
 */
export class Subscription implements TransactionOutcome {
  record: SubscriptionRecord;
  /** Told how the NOTIFY in flight ended. */
  listener: NotifyListener | null = null;
  /** The reason the NOTIFY in flight ended the subscription with, or null. */
  sentEnding: TerminationReason | null = null;
  /** A NOTIFY is in flight: changes wait for its answer. */
  inFlight = false;
  /** The state changed while a NOTIFY was in flight. */
  dirty = false;
  /** The subscription has ended; its final NOTIFY (with this reason) is owed or on its way. */
  ending: TerminationReason | null = null;
  /** Out of the table. */
  gone = false;
  /** From and To of our NOTIFYs, built once per dialog. */
  readonly fromValue: string;
  readonly toValue: string;
  readonly eventValue: string;
  /** The start line and Route lines of a dialog with a route set, for the remote target they were built for. */
  private routed: { target: string; startLine: string; lines: string } | null = null;

  constructor(record: SubscriptionRecord) {
    this.record = record;
    this.fromValue = `<${record.localUri}>;tag=${record.localTag}`;
    this.toValue = `${record.remoteNameAddr};tag=${record.remoteTag}`;
    this.eventValue = record.eventId === null ? record.event : `${record.event};id=${record.eventId}`;
  }

  get id(): string {
    return this.record.id;
  }

  final(res: SipResponse): void {
    this.listener?.answered(this, res);
  }

  failed(err: Error): void {
    this.listener?.unanswered(this, err);
  }

  /**
   * The dialog's next NOTIFY (RFC 6665 §4.2.2, RFC 3261 §12.2.1.1) as wire text for SipEndpoint.requestWire: its
   * start line (Request-URI from the route set) and header lines (Route, From, To, Call-ID, the next local CSeq,
   * our `contact`, Event, Subscription-State, and Content-Type when `contentType` is given), concatenated per NOTIFY
   * from the record and the From and To values built once. Keeping the whole text per dialog cost 420 bytes of heap
   * a subscription (bench:presence, 2026-12-07: 2,187 bytes against 1,766) for a CPU difference the runs could not
   * show (one run with it read 21.9 µs a NOTIFY, five without 24.7–32.6).
   */
  notifyText(subscriptionState: string, contact: string, contentType: string | null): { startLine: string; headers: string } {
    const r = this.record;
    let startLine: string;
    let routes = '';
    if (r.routeSet.length === 0) startLine = `NOTIFY ${r.remoteTarget} SIP/2.0`;
    else {
      if (this.routed === null || this.routed.target !== r.remoteTarget) this.routed = routedText(r.remoteTarget, r.routeSet);
      startLine = this.routed.startLine;
      routes = this.routed.lines;
    }
    let headers = `${routes}From: ${this.fromValue}\r\nTo: ${this.toValue}\r\nCall-ID: ${r.callId}\r\nCSeq: ${++r.localCseq} NOTIFY\r\nContact: ${contact}\r\nEvent: ${this.eventValue}\r\nSubscription-State: ${subscriptionState}\r\n`;
    if (contentType !== null) headers += `Content-Type: ${contentType}\r\n`;
    return { startLine, headers };
  }

  /** The same NOTIFY as a message object (for the flow relay to another node, and for tests). */
  notifyRequest(subscriptionState: string, contact: string, body: { body: Buffer; contentType: string } | null): SipRequest {
    const { startLine, headers } = this.notifyText(subscriptionState, contact, body && body.contentType);
    const head = Buffer.from(`${startLine}\r\n${headers}Content-Length: ${body ? body.body.length : 0}\r\n\r\n`, 'latin1');
    return parseMessage(body ? Buffer.concat([head, body.body]) : head) as SipRequest;
  }
}

/** A routed dialog's start line and Route lines (RFC 3261 §12.2.1.1), for its remote target. */
function routedText(remoteTarget: string, routeSet: string[]): { target: string; startLine: string; lines: string } {
  let target = remoteTarget;
  let routes = routeSet;
  const first = parseNameAddr(routes[0]);
  if (first && isSipUri(first.uri) && !first.uri.params.has('lr')) {
    // Strict routing: the first route becomes the Request-URI, the target the last route.
    target = formatUri(first.uri);
    routes = [...routes.slice(1), `<${remoteTarget}>`];
  }
  let lines = '';
  for (const route of routes) lines += `Route: ${route}\r\n`;
  return { target: remoteTarget, startLine: `NOTIFY ${target} SIP/2.0`, lines };
}

/** What a subscription shows outside: in its bus events and in the HTTP API's list of watchers. */
export function subscriptionView(s: Subscription, now: number) {
  const r = s.record;
  return {
    id: r.id,
    event: r.event,
    watcher: r.watcher,
    state: r.state,
    expires: Math.max(0, Math.round((r.expiresAt - now) / 1000)),
    transport: r.flow.transport,
    address: r.flow.address,
    port: r.flow.port,
  };
}

/** The bus event of a subscription change (presence.subscription.*). */
export function subscriptionEvent(s: Subscription, now: number): Record<string, unknown> {
  return { ...subscriptionView(s, now), presentity: s.record.presentity };
}

export class SubscriptionTable {
  /**
   * By id, which is the local tag for every subscription made here: our tag alone finds the dialog (our tags are
   * unique, newTag), and Call-ID and the remote tag are then compared. A map keyed by all three cost a joined key
   * to build, flatten and hash and one more map entry per subscription, 4 % of the set-up's sampled CPU
   * (bench/presence-hotpath.bench.ts, 2026-12-07). Records whose id is something else are found through byLocalTag.
   */
  private readonly byId = new Map<string, Subscription>();
  private readonly byLocalTag = new Map<string, Subscription>();
  private readonly byPresentity = new Map<string, Set<Subscription>>();

  get size(): number {
    return this.byId.size;
  }

  add(s: Subscription): void {
    const r = s.record;
    this.byId.set(r.id, s);
    if (r.localTag !== r.id) this.byLocalTag.set(r.localTag, s);
    let set = this.byPresentity.get(r.presentity);
    if (!set) this.byPresentity.set(r.presentity, (set = new Set()));
    set.add(s);
  }

  remove(s: Subscription): void {
    const r = s.record;
    if (this.byId.get(r.id) !== s) return;
    s.gone = true;
    this.byId.delete(r.id);
    if (r.localTag !== r.id && this.byLocalTag.get(r.localTag) === s) this.byLocalTag.delete(r.localTag);
    const set = this.byPresentity.get(r.presentity);
    if (set) {
      set.delete(s);
      if (set.size === 0) this.byPresentity.delete(r.presentity);
    }
  }

  get(id: string): Subscription | undefined {
    return this.byId.get(id);
  }

  findDialog(callId: string, localTag: string, remoteTag: string): Subscription | undefined {
    let s = this.byId.get(localTag);
    if (s === undefined || s.record.localTag !== localTag) s = this.byLocalTag.get(localTag);
    return s !== undefined && s.record.callId === callId && s.record.remoteTag === remoteTag ? s : undefined;
  }

  /** The subscriptions to one presentity (a live set: copy before changing the table while walking it). */
  of(presentity: string): ReadonlySet<Subscription> {
    return this.byPresentity.get(presentity) ?? EMPTY;
  }

  values(): IterableIterator<Subscription> {
    return this.byId.values();
  }

  presentities(): IterableIterator<string> {
    return this.byPresentity.keys();
  }
}

const EMPTY: ReadonlySet<Subscription> = new Set();
