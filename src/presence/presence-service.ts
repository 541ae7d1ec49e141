// The presence service: notifier (RFC 6665 with the presence package of RFC 3856) and event state compositor
// (RFC 3903), split as Kamailio splits presence / presence_xml / pua, behind this facade:
//
// - notifier.ts: SUBSCRIBE, subscriptions as dialogs, watcher policy (policy.ts), NOTIFY fan-out.
// - publication-state.ts: PUBLISH, entity tags, the publications' expiry and their replicas from other nodes.
// - composition.ts: one PIDF document per presentity from publications and registrations (compose.ts), recomposed
//   when either changes; registration changes come from the bus (registration-feed.ts).
// - http-api.ts: the HTTP API's view and its own publication per presentity.
// - context.ts: the options and the checks all of them share.
//
// Durability: every change is written through the PresenceStore (group-committed) before the 200 OK; memory is
// the hot copy, primed from the store at start. Expiry: one wheel of one-second buckets for subscriptions and
// one for publications, swept once a second from here.

import type { RequestContext } from '../sip/endpoint.ts';
import type { SipRequest, SipResponse } from '../sip/message/index.ts';
import type { PresenceWrite, WatcherPolicyRecord } from '../storage/ports.ts';
import { PresenceCompositor, type PresentityDoc } from './composition.ts';
import { PresenceContext, type PresenceServiceOptions } from './context.ts';
import { PresenceApi, type HttpPresenceInput } from './http-api.ts';
import { Notifier } from './notifier.ts';
import { PublicationState } from './publication-state.ts';
import { PublicationTable } from './publications.ts';
import { SubscriptionTable } from './subscriptions.ts';

export type { NotifySender, PresenceServiceOptions } from './context.ts';
export { normalizeAor } from './context.ts';
export type { HttpPresenceInput } from './http-api.ts';

export class PresenceService {
  private readonly ctx: PresenceContext;
  private readonly compositor: PresenceCompositor;
  private readonly publications: PublicationState;
  private readonly notifier: Notifier;
  private readonly api: PresenceApi;
  private timer: NodeJS.Timeout | null = null;
  private sweeps = 0;
  /** Counters for metrics and the benchmark. */
  readonly counters: Notifier['counters'];

  constructor(o: PresenceServiceOptions) {
    const ctx = (this.ctx = new PresenceContext(o));
    const subs = new SubscriptionTable();
    const pubs = new PublicationTable();
    this.compositor = new PresenceCompositor(ctx, pubs, subs);
    this.publications = new PublicationState(ctx, pubs, this.compositor);
    this.notifier = new Notifier(ctx, subs, this.compositor);
    this.api = new PresenceApi(ctx, { compositor: this.compositor, pubs, publications: this.publications, notifier: this.notifier });
    this.counters = this.notifier.counters;
  }

  get subscriptionCount(): number {
    return this.notifier.size;
  }

  get publicationCount(): number {
    return this.publications.size;
  }

  /** Loads subscriptions, publications and policies; drops what expired while down; starts expiry and bus intake. */
  async prime(): Promise<{ subscriptions: number; publications: number; expired: number }> {
    const { o } = this.ctx;
    const now = this.ctx.now();
    const [subs, pubs, policies] = await Promise.all([o.store.loadSubscriptions(), o.store.loadPublications(), o.store.loadPolicies()]);
    const gone: PresenceWrite[] = [];
    this.notifier.prime(subs, policies, now, gone);
    this.publications.prime(pubs, now, gone);
    if (gone.length) await o.store.write(gone);
    if (o.sweepTimer !== false) {
      this.timer = setInterval(() => this.sweep(), 1000);
      this.timer.unref();
    }
    await this.compositor.ready();
    return { subscriptions: this.notifier.size, publications: this.publications.size, expired: gone.length };
  }

  /** Stops expiry and bus intake; call before the endpoint closes (its pending NOTIFYs then fail harmlessly). */
  close(): void {
    this.notifier.close();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.compositor.close();
  }

  /** Ends what expired: called once a second (tests call it with a clock of their own). */
  sweep(): void {
    const now = this.ctx.now();
    // Every half minute: stop following presentities that nobody here watches or publishes any more.
    if (++this.sweeps % 30 === 0) this.compositor.prune();
    this.notifier.sweep(now);
    this.publications.sweep(now);
  }

  // ---- SIP ----

  get handleSubscribe(): (req: SipRequest, rc: RequestContext) => SipResponse | Promise<SipResponse> {
    return this.notifier.handleSubscribe;
  }

  get handlePublish(): (req: SipRequest, rc: RequestContext) => Promise<SipResponse> {
    return this.publications.handlePublish;
  }

  // ---- composition and replicas ----

  /** The presentity's composed state and its PIDF document, built once per state. */
  document(aor: string): PresentityDoc {
    return this.compositor.document(aor);
  }

  /** With a shared location index: reads the presentity's bindings before it is composed. */
  refresh(aor: string): Promise<void> {
    return this.compositor.refresh(aor);
  }

  /** Publication changes made on another node (`presence.replicate` on the bus). */
  applyReplica(ops: PresenceWrite[]): Promise<void> {
    return this.publications.applyReplica(ops);
  }

  /** A watcher policy changed on another node. */
  applyPolicyReplica(p: WatcherPolicyRecord | { aor: string; deleted: true }): void {
    this.notifier.applyPolicyReplica(p);
  }

  // ---- the HTTP API's view (http-api.ts) ----

  state(aor: string): ReturnType<PresenceApi['state']> {
    return this.api.state(aor);
  }

  setState(aor: string, input: HttpPresenceInput, accountId: string | null): Promise<void> {
    return this.api.setState(aor, input, accountId);
  }

  clearState(aor: string): Promise<boolean> {
    return this.api.clearState(aor);
  }

  watchers(aor: string): ReturnType<PresenceApi['watchers']> {
    return this.api.watchers(aor);
  }

  policy(aor: string): WatcherPolicyRecord {
    return this.api.policy(aor);
  }

  setPolicy(aor: string, mode: WatcherPolicyRecord['mode'], allow: string[]): Promise<WatcherPolicyRecord> {
    return this.api.setPolicy(aor, mode, allow);
  }

  removePresentity(aor: string): Promise<void> {
    return this.api.removePresentity(aor);
  }
}
