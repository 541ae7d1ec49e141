// The notifier (RFC 6665 with the presence package of RFC 3856; Kamailio's presence module's SUBSCRIBE side):
// subscriptions as dialogs, watcher policy, and NOTIFY fan-out of the compositor's documents.
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
//
// Over 400 lines on purpose: SUBSCRIBE handling, NOTIFY sending and policy changes all drive one subscription
// state machine (inFlight, dirty, ending, gone); split, each part would reach into the others' state.

import { Errors } from '../errors.ts';
import type { AuthOutcome, SipIdentity } from '../identity/sip-authenticator.ts';
import { isPromise } from '../maybe-promise.ts';
import type { RequestContext } from '../sip/endpoint.ts';
import {
  aorOf,
  createResponse,
  detach,
  keep,
  formatNameAddr,
  formatUri,
  H,
  isSipUri,
  newTag,
  parseContactValues,
  sipError,
  type NameAddr,
  type SipRequest,
  type SipResponse,
} from '../sip/message/index.ts';
import type { Destination, TransportName } from '../sip/transport/types.ts';
import type { PresenceWrite, SubscriptionRecord, WatcherPolicyRecord } from '../storage/ports.ts';
import type { PresenceCompositor } from './composition.ts';
import { domainOf, normalizeAor, type PresenceContext } from './context.ts';
import { acceptsPackage, parseEvent, type EventPackage } from './event-packages.ts';
import { ExpiryWheel } from './expiry-wheel.ts';
import { decide } from './policy.ts';
import { Subscription, subscriptionEvent, type NotifyListener, type SubscriptionTable, type TerminationReason } from './subscriptions.ts';

/** Responses to NOTIFY that end the subscription (RFC 6665 §4.2.2; RFC 5057 §5.1 usage-destroying responses). */
const ENDS_SUBSCRIPTION = new Set([404, 405, 408, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 502, 604]);
/** The parameters of a From that has none but its tag, once the tag is taken out (never changed). */
const NO_PARAMS: Map<string, string | null> = new Map();
/** After a restart our NOTIFY CSeqs jump by this much: the ones sent since the record was last written are unknown. */
const CSEQ_GAP_AFTER_RESTART = 65_536;

/**
 * NOTIFYs of one fan-out per event-loop turn (notifyActive): the first slice small, so the first NOTIFY leaves soon,
 * then doubling, so the whole fan-out takes few turns. 50 a turn throughout (1,000 watchers, bench:presence,
 * 2026-12-07): first NOTIFY 13 → 5.2–5.5 ms, but the last one 38–40 → 49–50 ms (20 turns, each letting the earlier
 * NOTIFYs' answers in first).
 */
const FAN_OUT_FIRST_SLICE = 16;
const FAN_OUT_MAX_SLICE = 512;

/** A SUBSCRIBE between the steps of handleSubscribe (what each step found that the later ones need). */
interface SubscribeRequest {
  req: SipRequest;
  rc: RequestContext;
  pkg: EventPackage;
  eventId: string | null;
  presentity: string;
  fromTag: string;
  watcher: string;
  expires: number;
  toTag: string | null | undefined;
  /** Set once authenticated. */
  identity: SipIdentity | null;
}

export class Notifier implements NotifyListener {
  private readonly ctx: PresenceContext;
  private readonly subs: SubscriptionTable;
  private readonly compositor: PresenceCompositor;
  private readonly policies = new Map<string, WatcherPolicyRecord>();
  private readonly wheel: ExpiryWheel<Subscription>;
  /** Watchers refused for their SUBSCRIBE rate, and when that was last logged. */
  private readonly throttleLogged = new Map<string, number>();
  /** Subscriptions owed their first NOTIFY (notifySoon). */
  private owed: Subscription[] = [];
  /** Shutting down: NOTIFYs that fail now fail because of us, and their subscriptions are kept. */
  private closing = false;
  /** Counters for metrics and the benchmark. */
  readonly counters = { notifies: 0, notifyFailures: 0, dropped: 0 };

