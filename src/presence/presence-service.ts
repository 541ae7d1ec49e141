// The presence service: notifier (RFC 6665 with the presence package of RFC 3856) and event state compositor
// (RFC 3903) in one. It answers SUBSCRIBE and PUBLISH, composes one PIDF document per presentity from what was
// published and what is registered (compose.ts), and pushes it in NOTIFYs to every watcher the presentity's
// policy allows (policy.ts).
//
// - Subscriptions are dialogs (subscriptions.ts): Call-ID, both tags, remote target, route set, both CSeqs, and
//   the subscriber's own flow (transport, source address and port, TCP connection), over which every NOTIFY goes
//   through a client transaction. A new or refreshed subscription gets its 200 OK, then at once a NOTIFY with the
//   full state; a subscription ends (unsubscribe, expiry, policy, account removed) with a final NOTIFY saying
//   terminated and why. A subscriber whose NOTIFY times out, fails to send, or is answered with a response that
//   ends the dialog usage (RFC 5057: 481, 408, ...) is dropped.
// - Fan-out: the document is built once per presentity state and shared by every NOTIFY; each dialog's request
//   is a few prebuilt header strings. At most one NOTIFY per dialog is in flight: a change meanwhile marks the
//   dialog dirty, and the next NOTIFY carries the latest state (changes coalesce instead of queueing).
// - Publications (publications.ts): entity tags, refresh without body, modify and remove with SIP-If-Match, 412
//   for an entity tag we do not hold. The HTTP API publishes through the same path.
// - Expiry: one wheel of one-second buckets for subscriptions and one for publications, swept once a second.
// - Durability: every change is written through the PresenceStore (group-committed) before the 200 OK; memory
//   is the hot copy, primed from the store at start.
// - Registration changes arrive as binding events on the bus, for the presentities watched or published on this
//   node only (registration-feed.ts); each is recomposed once per turn however many of its bindings changed.

import type { EventBus } from '../bus/event-bus.ts';
import { Errors } from '../errors.ts';
import type { Config } from '../config.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { Logger } from '../log.ts';
import { isPromise } from '../maybe-promise.ts';
import { parseDeltaSeconds } from '../registrar/contact.ts';
import type { RequestContext } from '../sip/endpoint.ts';
import {
  aorOf,
  createResponse,
  formatNameAddr,
  formatUri,
  H,
  isSipUri,
  newTag,
  parseContactValues,
  parseNameAddr,
  SipRequest,
  SipResponse,
  sipError,
} from '../sip/message/index.ts';
import { intervalTooBrief, ownContact, servedRequestUri } from '../sip/uas-checks.ts';
import type { Destination, Source, TransportName } from '../sip/transport/types.ts';
import type {
  BindingRecord,
  FlowRecord,
  PresenceStore,
  PresenceWrite,
  PublicationRecord,
  SubscriptionRecord,
  WatcherPolicyRecord,
} from '../storage/ports.ts';
import { compose, sameFlow, type ComposedPresence } from './compose.ts';
import type { PresenceState } from './model.ts';
import { acceptsPackage, EventPackages, isPackageType, parseEvent, type EventPackage } from './event-packages.ts';
import { ExpiryWheel } from './expiry-wheel.ts';
import { parsePidf, PidfError, renderPidf } from './pidf.ts';
import { decide } from './policy.ts';
import { newEntityTag, PublicationTable } from './publications.ts';
import { RegistrationFeed } from './registration-feed.ts';
import { Subscription, SubscriptionTable, type TerminationReason } from './subscriptions.ts';

/** What the service needs of the SIP endpoint. */
export interface NotifySender {
  request(req: SipRequest, dest: Destination): Promise<SipResponse>;
  localAddress(transport: TransportName): { host: string; port: number } | null;
}

export interface PresenceServiceOptions {
  endpoint: NotifySender;
  authenticator: Pick<SipAuthenticator, 'authenticate'>;
  /** Bindings by AOR: synchronous from the in-process index, a promise from a shared one (`shared`). */
  location: { lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]>; readonly shared?: boolean };
  store: PresenceStore;
  bus: EventBus;
  /** Whether a presentity (an account's AOR) exists and is enabled. */
  presentityExists: (aor: string) => boolean | Promise<boolean>;
  rules: Pick<Config['presence'], 'defaultExpires' | 'minExpires' | 'maxExpires'>;
  /** Served domains, lower-case. */
  realms: string[];
  isLocalHost: (host: string) => boolean;
  node: string;
  log: Logger;
  now?: () => number;
  /** Sweep expired subscriptions and publications once a second (default); tests turn it off and call sweep(). */
  sweepTimer?: boolean;
  /** A subscription rides on this flow until `until` (epoch ms): keep a TCP connection open that long. */
  keepFlow?: (flow: FlowRecord, until: number) => void;
  /**
   * Sends NOTIFYs over their subscription's flow, through the node holding its connection when that is another
   * node (bus/flow-relay.ts). Without it NOTIFYs go out here, and another node's connection is not used.
   */
  relay?: { send(req: SipRequest, flow: FlowRecord): Promise<SipResponse> };
  /** Derived tuples carry their binding's contact (the device's address): off unless the operator says so. */
  derivedContacts?: boolean;
  /**
   * SUBSCRIBEs per authenticated watcher (a token bucket keyed by its account): beyond it 503 with Retry-After.
   * Without it, unlimited.
   */
  subscribeLimiter?: { take(key: string): Promise<{ ok: true } | { ok: false; retryAfter: number }> };
}

