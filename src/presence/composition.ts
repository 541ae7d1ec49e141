// The compositor's side (Kamailio's presence_xml): one PIDF document per presentity, composed from what was
// published (publication-state.ts) and what is registered (compose.ts), built once per state and shared by every
// NOTIFY. Registration changes arrive as binding events on the bus, for the presentities watched or published on
// this node only (registration-feed.ts); each is recomposed once per turn however many of its bindings changed.
// When a document changes, the listener (the notifier) sends it to the active watchers.

import type { BindingRecord } from '../storage/ports.ts';
import { compose, type ComposedPresence } from './compose.ts';
import type { PresenceContext } from './context.ts';
import { renderPidf } from './pidf.ts';
import type { PublicationTable } from './publications.ts';
import { RegistrationFeed } from './registration-feed.ts';
import type { SubscriptionTable } from './subscriptions.ts';

export interface PresentityDoc {
  composed: ComposedPresence;
  xml: string;
  body: Buffer;
}

export class PresenceCompositor {
  private readonly ctx: PresenceContext;
  private readonly pubs: PublicationTable;
  private readonly subs: SubscriptionTable;
  private readonly docs = new Map<string, PresentityDoc>();
  private readonly feed: RegistrationFeed;
  private touched = new Set<string>();
  private touchScheduled = false;
  /**
   * With a shared location index (several nodes), the bindings of the presentities this node composes, read
   * before each composition (`refresh`) so that composing stays synchronous.
   */
  private readonly sharedBindings = new Map<string, BindingRecord[]>();
  /** Told of every changed document; answers how many watchers it notified. */
  private listener: (aor: string) => number = () => 0;

  constructor(ctx: PresenceContext, pubs: PublicationTable, subs: SubscriptionTable) {
    this.ctx = ctx;
    this.pubs = pubs;
    this.subs = subs;
    this.feed = new RegistrationFeed(ctx.o.bus, (aor) => this.touch(aor), ctx.now);
  }

  /** Who hears of changed documents (one listener: the notifier). */
  onChange(listener: (aor: string) => number): void {
    this.listener = listener;
  }

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
    return compose(aor, pubs, overHttp ? [] : this.bindingsOf(aor), { contacts: this.ctx.o.derivedContacts === true });
  }

  private bindingsOf(aor: string): BindingRecord[] {
    if (this.ctx.o.location.shared) return this.sharedBindings.get(aor) ?? [];
    return this.ctx.o.location.lookup(aor) as BindingRecord[];
  }

  /** With a shared location index: reads the presentity's bindings before it is composed. */
  async refresh(aor: string): Promise<void> {
    if (!this.ctx.o.location.shared) return;
    this.sharedBindings.set(aor, await this.ctx.o.location.lookup(aor));
    this.docs.delete(aor);
  }

  /**
   * From now on hears of the presentity's binding changes, then reads its bindings: in that order, a change made
   * meanwhile is either in what is read or in a message still to come.
   */
  follow(aor: string): Promise<void> | undefined {
    this.feed.follow(aor);
    const ready = this.feed.readyFor(aor);
    // Followed and in effect, bindings in the in-process index: nothing to wait for (no promise, no microtask).
    if (ready === undefined && !this.ctx.o.location.shared) return undefined;
    return this.followThen(aor, ready);
  }

  private async followThen(aor: string, ready: Promise<void> | undefined): Promise<void> {
    await ready;
    await this.refresh(aor);
  }

  /** Follows a presentity known at start (its bindings are read when it is first composed or changed). */
  followAtStart(aor: string): void {
    this.feed.follow(aor);
  }

  ready(): Promise<void> {
    return this.feed.ready();
  }

  /** Stops following presentities that nobody here watches or publishes any more. */
  prune(): void {
    this.feed.prune((aor) => this.wanted(aor));
  }

  /** Forgets a presentity's document (its account is gone). */
  forget(aor: string): void {
    this.docs.delete(aor);
  }

  close(): void {
    this.feed.close();
  }

  /** Recomposes a presentity; when its document changed, announces it and has the listener notify its watchers. */
  changed(aor: string, cause: string): void {
    const before = this.docs.get(aor);
    this.docs.delete(aor);
    const doc = this.document(aor);
    if (before && before.xml === doc.xml) return;
    const c = doc.composed;
    const active = this.listener(aor);
    this.ctx.o.bus.publish('presence.changed', {
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

  private wanted(aor: string): boolean {
    return this.subs.of(aor).size > 0 || this.pubs.of(aor).length > 0;
  }

  /** A binding of `aor` changed: recompose it (once this turn) if anyone watches it or it has published state. */
  private touch(aor: string): void {
    if (!this.wanted(aor)) {
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
      if (!this.ctx.o.location.shared) {
        for (const a of aors) this.changed(a, 'registration');
        return;
      }
      for (const a of aors) {
        this.refresh(a).then(
          () => this.changed(a, 'registration'),
          (err: unknown) => this.ctx.log.error({ err, aor: a }, 'could not read bindings for presence'),
        );
      }
    });
  }
}