  constructor(ctx: PresenceContext, subs: SubscriptionTable, compositor: PresenceCompositor) {
    this.ctx = ctx;
    this.subs = subs;
    this.compositor = compositor;
    this.wheel = new ExpiryWheel<Subscription>(ctx.now(), (s) => s.record.expiresAt, (s) => !s.gone);
    compositor.onChange((aor) => this.notifyActive(aor));
  }

  get size(): number {
    return this.subs.size;
  }

  /** Takes the stored subscriptions and policies at start; those expired while down are deleted (added to `gone`). */
  prime(records: SubscriptionRecord[], policies: WatcherPolicyRecord[], now: number, gone: PresenceWrite[]): void {
    for (const p of policies) this.policies.set(p.aor, p);
    for (const r of records) {
      if (r.expiresAt <= now) {
        gone.push({ op: 'delete-subscription', id: r.id });
        continue;
      }
      // With several nodes a subscription belongs to the node that handed out its Contact: in-dialog requests
      // come back there. Those of a node that is down wait for it (same --node-id) or expire.
      if (this.ctx.o.location.shared && r.flow.node !== this.ctx.o.node) continue;
      // Connections did not survive the restart, and their ids will be handed out again.
      r.flow.connectionId = null;
      r.localCseq += CSEQ_GAP_AFTER_RESTART;
      const s = new Subscription(r);
      this.subs.add(s);
      this.wheel.add(s);
      this.compositor.followAtStart(r.presentity);
    }
  }

  close(): void {
    this.closing = true;
  }

  // ---- SUBSCRIBE (RFC 6665 §4.2.1, RFC 3856 §6) ----

  // The steps run at once while each answer is at hand (in-process lockouts, credential cache, rate-limit bucket,
  // followed presentity) and wait only where they must: the group commit before the 200 always, the rest only over
  // shared state. As one async function that awaited each step, a SUBSCRIBE cost a dozen promises and microtask
  // hops (authenticate, the rate limiter's two cache calls, follow's two, persist): a tenth of what the set-up
  // allocated in bench/presence-hotpath.bench.ts (2026-12-07).
  handleSubscribe = (req: SipRequest, rc: RequestContext): SipResponse | Promise<SipResponse> => {
    const ctx = this.ctx;
    const ev = parseEvent(req.get(H.event));
    if (!ev) return sipError(req, Errors.SIP_ERR_MISSING_HEADER, 'SUBSCRIBE needs an Event header');
    const pkg = ctx.packages.get(ev.event);
    if (!pkg) return ctx.badEvent(req);
    const presentity = ctx.presentityOf(req);
    if (typeof presentity !== 'string') return presentity;
    const from = req.from()!;
    const fromTag = from.params.get('tag');
    if (!fromTag) return sipError(req, Errors.SIP_ERR_HEADER_SYNTAX, 'From needs a tag');
    if (!isSipUri(from.uri) || from.uri.user === null) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'the watcher must be a SIP address of record');
    const watcher = aorOf(from.uri);
    const watcherDomain = from.uri.host.toLowerCase();
    const expires = ctx.expiresOf(req);
    if (typeof expires !== 'number') return expires;