/** Responses to NOTIFY that end the subscription (RFC 6665 §4.2.2; RFC 5057 §5.1 usage-destroying responses). */
const ENDS_SUBSCRIPTION = new Set([404, 405, 408, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 502, 604]);
/** After a restart our NOTIFY CSeqs jump by this much: the ones sent since the record was last written are unknown. */
const CSEQ_GAP_AFTER_RESTART = 65_536;

interface PresentityDoc {
  composed: ComposedPresence;
  xml: string;
  body: Buffer;
}

export interface HttpPresenceInput {
  basic: 'open' | 'closed';
  activities?: string[];
  note?: string;
  expires?: number;
}

export class PresenceService {
  private readonly o: PresenceServiceOptions;
  private readonly packages = new EventPackages();
  private readonly subs = new SubscriptionTable();
  private readonly pubs = new PublicationTable();
  private readonly policies = new Map<string, WatcherPolicyRecord>();
  private readonly docs = new Map<string, PresentityDoc>();
  private readonly realms: Set<string>;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly subWheel: ExpiryWheel<Subscription>;
  private readonly pubWheel: ExpiryWheel<PublicationRecord>;
  private readonly contactByTransport = new Map<string, string>();
  /** Watchers refused for their SUBSCRIBE rate, and when that was last logged. */
  private readonly throttleLogged = new Map<string, number>();
  private touched = new Set<string>();
  private touchScheduled = false;
  /**
   * With a shared location index (several nodes), the bindings of the presentities this node composes, read
   * before each composition (`refresh`) so that composing stays synchronous.
   */
  private readonly sharedBindings = new Map<string, BindingRecord[]>();
  private timer: NodeJS.Timeout | null = null;
  private readonly feed: RegistrationFeed;
  private sweeps = 0;
  /** Shutting down: NOTIFYs that fail now fail because of us, and their subscriptions are kept. */
  private closing = false;
  /** Counters for metrics and the benchmark. */
  readonly counters = { notifies: 0, notifyFailures: 0, dropped: 0 };

  constructor(o: PresenceServiceOptions) {
    this.o = o;
    this.realms = new Set(o.realms);
    this.now = o.now ?? Date.now;
    this.log = o.log;
    const now = this.now();
    this.subWheel = new ExpiryWheel<Subscription>(now, (s) => s.record.expiresAt, (s) => !s.gone);
    this.pubWheel = new ExpiryWheel<PublicationRecord>(now, (p) => p.expiresAt, (p) => this.pubs.has(p));
    this.feed = new RegistrationFeed(o.bus, (aor) => this.touch(aor), this.now);
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  get publicationCount(): number {
    return this.pubs.size;
  }

  /** Loads subscriptions, publications and policies; drops what expired while down; starts expiry and bus intake. */
  async prime(): Promise<{ subscriptions: number; publications: number; expired: number }> {
    const now = this.now();
    const [subs, pubs, policies] = await Promise.all([this.o.store.loadSubscriptions(), this.o.store.loadPublications(), this.o.store.loadPolicies()]);
    for (const p of policies) this.policies.set(p.aor, p);
    const gone: PresenceWrite[] = [];
    for (const r of subs) {
      if (r.expiresAt <= now) {
        gone.push({ op: 'delete-subscription', id: r.id });
        continue;
      }
      // With several nodes a subscription belongs to the node that handed out its Contact: in-dialog requests
      // come back there. Those of a node that is down wait for it (same --node-id) or expire.
      if (this.o.location.shared && r.flow.node !== this.o.node) continue;
      // Connections did not survive the restart, and their ids will be handed out again.
      r.flow.connectionId = null;
      r.localCseq += CSEQ_GAP_AFTER_RESTART;
      const s = new Subscription(r);
      this.subs.add(s);
      this.subWheel.add(s);
      this.feed.follow(r.presentity);
    }
    for (const p of pubs) {
      if (p.expiresAt <= now) {
        gone.push({ op: 'delete-publication', etag: p.etag });
        continue;
      }
      p.flow.connectionId = null;
      this.pubs.add(p);
      this.pubWheel.add(p);
      this.feed.follow(p.aor);
    }
    if (gone.length) await this.o.store.write(gone);
    if (this.o.sweepTimer !== false) {
      this.timer = setInterval(() => this.sweep(), 1000);
      this.timer.unref();
    }
    await this.feed.ready();
    return { subscriptions: this.subs.size, publications: this.pubs.size, expired: gone.length };
  }

  /** Stops expiry and bus intake; call before the endpoint closes (its pending NOTIFYs then fail harmlessly). */
  close(): void {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.feed.close();
  }

  // ---- SUBSCRIBE (RFC 6665 §4.2.1, RFC 3856 §6) ----

  handleSubscribe = async (req: SipRequest, ctx: RequestContext): Promise<SipResponse> => {
    const ev = parseEvent(req.get(H.event));
    if (!ev) return sipError(req, Errors.SIP_ERR_MISSING_HEADER, 'SUBSCRIBE needs an Event header');
    const pkg = this.packages.get(ev.event);
    if (!pkg) return this.badEvent(req);
    const presentity = this.presentityOf(req);
    if (typeof presentity !== 'string') return presentity;
    const from = req.from()!;
    const fromTag = from.params.get('tag');
    if (!fromTag) return sipError(req, Errors.SIP_ERR_HEADER_SYNTAX, 'From needs a tag');
    if (!isSipUri(from.uri) || from.uri.user === null) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'the watcher must be a SIP address of record');
    const watcher = aorOf(from.uri);
    const watcherDomain = from.uri.host.toLowerCase();
    const expires = this.expiresOf(req);
    if (typeof expires !== 'number') return expires;

    // The watcher authenticates in its own domain when we serve it, else in the presentity's.
    const realm = this.realms.has(watcherDomain) ? watcherDomain : domainOf(presentity);
    const auth = await this.o.authenticator.authenticate(req, ctx.source, realm, 'presence');
    if (!auth.ok) return auth.response;
    if (!auth.identity.aors.includes(watcher)) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'From is not the authenticated identity');
    const toTag = req.to()!.params.get('tag');
    // Every SUBSCRIBE but an unsubscribe takes a permit of the watcher's bucket (after authentication: nobody
    // spends another's permits), before anything is looked up or stored.
    if (this.o.subscribeLimiter && !(toTag && expires === 0)) {
      const permit = await this.o.subscribeLimiter.take(auth.identity.accountId);
      if (!permit.ok) return this.throttled(req, watcher, permit.retryAfter);
    }
    await this.follow(presentity);

