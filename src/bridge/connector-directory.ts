// The connectors an app node knows of, from their hellos (wire.ts): which types each serves, the key to seal
// session-time credentials to, each type's stay key, and when it was last heard. One not heard for
// CONNECTOR_DEAD_MS is gone. Picking spreads new links over the live connectors of a type by fewest links given.

import type { LinkType } from '../storage/ports/bridge.ts';
import { CONNECTOR_DEAD_MS, type Hello } from './wire.ts';

interface Known {
  hello: Hello;
  lastSeen: number;
  given: number;
}

export class ConnectorDirectory {
  private readonly known = new Map<string, Known>();
  /** Every type a connector has announced since this node started (what linking may name, even while one restarts). */
  private readonly announced = new Set<LinkType>();
  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  /** Records a hello; true when the connector is new (or back after it was given up for dead). */
  heard(h: Hello): boolean {
    for (const t of h.types) this.announced.add(t);
    const k = this.known.get(h.connector);
    if (k && this.alive(h.connector)) {
      k.hello = h;
      k.lastSeen = this.now();
      return false;
    }
    this.known.set(h.connector, { hello: h, lastSeen: this.now(), given: 0 });
    return true;
  }

  /** Forgets a connector whose links were dealt with. */
  gone(id: string): void {
    this.known.delete(id);
  }

  /** A connector said bye: dead at once (the next sweep frees its links), not forgotten. */
  left(id: string): void {
    const k = this.known.get(id);
    if (k) k.lastSeen = -Infinity;
  }

  alive(id: string | null): boolean {
    if (id === null) return false;
    const k = this.known.get(id);
    return k !== undefined && this.now() - k.lastSeen < CONNECTOR_DEAD_MS;
  }

  get(id: string): Hello | null {
    return this.alive(id) ? this.known.get(id)!.hello : null;
  }

  /** A live connector of the type (fewest links given by this node first), or null. */
  pick(type: LinkType): Hello | null {
    let best: Known | null = null;
    for (const [id, k] of this.known) {
      if (!this.alive(id) || !k.hello.types.includes(type)) continue;
      if (!best || k.given < best.given) best = k;
    }
    if (!best) return null;
    best.given++;
    return best.hello;
  }

  /** Connectors heard of once and silent since (their links need another home or a state saying so). */
  dead(): string[] {
    return [...this.known.keys()].filter((id) => !this.alive(id));
  }

  types(): Set<LinkType> {
    const out = new Set<LinkType>();
    for (const [id, k] of this.known) if (this.alive(id)) for (const t of k.hello.types) out.add(t);
    return out;
  }

  /** Types announced by any connector since this node started. */
  everServed(): Set<LinkType> {
    return new Set(this.announced);
  }
}
