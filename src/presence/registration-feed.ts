// Registration changes of the presentities this node composes: one bus subscription per followed address of
// record (`binding.*.<domain>.<user>`), so a broker delivers a node the binding events of its own watchers'
// presentities and nothing else. Following every binding change instead cost a scale-out node one delivery per
// REGISTER on every node, the broker's largest cost per registration (bench/RESULTS.md).
//
// A presentity is followed from its first subscription or publication on this node; one nobody has watched or
// published for a while is let go by `prune` (a node that lets go too early would miss changes, so pruning waits
// out the set-up of a subscription in progress).

import type { EventBus } from '../bus/event-bus.ts';
import { bindingTopic } from '../registrar/location-service.ts';

/** How long a followed presentity is kept without interest before `prune` may let it go. */
const GRACE_MS = 60_000;

interface Followed {
  unsubscribe: () => void;
  /** Last time the presentity was followed or found of interest. */
  seen: number;
  /** The bus has said the subscription is in effect (a `subscribed()` made after it resolved). */
  live: boolean;
}

export class RegistrationFeed {
  private readonly bus: EventBus;
  private readonly onChange: (aor: string) => void;
  private readonly now: () => number;
  private readonly followed = new Map<string, Followed>();

  constructor(bus: EventBus, onChange: (aor: string) => void, now: () => number = Date.now) {
    this.bus = bus;
    this.onChange = onChange;
    this.now = now;
  }

  get size(): number {
    return this.followed.size;
  }

  /** Follows `aor`'s binding changes (once however often called); `ready` says when the broker delivers them. */
  follow(aor: string): void {
    const f = this.followed.get(aor);
    if (f) {
      f.seen = this.now();
      return;
    }
    const unsubscribe = this.bus.subscribe(bindingTopic('*', aor), () => this.onChange(aor));
    this.followed.set(aor, { unsubscribe, seen: this.now(), live: false });
  }

  /** Resolves once every follow so far is in effect: read the presentity's bindings after this, not before. */
  ready(): Promise<void> {
    return this.bus.subscribed();
  }

  /**
   * As `ready`, for one followed presentity: undefined when its follow is known to be in effect already (every
   * SUBSCRIBE but a presentity's first), so that costs no promise and no microtask.
   */
  readyFor(aor: string): Promise<void> | undefined {
    const f = this.followed.get(aor);
    if (f?.live) return undefined;
    return this.bus.subscribed().then(() => {
      if (f) f.live = true;
    });
  }

  /** Lets go of the presentities `wanted` says no, once their grace period has passed. */
  prune(wanted: (aor: string) => boolean): number {
    const now = this.now();
    let dropped = 0;
    for (const [aor, f] of this.followed) {
      if (wanted(aor)) f.seen = now;
      else if (now - f.seen >= GRACE_MS) {
        f.unsubscribe();
        this.followed.delete(aor);
        dropped++;
      }
    }
    return dropped;
  }

  close(): void {
    for (const f of this.followed.values()) f.unsubscribe();
    this.followed.clear();
  }
}