    if (toTag) return this.resubscribe(req, ctx, pkg, toTag, fromTag, watcher, expires);

    if (!acceptsPackage(req.values(H.accept), pkg)) {
      const res = sipError(req, Errors.PRES_ERR_NOT_ACCEPTABLE, `NOTIFYs of ${pkg.name} carry ${pkg.contentType}`);
      res.append('Accept', pkg.contentType);
      return res;
    }
    const contacts = parseContactValues(req);
    if (contacts === null || contacts === '*' || contacts.length !== 1) return sipError(req, Errors.SIP_ERR_CONTACT, 'SUBSCRIBE needs one Contact');
    // A presentity that does not exist is answered as one whose policy keeps this watcher pending: the same 200 OK
    // and the same bodiless NOTIFY (Subscription-State: pending), so SUBSCRIBE does not tell which accounts
    // (phone numbers) exist. A 404 did.
    const found = this.o.presentityExists(presentity);
    const exists = isPromise(found) ? await found : found;

    const now = this.now();
    const to = req.to()!;
    const localTag = newTag();
    const remote = { displayName: from.displayName, uri: from.uri, params: new Map(from.params) };
    remote.params.delete('tag');
    const record: SubscriptionRecord = {
      id: localTag,
      event: pkg.name,
      eventId: ev.id,
      presentity,
      watcher,
      watcherAccountId: auth.identity.accountId,
      state: exists ? decide(this.policies.get(presentity), watcher, presentity) : 'pending',
      callId: req.callId()!,
      localTag,
      remoteTag: fromTag,
      localUri: formatUri(to.uri),
      remoteNameAddr: formatNameAddr(remote),
      remoteTarget: formatUri(contacts[0].uri),
      routeSet: req.values(H.recordRoute),
      localCseq: 0,
      remoteCseq: req.cseq()!.seq,
      accept: req.values(H.accept),
      flow: this.flowOf(ctx.source),
      expiresAt: now + expires * 1000,
      createdAt: now,
      updatedAt: now,
    };
    const s = new Subscription(record);
    const res = this.ok(req, localTag, expires, ctx.source.transport);

