// The HTTP-facing presence API (in the manner of Kamailio's pua: state set on a presentity's behalf): its composed
// state, state set and cleared over HTTP (a publication of its own, through the same path as PUBLISH), its
// watchers and watcher policy, and the clean-up when its account goes. Routes: src/http/routes/presence.ts.

import type { PresenceCompositor } from './composition.ts';
import type { PresenceContext } from './context.ts';
import type { PresenceState } from './model.ts';
import type { Notifier } from './notifier.ts';
import type { PublicationState } from './publication-state.ts';
import type { PublicationTable } from './publications.ts';
import { subscriptionView } from './subscriptions.ts';
import type { WatcherPolicyRecord } from '../storage/ports.ts';

export interface HttpPresenceInput {
  basic: 'open' | 'closed';
  activities?: string[];
  note?: string;
  expires?: number;
}

export class PresenceApi {
  private readonly ctx: PresenceContext;
  private readonly compositor: PresenceCompositor;
  private readonly pubs: PublicationTable;
  private readonly publications: PublicationState;
  private readonly notifier: Notifier;

  constructor(ctx: PresenceContext, parts: { compositor: PresenceCompositor; pubs: PublicationTable; publications: PublicationState; notifier: Notifier }) {
    this.ctx = ctx;
    this.compositor = parts.compositor;
    this.pubs = parts.pubs;
    this.publications = parts.publications;
    this.notifier = parts.notifier;
  }

  /** The presentity's composed state. */
  state(aor: string) {
    const doc = this.compositor.document(aor);
    const c = doc.composed;
    const now = this.ctx.now();
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
      watchers: this.notifier.counts(aor),
      document: doc.xml,
    };
  }

  /** Sets the presentity's state over HTTP: one publication per presentity, replaced on every call. */
  async setState(aor: string, input: HttpPresenceInput, accountId: string | null): Promise<void> {
    const { rules } = this.ctx.o;
    const expires = Math.min(rules.maxExpires, Math.max(rules.minExpires, input.expires ?? this.ctx.defaultExpires()));
    const build = (now: number): PresenceState => ({
      tuples: [{ id: 'http', basic: input.basic, contact: null, priority: null, notes: [], timestamp: new Date(now).toISOString() }],
      person: input.activities?.length ? { id: 'p', activities: input.activities, notes: [] } : null,
      notes: input.note ? [input.note] : [],
    });
    await this.publications.putHttp(aor, build, expires, accountId);
  }

  /** Removes the state set over HTTP; false when there was none. */
  clearState(aor: string): Promise<boolean> {
    return this.publications.removeHttp(aor);
  }

  /** Every subscription to the presentity. */
  watchers(aor: string) {
    const now = this.ctx.now();
    return this.notifier.watchers(aor).map((s) => ({
      ...subscriptionView(s, now),
      createdAt: new Date(s.record.createdAt).toISOString(),
      updatedAt: new Date(s.record.updatedAt).toISOString(),
    }));
  }

  policy(aor: string): WatcherPolicyRecord {
    return this.notifier.policy(aor);
  }

  setPolicy(aor: string, mode: WatcherPolicyRecord['mode'], allow: string[]): Promise<WatcherPolicyRecord> {
    return this.notifier.setPolicy(aor, mode, allow);
  }

  /** The account behind `aor` is gone: its watchers and its own subscriptions end, its state and policy go. */
  async removePresentity(aor: string): Promise<void> {
    this.notifier.endFor(aor);
    await this.publications.removeAll(aor);
    await this.notifier.removePolicy(aor);
    this.compositor.forget(aor);
  }
}