    // The watcher authenticates in its own domain when we serve it, else in the presentity's.
    const realm = ctx.realms.has(watcherDomain) ? watcherDomain : domainOf(presentity);
    const sub: SubscribeRequest = { req, rc, pkg, eventId: ev.id, presentity, fromTag, watcher, expires, toTag: req.to()!.params.get('tag'), identity: null };
    const auth = ctx.o.authenticator.authenticate(req, rc.source, realm, 'presence');
    return isPromise(auth) ? auth.then((a) => this.authenticated(sub, a)) : this.authenticated(sub, auth);
  };

  private authenticated(sub: SubscribeRequest, auth: AuthOutcome): SipResponse | Promise<SipResponse> {
    const { req } = sub;
    if (!auth.ok) return auth.response;
    if (!auth.identity.aors.includes(sub.watcher)) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'From is not the authenticated identity');
    sub.identity = auth.identity;
    // Every SUBSCRIBE but an unsubscribe takes a permit of the watcher's bucket (after authentication: nobody
    // spends another's permits), before anything is looked up or stored.
    const limiter = this.ctx.o.subscribeLimiter;
    if (limiter && !(sub.toTag && sub.expires === 0)) {
      const permit = limiter.take(auth.identity.accountId);
      if (isPromise(permit)) return permit.then((p) => (p.ok ? this.permitted(sub) : this.throttled(req, sub.watcher, p.retryAfter)));
      if (!permit.ok) return this.throttled(req, sub.watcher, permit.retryAfter);
    }
    return this.permitted(sub);
  }

  private permitted(sub: SubscribeRequest): SipResponse | Promise<SipResponse> {
    const followed = this.compositor.follow(sub.presentity);
    return followed === undefined ? this.followed(sub) : followed.then(() => this.followed(sub));
  }

  private followed(sub: SubscribeRequest): SipResponse | Promise<SipResponse> {
    const { req, rc, pkg, toTag } = sub;
    if (toTag) return this.resubscribe(req, rc, pkg, toTag, sub.fromTag, sub.watcher, sub.expires);
    const accept = req.values(H.accept);
    if (!acceptsPackage(accept, pkg)) {
      const res = sipError(req, Errors.PRES_ERR_NOT_ACCEPTABLE, `NOTIFYs of ${pkg.name} carry ${pkg.contentType}`);
      res.append('Accept', pkg.contentType);
      return res;
    }
    const contacts = parseContactValues(req);
    if (contacts === null || contacts === '*' || contacts.length !== 1) return sipError(req, Errors.SIP_ERR_CONTACT, 'SUBSCRIBE needs one Contact');
    // A presentity that does not exist is answered as one whose policy keeps this watcher pending: the same 200 OK
    // and the same bodiless NOTIFY (Subscription-State: pending), so SUBSCRIBE does not tell which accounts
    // (phone numbers) exist. A 404 did.
    const found = this.ctx.o.presentityExists(sub.presentity);
    return isPromise(found) ? found.then((exists) => this.create(sub, contacts[0], accept, exists)) : this.create(sub, contacts[0], accept, found);
  }

  /** A new subscription: stored (the 200 waits for the commit), then its first NOTIFY. */
  private create(sub: SubscribeRequest, contact: NameAddr, accept: string[], exists: boolean): SipResponse | Promise<SipResponse> {
    const { req, rc, pkg, presentity, watcher, expires } = sub;
    const ctx = this.ctx;
    const now = ctx.now();
    const from = req.from()!;
    const to = req.to()!;
    const localTag = newTag();
    // From without its tag (our To): From's parameters copied only when it has others than the tag.
    let params = NO_PARAMS;
    if (from.params.size > 1) {
      params = new Map(from.params);
      params.delete('tag');
    }
    const remote = { displayName: from.displayName, uri: from.uri, params };
    // The strings it keeps are copies (sip/message/detach.ts): cut from the SUBSCRIBE's text, each would keep all of
    // it alive for the subscription's life.
    const record: SubscriptionRecord = {
      id: localTag,
      event: pkg.name,
      eventId: sub.eventId === null ? null : detach(sub.eventId),
      presentity: detach(presentity),
      watcher: detach(watcher),
      watcherAccountId: sub.identity!.accountId,
      state: exists ? decide(this.policies.get(presentity), watcher, presentity) : 'pending',
      callId: detach(req.callId()!),
      localTag,
      remoteTag: detach(sub.fromTag),
      localUri: detach(formatUri(to.uri)),
      remoteNameAddr: detach(formatNameAddr(remote)),
      remoteTarget: detach(formatUri(contact.uri)),
      routeSet: req.values(H.recordRoute).map((v) => detach(v)),
      localCseq: 0,
      remoteCseq: req.cseq()!.seq,
      accept: accept.map((v) => detach(v)),
      flow: ctx.flowOf(rc.source),
      expiresAt: now + expires * 1000,
      createdAt: now,
      updatedAt: now,
    };
    const s = new Subscription(record);
    const res = this.ok(req, localTag, expires, rc.source.transport);

    if (expires === 0) {
      // A fetch (RFC 6665 §4.4.3): the state once, in a NOTIFY that also ends the subscription.
      s.ending = 'timeout';
      s.gone = true;
      setImmediate(() => this.sendNotify(s));
      return res;
    }
    return ctx.persistThen([{ op: 'put-subscription', subscription: record }], req, () => {
      this.subs.add(s);
      this.wheel.add(s);
      ctx.o.keepFlow?.(record.flow, record.expiresAt);
      ctx.o.bus.publish('presence.subscription.created', subscriptionEvent(s, now));
      this.notifySoon(s);
      return res;
    });
  }

  private async resubscribe(req: SipRequest, rc: RequestContext, pkg: EventPackage, toTag: string, fromTag: string, watcher: string, expires: number): Promise<SipResponse> {
    const ctx = this.ctx;
    const s = this.subs.findDialog(req.callId()!, toTag, fromTag);
    if (!s) return sipError(req, Errors.PRES_ERR_NO_SUBSCRIPTION, 'no such subscription');
    const r = s.record;
    if (r.event !== pkg.name) return ctx.badEvent(req);
    if (r.watcher !== watcher) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'not the watcher of this subscription');
    const cseq = req.cseq()!.seq;
    if (cseq <= r.remoteCseq) return sipError(req, Errors.SIP_ERR_DIALOG_CSEQ, 'CSeq out of order');
    const contacts = parseContactValues(req);
    if (contacts === null || contacts === '*' || contacts.length > 1) return sipError(req, Errors.SIP_ERR_CONTACT, 'malformed Contact');
    const now = ctx.now();
    r.remoteCseq = cseq;
    if (contacts.length === 1) r.remoteTarget = keep(r.remoteTarget, formatUri(contacts[0].uri)); // target refresh (RFC 6665 §4.1.2.1)
    r.flow = ctx.flowOf(rc.source);
    r.updatedAt = now;
    const res = this.ok(req, r.localTag, expires, rc.source.transport);
    if (expires === 0) {
      this.end(s, 'timeout', 'unsubscribed');
      return res;
    }
    r.expiresAt = now + expires * 1000;
    if (!(await ctx.persist([{ op: 'put-subscription', subscription: r }]))) return ctx.storeFailed(req);
    this.wheel.add(s);
    ctx.o.keepFlow?.(r.flow, r.expiresAt);
    ctx.o.bus.publish('presence.subscription.refreshed', subscriptionEvent(s, now));
    this.notifySoon(s);
    return res;
  }

  /**
   * 503 with Retry-After to a watcher over its SUBSCRIBE rate. SIP has no "too many requests" (its 429 is RFC 3892's
   * Provide Referrer Identity); RFC 3261 §21.5.4's 503 with Retry-After is the answer for a temporary overload,
   * what Kamailio's ratelimit and pike modules send, and a subscriber retries after it. Logged once a minute per
   * watcher, not per request.
   */
  private throttled(req: SipRequest, watcher: string, retryAfter: number): SipResponse {
    const now = this.ctx.now();
    if ((this.throttleLogged.get(watcher) ?? 0) < now - 60_000) {
      if (this.throttleLogged.size >= 10_000) this.throttleLogged.clear();
      this.throttleLogged.set(watcher, now);
      this.ctx.log.warn({ watcher, retryAfter }, 'presence: SUBSCRIBE rate exceeded, refused with 503 (logged once a minute per watcher)');
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
    res.append('Contact', this.ctx.contact(transport));
    return res;
  }

  // ---- NOTIFY ----

  /**
   * The NOTIFY owed to a new or refreshed subscription, sent once the microtasks now queued have run: its 200 OK
   * leaves when the handler's promise resolves (microtasks), so the NOTIFY follows it, in the same turn (a tick
   * runs after the whole microtask queue). One tick for all those of a turn (a group commit releases a few hundred
   * SUBSCRIBEs at once) rather than one closure each. In the next turn (setImmediate), as before, the watcher had
   * often been woken for its 200 and gone back to sleep when the NOTIFY came: two wake-ups instead of one, and one
   * more event-loop turn on our side (bench:presence, 2026-12-07, three alternating pairs: 102/95/114 -> 99/91/107 us
   * per subscription).
   */
  private notifySoon(s: Subscription): void {
    this.owed.push(s);
    if (this.owed.length === 1) process.nextTick(this.sendOwed);
  }

  private readonly sendOwed = (): void => {
    const owed = this.owed;
    this.owed = [];
    for (const s of owed) this.notify(s);
  };

  /**
   * The presentity's document changed: a NOTIFY to every active watcher; returns how many. They go in growing slices
   * (FAN_OUT_FIRST_SLICE, doubling), each slice in its own event-loop turn: node:dgram hands a datagram to the kernel only after the turn
   * that sent it (its address lookup answers on the next tick), so 1,000 NOTIFYs built in one turn all left after
   * the last was built (the first 13 ms after the PUBLISH in bench:presence, Kamailio's 4 ms); and the 200s to
   * the first slices are read meanwhile rather than after the whole fan-out.
   */
  private notifyActive(aor: string): number {
    const active: Subscription[] = [];
    for (const s of this.subs.of(aor)) if (s.record.state === 'active') active.push(s);
    this.notifySlice(active, 0, FAN_OUT_FIRST_SLICE);
    return active.length;
  }

  private notifySlice(list: Subscription[], from: number, size: number): void {
    if (this.closing) return;
    const end = Math.min(list.length, from + size);
    for (let i = from; i < end; i++) {
      const s = list[i];
      // Still active: a policy change or an end in between sent what the watcher should see now.
      if (s.record.state === 'active') this.notify(s);
    }
    if (end < list.length) setImmediate(() => this.notifySlice(list, end, Math.min(size * 2, FAN_OUT_MAX_SLICE)));
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
    const now = this.ctx.now();
    let state: string;
    let body: Buffer | null = null;
    if (final !== null) {
      state = `terminated;reason=${final}`;
      // The last state goes with the end of a subscription that was allowed to see it (RFC 6665 §4.2.2).
      if (r.state === 'active' && final === 'timeout') body = this.compositor.document(r.presentity).body;
    } else {
      state = `${r.state};expires=${Math.max(0, Math.ceil((r.expiresAt - now) / 1000))}`;
      if (r.state === 'active') body = this.compositor.document(r.presentity).body;
    }
    const f = r.flow;
    const o = this.ctx.o;
    const contact = this.ctx.contact(f.transport as TransportName);
    const contentType = body && this.ctx.packages.get(r.event)!.contentType;
    this.counters.notifies++;
    s.sentEnding = final;
    s.listener = this;
    let sent: Promise<SipResponse>;
    if (o.relay?.isRemote(f)) sent = o.relay.send(s.notifyRequest(state, contact, body && { body, contentType: contentType! }), f);
    else {
      const dest: Destination = { transport: f.transport as TransportName, address: f.address, port: f.port, connectionId: f.node === o.node ? f.connectionId : null };
      if (o.endpoint.requestWire) {
        // As text (Subscription.notifyText), without a message object; the subscription hears how it ended.
        const { startLine, headers } = s.notifyText(state, contact, contentType);
        o.endpoint.requestWire('NOTIFY', startLine, headers, body, dest, s);
        return;
      }
      sent = o.endpoint.request(s.notifyRequest(state, contact, body && { body, contentType: contentType! }), dest);
    }
    sent.then(
      (res) => s.final(res),
      (err: Error) => s.failed(err),
    );
  }

  /** The NOTIFY in flight of `s` was answered (NotifyListener). */
  answered(s: Subscription, res: SipResponse): void {
    this.notified(s, res.status, s.sentEnding);
  }

  /** The NOTIFY in flight of `s` timed out or could not be sent (NotifyListener). */
  unanswered(s: Subscription, err: Error): void {
    this.notifyFailed(s, err, s.sentEnding);
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
    this.ctx.log.info({ id: s.id, presentity: s.record.presentity, watcher: s.record.watcher, why }, 'presence subscription dropped: the subscriber does not answer');
    this.ctx.persistInBackground([{ op: 'delete-subscription', id: s.id }]);
    this.ctx.o.bus.publish('presence.subscription.terminated', { ...subscriptionEvent(s, this.ctx.now()), reason: 'giveup', cause: 'notify-failed' });
  }

  /** Ends a subscription: out of the table and the store, and a final NOTIFY with the reason (after the current turn). */
  private end(s: Subscription, reason: TerminationReason, cause: string): void {
    if (s.gone) return;
    this.subs.remove(s);
    s.ending = reason;
    this.ctx.persistInBackground([{ op: 'delete-subscription', id: s.id }]);
    this.ctx.o.bus.publish('presence.subscription.terminated', { ...subscriptionEvent(s, this.ctx.now()), reason, cause });
    setImmediate(() => {
      if (!s.inFlight) this.sendNotify(s);
    });
  }

  /** Ends the subscriptions that expired. */
  sweep(now: number): void {
    for (const s of this.wheel.due(now)) this.end(s, 'timeout', 'expired');
  }

  // ---- watchers and policy ----

  /** Active and pending subscriptions to the presentity. */
  counts(aor: string): { active: number; pending: number } {
    let active = 0;
    let pending = 0;
    for (const s of this.subs.of(aor)) {
      if (s.record.state === 'active') active++;
      else pending++;
    }
    return { active, pending };
  }

  /** Every subscription to the presentity, oldest first. */
  watchers(aor: string): Subscription[] {
    return [...this.subs.of(aor)].sort((a, b) => a.record.createdAt - b.record.createdAt);
  }

  policy(aor: string): WatcherPolicyRecord {
    return this.policies.get(aor) ?? { aor, mode: 'realm', allow: [], updatedAt: 0 };
  }

  /**
   * Replaces the presentity's watcher policy. Pending subscriptions it now allows become active (and get the
   * state at once); active ones it no longer allows end with reason=rejected (RFC 6665 §4.2.2).
   */
  async setPolicy(aor: string, mode: WatcherPolicyRecord['mode'], allow: string[]): Promise<WatcherPolicyRecord> {
    const { o } = this.ctx;
    const policy: WatcherPolicyRecord = { aor, mode, allow: [...new Set(allow.map(normalizeAor))], updatedAt: this.ctx.now() };
    await o.store.putPolicy(policy);
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
    if (activated.length) await o.store.write(activated.map((s) => ({ op: 'put-subscription' as const, subscription: s.record })));
    const now = this.ctx.now();
    for (const s of activated) {
      o.bus.publish('presence.subscription.activated', subscriptionEvent(s, now));
      this.notify(s);
    }
    o.bus.publish('presence.policy.changed', { aor, mode: policy.mode, allow: policy.allow });
    return policy;
  }

  /** A watcher policy changed on another node. */
  applyPolicyReplica(p: WatcherPolicyRecord | { aor: string; deleted: true }): void {
    if ('deleted' in p) this.policies.delete(p.aor);
    else this.policies.set(p.aor, p);
  }

  /** The account behind `aor` is gone: the subscriptions to it and its own end. */
  endFor(aor: string): void {
    for (const s of [...this.subs.of(aor)]) this.end(s, 'noresource', 'account-removed');
    for (const s of [...this.subs.values()]) if (s.record.watcher === aor) this.end(s, 'rejected', 'account-removed');
  }

  /** Forgets the presentity's watcher policy, durably (its account is gone). */
  async removePolicy(aor: string): Promise<void> {
    this.policies.delete(aor);
    await this.ctx.o.store.deletePolicy(aor);
  }
}