    if (expires === 0) {
      // A fetch (RFC 6665 §4.4.3): the state once, in a NOTIFY that also ends the subscription.
      s.ending = 'timeout';
      s.gone = true;
      setImmediate(() => this.sendNotify(s));
      return res;
    }
    if (!(await this.persist([{ op: 'put-subscription', subscription: record }]))) return this.storeFailed(req);
    this.subs.add(s);
    this.subWheel.add(s);
    this.o.keepFlow?.(record.flow, record.expiresAt);
    this.o.bus.publish('presence.subscription.created', subscriptionEvent(s, now));
    // The 200 OK leaves when this promise resolves (a microtask); the first NOTIFY follows it.
    setImmediate(() => this.notify(s));
    return res;
  };

  private async resubscribe(req: SipRequest, ctx: RequestContext, pkg: EventPackage, toTag: string, fromTag: string, watcher: string, expires: number): Promise<SipResponse> {
    const s = this.subs.findDialog(req.callId()!, toTag, fromTag);
    if (!s) return sipError(req, Errors.PRES_ERR_NO_SUBSCRIPTION, 'no such subscription');
    const r = s.record;
    if (r.event !== pkg.name) return this.badEvent(req);
    if (r.watcher !== watcher) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'not the watcher of this subscription');
    const cseq = req.cseq()!.seq;
    if (cseq <= r.remoteCseq) return sipError(req, Errors.SIP_ERR_DIALOG_CSEQ, 'CSeq out of order');
    const contacts = parseContactValues(req);
    if (contacts === null || contacts === '*' || contacts.length > 1) return sipError(req, Errors.SIP_ERR_CONTACT, 'malformed Contact');
    const now = this.now();
    r.remoteCseq = cseq;
    if (contacts.length === 1) r.remoteTarget = formatUri(contacts[0].uri); // target refresh (RFC 6665 §4.1.2.1)
    r.flow = this.flowOf(ctx.source);
    r.updatedAt = now;
    const res = this.ok(req, r.localTag, expires, ctx.source.transport);
    if (expires === 0) {
      this.end(s, 'timeout', 'unsubscribed');
      return res;
    }
    r.expiresAt = now + expires * 1000;
    if (!(await this.persist([{ op: 'put-subscription', subscription: r }]))) return this.storeFailed(req);
    this.subWheel.add(s);
    this.o.keepFlow?.(r.flow, r.expiresAt);
    this.o.bus.publish('presence.subscription.refreshed', subscriptionEvent(s, now));
    setImmediate(() => this.notify(s));
    return res;
  }

  /**
   * 503 with Retry-After to a watcher over its SUBSCRIBE rate. SIP has no "too many requests" (its 429 is RFC 3892's
   * Provide Referrer Identity); RFC 3261 §21.5.4's 503 with Retry-After is the answer for a temporary overload,
   * what Kamailio's ratelimit and pike modules send, and a subscriber retries after it. Logged once a minute per
   * watcher, not per request.
   */
  private throttled(req: SipRequest, watcher: string, retryAfter: number): SipResponse {
    const now = this.now();
    if ((this.throttleLogged.get(watcher) ?? 0) < now - 60_000) {
      if (this.throttleLogged.size >= 10_000) this.throttleLogged.clear();
      this.throttleLogged.set(watcher, now);
      this.log.warn({ watcher, retryAfter }, 'presence: SUBSCRIBE rate exceeded, refused with 503 (logged once a minute per watcher)');
    }
    const res = sipError(req, Errors.PRES_ERR_SUBSCRIBE_RATE, 'too many subscriptions; retry later');
    res.append('Retry-After', String(retryAfter));
    return res;
  }

  /** 200 OK to a SUBSCRIBE: our tag, the granted Expires, our Contact, the Record-Route echoed (RFC 3261 §12.1.1). */
  private ok(req: SipRequest, localTag: string, expires: number, transport: TransportName): SipResponse {
    const res = createResponse(req, 200);
    const to = req.get(H.to)!;
    res.set(H.to, req.to()!.params.has('tag') ? to : `${to};tag=${localTag}`);
    for (const rr of req.getAll(H.recordRoute)) res.append('Record-Route', rr);
    res.append('Expires', String(expires));
    res.append('Contact', this.contact(transport));
    return res;
  }

  // ---- PUBLISH (RFC 3903 §6) ----

  handlePublish = async (req: SipRequest, ctx: RequestContext): Promise<SipResponse> => {
    const ev = parseEvent(req.get(H.event));
    if (!ev) return sipError(req, Errors.SIP_ERR_MISSING_HEADER, 'PUBLISH needs an Event header');
    const pkg = this.packages.get(ev.event);
    if (!pkg) return this.badEvent(req);
    const aor = this.presentityOf(req);
    if (typeof aor !== 'string') return aor;
    const expires = this.expiresOf(req);
    if (typeof expires !== 'number') return expires;
    const auth = await this.o.authenticator.authenticate(req, ctx.source, domainOf(aor), 'presence');
    if (!auth.ok) return auth.response;
    if (!auth.identity.aors.includes(aor)) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'only the presentity itself may publish its state');
    await this.follow(aor);

    const ifMatch = req.get(H.sipIfMatch)?.trim();
    const hasBody = req.body.length > 0;
    let state: PresenceState | null = null;
    if (hasBody) {
      if (!isPackageType(req.get(H.contentType), pkg)) {
        const res = sipError(req, Errors.PRES_ERR_MEDIA_TYPE);
        res.append('Accept', pkg.contentType);
        return res;
      }
      try {
        const parsed = parsePidf(req.body.toString('utf8'));
        state = { tuples: parsed.tuples, person: parsed.person, notes: parsed.notes };
      } catch (e) {
        if (e instanceof PidfError) return sipError(req, Errors.PRES_ERR_BODY, e.message);
        throw e;
      }
    }
    const flow = this.flowOf(ctx.source);
    if (ifMatch === undefined) {
      if (!state) return sipError(req, Errors.PRES_ERR_BODY, 'an initial PUBLISH needs a body');
      const etag = newEntityTag();
      if (expires === 0) return this.published(req, etag, 0); // published and at once expired: nothing to keep
      const exists = this.o.presentityExists(aor);
      if (!(isPromise(exists) ? await exists : exists)) return sipError(req, Errors.PRES_ERR_NO_PRESENTITY, 'no such presentity');
      const now = this.now();
      const p: PublicationRecord = { etag, aor, event: pkg.name, state, flow, accountId: auth.identity.accountId, expiresAt: now + expires * 1000, createdAt: now, updatedAt: now };
      // One device, one publication: an initial PUBLISH over the flow of an earlier one replaces it (a device that
      // publishes afresh has lost its entity tag, or sent two at once, as baresip does at start). Its entity tag
      // is then unknown: a refresh with it gets 412 and the device publishes afresh (RFC 3903 §6).
      const writes: PresenceWrite[] = [];
      for (const q of this.pubs.of(aor)) {
        if (q.event !== pkg.name || !sameFlow(q.flow, flow)) continue;
        this.pubs.remove(q);
        writes.push({ op: 'delete-publication', etag: q.etag });
      }
      this.pubs.add(p);
      this.pubWheel.add(p);
      writes.push({ op: 'put-publication', publication: p });
      if (!(await this.persist(writes))) return this.storeFailed(req);
      this.o.bus.publish('presence.publication.created', publicationEvent(p, now));
      this.changed(aor, 'publication');
      return this.published(req, p.etag, expires);
    }

    const p = this.pubs.get(ifMatch);
    if (!p || p.aor !== aor || p.event !== pkg.name) return sipError(req, Errors.PRES_ERR_ETAG, 'unknown entity tag');
    const now = this.now();
    if (expires === 0) {
      this.pubs.remove(p);
      if (!(await this.persist([{ op: 'delete-publication', etag: p.etag }]))) return this.storeFailed(req);
      this.o.bus.publish('presence.publication.removed', publicationEvent(p, now));
      this.changed(aor, 'publication');
      return this.published(req, null, 0);
    }
    // Refresh (no body) or modify (a body): either way a new entity tag (RFC 3903 §6 step 7).
    const old = p.etag;
    this.pubs.retag(p, newEntityTag());
    p.expiresAt = now + expires * 1000;
    p.updatedAt = now;
    p.flow = flow;
    if (state) p.state = state;
    this.pubWheel.add(p);
    if (!(await this.persist([{ op: 'put-publication', publication: p, replaces: old }]))) return this.storeFailed(req);
    this.o.bus.publish(state ? 'presence.publication.modified' : 'presence.publication.refreshed', publicationEvent(p, now));
    if (state) this.changed(aor, 'publication');
    return this.published(req, p.etag, expires);
  };

  private published(req: SipRequest, etag: string | null, expires: number): SipResponse {
    const res = createResponse(req, 200);
    if (etag !== null) res.append('SIP-ETag', etag);
    res.append('Expires', String(expires));
    return res;
  }

  // ---- state, composition and NOTIFY fan-out ----

  /** The presentity's composed state and its PIDF document, built once per state. */
  document(aor: string): PresentityDoc {
    let doc = this.docs.get(aor);
    if (doc) return doc;
    const composed = this.composeFor(aor);
    const xml = renderPidf(`sip:${aor}`, composed);
    doc = { composed, xml, body: Buffer.from(xml, 'utf8') };
    this.docs.set(aor, doc);
    return doc;
  }

  private composeFor(aor: string): ComposedPresence {
    const pubs = this.pubs.of(aor);
    // State set over HTTP speaks for the whole presentity: registrations then add no derived tuples.
    const overHttp = pubs.some((p) => p.flow.transport === 'HTTP');
    return compose(aor, pubs, overHttp ? [] : this.bindingsOf(aor), { contacts: this.o.derivedContacts === true });
  }

  private bindingsOf(aor: string): BindingRecord[] {
    if (this.o.location.shared) return this.sharedBindings.get(aor) ?? [];
    return this.o.location.lookup(aor) as BindingRecord[];
  }

  /** With a shared location index: reads the presentity's bindings before it is composed. */
  async refresh(aor: string): Promise<void> {
    if (!this.o.location.shared) return;
    this.sharedBindings.set(aor, await this.o.location.lookup(aor));
    this.docs.delete(aor);
  }

  /**
   * From now on hears of the presentity's binding changes, then reads its bindings: in that order, a change made
   * meanwhile is either in what is read or in a message still to come.
   */
  private async follow(aor: string): Promise<void> {
    this.feed.follow(aor);
    await this.feed.ready();
    await this.refresh(aor);
  }

  /** Recomposes a presentity; when its document changed, announces it and notifies every active watcher. */
  private changed(aor: string, cause: string): void {
    const before = this.docs.get(aor);
    this.docs.delete(aor);
    const doc = this.document(aor);
    if (before && before.xml === doc.xml) return;
    const c = doc.composed;
    let active = 0;
    for (const s of this.subs.of(aor)) {
      if (s.record.state !== 'active') continue;
      active++;
      this.notify(s);
    }
    this.o.bus.publish('presence.changed', {
      aor,
      basic: c.basic,
      source: c.source,
      activities: c.person?.activities ?? [],
      notes: c.notes,
      tuples: c.tuples.map((t) => ({ id: t.id, basic: t.basic, contact: t.contact })),
      cause,
      watchers: active,
    });
  }

  /** A binding of `aor` changed: recompose it (once this turn) if anyone watches it or it has published state. */
  private touch(aor: string): void {
    if (this.subs.of(aor).size === 0 && this.pubs.of(aor).length === 0) {
      this.docs.delete(aor);
      this.sharedBindings.delete(aor);
      return;
    }
    this.touched.add(aor);
    if (this.touchScheduled) return;
    this.touchScheduled = true;
    setImmediate(() => {
      this.touchScheduled = false;
      const aors = this.touched;
      this.touched = new Set();
      if (!this.o.location.shared) {
        for (const a of aors) this.changed(a, 'registration');
        return;
      }
      for (const a of aors) {
        this.refresh(a).then(
          () => this.changed(a, 'registration'),
          (err: unknown) => this.log.error({ err, aor: a }, 'could not read bindings for presence'),
        );
      }
    });
  }

  /**
   * Publication changes made on another node (`presence.replicate` on the bus): applied to this node's table so
   * that its watchers are notified and PUBLISH refreshes with SIP-If-Match work wherever they arrive. Nothing is
   * written: the node that took the PUBLISH stored it.
   */
  async applyReplica(ops: PresenceWrite[]): Promise<void> {
    const aors = new Set<string>();
    for (const op of ops) {
      if (op.op === 'put-publication') {
        const p = op.publication;
        const prior = this.pubs.get(op.replaces ?? p.etag) ?? this.pubs.get(p.etag);
        if (prior) this.pubs.remove(prior);
        const copy: PublicationRecord = { ...p };
        this.pubs.add(copy);
        this.pubWheel.add(copy);
        aors.add(p.aor);
      } else if (op.op === 'delete-publication') {
        const prior = this.pubs.get(op.etag);
        if (prior) {
          this.pubs.remove(prior);
          aors.add(prior.aor);
        }
      }
    }
    for (const aor of aors) {
      await this.follow(aor);
      this.changed(aor, 'publication');
    }
  }

  /** A watcher policy changed on another node. */
  applyPolicyReplica(p: WatcherPolicyRecord | { aor: string; deleted: true }): void {
    if ('deleted' in p) this.policies.delete(p.aor);
    else this.policies.set(p.aor, p);
  }

  /** Sends the subscription's current state, or marks it dirty when a NOTIFY is already in flight. */
  private notify(s: Subscription): void {
    if (s.gone) return;
    if (s.inFlight) {
      s.dirty = true;
      return;
    }
    this.sendNotify(s);
  }

  private sendNotify(s: Subscription): void {
    s.inFlight = true;
    s.dirty = false;
    const r = s.record;
    const final = s.ending;
    const now = this.now();
    let state: string;
    let body: Buffer | null = null;
    if (final !== null) {
      state = `terminated;reason=${final}`;
      // The last state goes with the end of a subscription that was allowed to see it (RFC 6665 §4.2.2).
      if (r.state === 'active' && final === 'timeout') body = this.document(r.presentity).body;
    } else {
      state = `${r.state};expires=${Math.max(0, Math.ceil((r.expiresAt - now) / 1000))}`;
      if (r.state === 'active') body = this.document(r.presentity).body;
    }
    const req = this.buildNotify(s, state, body);
    const f = r.flow;
    this.counters.notifies++;
    let sent: Promise<SipResponse>;
    if (this.o.relay) sent = this.o.relay.send(req, f);
    else {
      const dest: Destination = { transport: f.transport as TransportName, address: f.address, port: f.port, connectionId: f.node === this.o.node ? f.connectionId : null };
      sent = this.o.endpoint.request(req, dest);
    }
    sent.then(
      (res) => this.notified(s, res.status, final),
      (err: Error) => this.notifyFailed(s, err, final),
    );
  }

  /** The NOTIFY of a dialog (RFC 6665 §4.2.2, RFC 3261 §12.2.1.1): request-URI and Route from the route set. */
  buildNotify(s: Subscription, subscriptionState: string, body: Buffer | null): SipRequest {
    const r = s.record;
    let target = r.remoteTarget;
    let routes = r.routeSet;
    if (routes.length) {
      const first = parseNameAddr(routes[0]);
      if (first && isSipUri(first.uri) && !first.uri.params.has('lr')) {
        // Strict routing (RFC 3261 §12.2.1.1): the first route becomes the Request-URI, the target the last route.
        target = formatUri(first.uri);
        routes = [...routes.slice(1), `<${r.remoteTarget}>`];
      }
    }
    const req = new SipRequest('NOTIFY', target);
    const hs = req.headers;
    for (const route of routes) hs.push({ key: H.route, name: 'Route', value: route });
    hs.push({ key: H.from, name: 'From', value: s.fromValue });
    hs.push({ key: H.to, name: 'To', value: s.toValue });
    hs.push({ key: H.callId, name: 'Call-ID', value: r.callId });
    hs.push({ key: H.cseq, name: 'CSeq', value: `${++r.localCseq} NOTIFY` });
    hs.push({ key: H.contact, name: 'Contact', value: this.contact(r.flow.transport as TransportName) });
    hs.push({ key: H.event, name: 'Event', value: s.eventValue });
    hs.push({ key: H.subscriptionState, name: 'Subscription-State', value: subscriptionState });
    if (body) {
      hs.push({ key: H.contentType, name: 'Content-Type', value: this.packages.get(r.event)!.contentType });
      req.body = body;
    }
    return req;
  }

  private notified(s: Subscription, status: number, final: TerminationReason | null): void {
    s.inFlight = false;
    if (final !== null || this.closing) return; // that was the last NOTIFY of this subscription
    if (status >= 300 && ENDS_SUBSCRIPTION.has(status)) {
      this.drop(s, `NOTIFY answered ${status}`);
      return;
    }
    if (s.ending !== null || (s.dirty && !s.gone)) this.sendNotify(s);
  }

  private notifyFailed(s: Subscription, err: Error, final: TerminationReason | null): void {
    s.inFlight = false;
    this.counters.notifyFailures++;
    if (final !== null || this.closing) return;
    this.drop(s, err.message);
  }

  /** Removes a subscription whose subscriber does not answer: no final NOTIFY, it would not arrive either. */
  private drop(s: Subscription, why: string): void {
    if (s.gone) return;
    this.counters.dropped++;
    this.subs.remove(s);
    this.log.info({ id: s.id, presentity: s.record.presentity, watcher: s.record.watcher, why }, 'presence subscription dropped: the subscriber does not answer');
    this.persistInBackground([{ op: 'delete-subscription', id: s.id }]);
    this.o.bus.publish('presence.subscription.terminated', { ...subscriptionEvent(s, this.now()), reason: 'giveup', cause: 'notify-failed' });
  }

  /** Ends a subscription: out of the table and the store, and a final NOTIFY with the reason (after the current turn). */
  private end(s: Subscription, reason: TerminationReason, cause: string): void {
    if (s.gone) return;
    this.subs.remove(s);
    s.ending = reason;
    this.persistInBackground([{ op: 'delete-subscription', id: s.id }]);
    this.o.bus.publish('presence.subscription.terminated', { ...subscriptionEvent(s, this.now()), reason, cause });
    setImmediate(() => {
      if (!s.inFlight) this.sendNotify(s);
    });
  }

  /** Ends what expired: called once a second (tests call it with a clock of their own). */
  sweep(): void {
    const now = this.now();
    // Every half minute: stop following presentities that nobody here watches or publishes any more.
    if (++this.sweeps % 30 === 0) this.feed.prune((aor) => this.subs.of(aor).size > 0 || this.pubs.of(aor).length > 0);
    for (const s of this.subWheel.due(now)) this.end(s, 'timeout', 'expired');
    const aors = new Set<string>();
    const writes: PresenceWrite[] = [];
    for (const p of this.pubWheel.due(now)) {
      this.pubs.remove(p);
      writes.push({ op: 'delete-publication', etag: p.etag });
      aors.add(p.aor);
      this.o.bus.publish('presence.publication.expired', publicationEvent(p, now));
    }
    if (writes.length) this.persistInBackground(writes);
    for (const aor of aors) this.changed(aor, 'expiry');
  }

  // ---- the HTTP API's view ----

  /** The presentity's composed state. */
  state(aor: string) {
    const doc = this.document(aor);
    const c = doc.composed;
    const now = this.now();
    let active = 0;
    let pending = 0;
    for (const s of this.subs.of(aor)) {
      if (s.record.state === 'active') active++;
      else pending++;
    }
    return {
      aor,
      basic: c.basic,
      source: c.source,
      activities: c.person?.activities ?? [],
      notes: c.notes,
      tuples: c.tuples,
      publications: this.pubs.of(aor).map((p) => ({
        origin: p.flow.transport === 'HTTP' ? 'http' : 'sip',
        transport: p.flow.transport,
        expires: Math.max(0, Math.round((p.expiresAt - now) / 1000)),
        updatedAt: new Date(p.updatedAt).toISOString(),
      })),
      watchers: { active, pending },
      document: doc.xml,
    };
  }

  /** Sets the presentity's state over HTTP: one publication per presentity, replaced on every call. */
  async setState(aor: string, input: HttpPresenceInput, accountId: string | null): Promise<void> {
    await this.follow(aor);
    const now = this.now();
    const expires = Math.min(this.o.rules.maxExpires, Math.max(this.o.rules.minExpires, input.expires ?? this.defaultExpires()));
    const state: PresenceState = {
      tuples: [{ id: 'http', basic: input.basic, contact: null, priority: null, notes: [], timestamp: new Date(now).toISOString() }],
      person: input.activities?.length ? { id: 'p', activities: input.activities, notes: [] } : null,
      notes: input.note ? [input.note] : [],
    };
    const existing = this.pubs.of(aor).find((p) => p.flow.transport === 'HTTP');
    const flow: FlowRecord = { transport: 'HTTP', address: '', port: 0, connectionId: null, node: this.o.node };
    if (existing) {
      const old = existing.etag;
      this.pubs.retag(existing, newEntityTag());
      Object.assign(existing, { state, expiresAt: now + expires * 1000, updatedAt: now, accountId });
      this.pubWheel.add(existing);
      await this.o.store.write([{ op: 'put-publication', publication: existing, replaces: old }]);
      this.o.bus.publish('presence.publication.modified', publicationEvent(existing, now));
    } else {
      const p: PublicationRecord = { etag: newEntityTag(), aor, event: 'presence', state, flow, accountId, expiresAt: now + expires * 1000, createdAt: now, updatedAt: now };
      this.pubs.add(p);
      this.pubWheel.add(p);
      await this.o.store.write([{ op: 'put-publication', publication: p }]);
      this.o.bus.publish('presence.publication.created', publicationEvent(p, now));
    }
    this.changed(aor, 'http');
  }

  /** Removes the state set over HTTP; false when there was none. */
  async clearState(aor: string): Promise<boolean> {
    const existing = this.pubs.of(aor).find((p) => p.flow.transport === 'HTTP');
    if (!existing) return false;
    await this.refresh(aor);
    this.pubs.remove(existing);
    await this.o.store.write([{ op: 'delete-publication', etag: existing.etag }]);
    this.o.bus.publish('presence.publication.removed', publicationEvent(existing, this.now()));
    this.changed(aor, 'http');
    return true;
  }

  /** Every subscription to the presentity. */
  watchers(aor: string) {
    const now = this.now();
    return [...this.subs.of(aor)]
      .sort((a, b) => a.record.createdAt - b.record.createdAt)
      .map((s) => {
        const r = s.record;
        return {
          id: r.id,
          watcher: r.watcher,
          state: r.state,
          event: r.event,
          expires: Math.max(0, Math.round((r.expiresAt - now) / 1000)),
          transport: r.flow.transport,
          address: r.flow.address,
          port: r.flow.port,
          createdAt: new Date(r.createdAt).toISOString(),
          updatedAt: new Date(r.updatedAt).toISOString(),
        };
      });
  }

  policy(aor: string): WatcherPolicyRecord {
    return this.policies.get(aor) ?? { aor, mode: 'realm', allow: [], updatedAt: 0 };
  }

  /**
   * Replaces the presentity's watcher policy. Pending subscriptions it now allows become active (and get the
   * state at once); active ones it no longer allows end with reason=rejected (RFC 6665 §4.2.2).
   */
  async setPolicy(aor: string, mode: WatcherPolicyRecord['mode'], allow: string[]): Promise<WatcherPolicyRecord> {
    const policy: WatcherPolicyRecord = { aor, mode, allow: [...new Set(allow.map(normalizeAor))], updatedAt: this.now() };
    await this.o.store.putPolicy(policy);
    this.policies.set(aor, policy);
    const activated: Subscription[] = [];
    for (const s of [...this.subs.of(aor)]) {
      const d = decide(policy, s.record.watcher, aor);
      if (d === s.record.state) continue;
      if (d === 'pending') {
        this.end(s, 'rejected', 'policy');
        continue;
      }
      s.record.state = 'active';
      activated.push(s);
    }
    if (activated.length) await this.o.store.write(activated.map((s) => ({ op: 'put-subscription' as const, subscription: s.record })));
    const now = this.now();
    for (const s of activated) {
      this.o.bus.publish('presence.subscription.activated', subscriptionEvent(s, now));
      this.notify(s);
    }
    this.o.bus.publish('presence.policy.changed', { aor, mode: policy.mode, allow: policy.allow });
    return policy;
  }

  /** The account behind `aor` is gone: its watchers and its own subscriptions end, its state and policy go. */
  async removePresentity(aor: string): Promise<void> {
    for (const s of [...this.subs.of(aor)]) this.end(s, 'noresource', 'account-removed');
    for (const s of [...this.subs.values()]) if (s.record.watcher === aor) this.end(s, 'rejected', 'account-removed');
    const pubs = this.pubs.of(aor);
    for (const p of pubs) this.pubs.remove(p);
    if (pubs.length) await this.o.store.write(pubs.map((p) => ({ op: 'delete-publication' as const, etag: p.etag })));
    this.policies.delete(aor);
    await this.o.store.deletePolicy(aor);
    this.docs.delete(aor);
  }

  // ---- helpers ----

  private presentityOf(req: SipRequest): string | SipResponse {
    const ruri = servedRequestUri(req, this.realms, this.o.isLocalHost);
    if (ruri instanceof SipResponse) return ruri;
    let uri = ruri;
    if (!this.realms.has(ruri.host.toLowerCase())) {
      // Addressed to this server itself: the presentity is the To URI.
      const to = req.to()!.uri;
      if (!isSipUri(to)) return sipError(req, Errors.PRES_ERR_NO_PRESENTITY, 'presentity must be a SIP URI');
      uri = to;
    }
    if (!this.realms.has(uri.host.toLowerCase()) || uri.user === null) return sipError(req, Errors.PRES_ERR_NO_PRESENTITY, 'no such presentity');
    return aorOf(uri);
  }

  private defaultExpires(): number {
    return Math.min(this.o.rules.maxExpires, Math.max(this.o.rules.minExpires, this.o.rules.defaultExpires));
  }

  /** The lifetime asked for: absent → default; below the minimum → 423 (0 excepted); above the maximum → lowered. */
  private expiresOf(req: SipRequest): number | SipResponse {
    const raw = req.get(H.expires);
    let e: number;
    if (raw === undefined) e = this.defaultExpires();
    else {
      const v = parseDeltaSeconds(raw);
      if (v === null) return sipError(req, Errors.SIP_ERR_HEADER_SYNTAX, 'malformed Expires');
      e = v;
    }
    if (e !== 0 && e < this.o.rules.minExpires) return intervalTooBrief(req, this.o.rules.minExpires);
    return Math.min(e, this.o.rules.maxExpires);
  }

  private flowOf(source: Source): FlowRecord {
    return { transport: source.transport, address: source.address, port: source.port, connectionId: source.connectionId, node: this.o.node };
  }

  /** Our Contact for dialogs over `transport`. */
  private contact(transport: TransportName): string {
    let c = this.contactByTransport.get(transport);
    if (c === undefined) {
      c = ownContact(transport, this.o.endpoint.localAddress(transport));
      this.contactByTransport.set(transport, c);
    }
    return c;
  }

  private badEvent(req: SipRequest): SipResponse {
    const res = sipError(req, Errors.PRES_ERR_BAD_EVENT);
    res.append('Allow-Events', this.packages.allowEvents);
    return res;
  }

  private storeFailed(req: SipRequest): SipResponse {
    return sipError(req, Errors.STORE_ERR_WRITE, 'could not store the change');
  }

  /** Writes and waits; false (logged) when the store failed. */
  private async persist(writes: PresenceWrite[]): Promise<boolean> {
    try {
      await this.o.store.write(writes);
      return true;
    } catch (err) {
      this.log.error({ err }, 'presence change not stored');
      return false;
    }
  }

  private persistInBackground(writes: PresenceWrite[]): void {
    this.o.store.write(writes).catch((err: unknown) => this.log.error({ err }, 'presence change not stored'));
  }
}

function domainOf(aor: string): string {
  return aor.slice(aor.lastIndexOf('@') + 1);
}

/** user@Domain → user@domain (users compare case-sensitively, hosts not). */
export function normalizeAor(aor: string): string {
  const at = aor.lastIndexOf('@');
  return at < 0 ? aor : aor.slice(0, at + 1) + aor.slice(at + 1).toLowerCase();
}

function subscriptionEvent(s: Subscription, now: number): Record<string, unknown> {
  const r = s.record;
  return {
    id: r.id,
    event: r.event,
    presentity: r.presentity,
    watcher: r.watcher,
    state: r.state,
    expires: Math.max(0, Math.round((r.expiresAt - now) / 1000)),
    transport: r.flow.transport,
    address: r.flow.address,
    port: r.flow.port,
  };
}

function publicationEvent(p: PublicationRecord, now: number): Record<string, unknown> {
  return {
    aor: p.aor,
    event: p.event,
    origin: p.flow.transport === 'HTTP' ? 'http' : 'sip',
    expires: Math.max(0, Math.round((p.expiresAt - now) / 1000)),
    tuples: p.state.tuples.map((t) => ({ id: t.id, basic: t.basic })),
    activities: p.state.person?.activities ?? [],
  };
}

