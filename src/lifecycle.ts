// How the server's rooms start and stop. Each room has a factory (sip/subsystem.ts, identity/subsystem.ts, …) that
// builds its objects from ports and returns a Subsystem; server.ts adds them to one Lifecycle in dependency order.
// Start runs in that order, stop in the reverse one, so the shutdown order follows from the composition instead
// of a list kept by hand (avvio's plugin order and onClose hooks work the same way).
//
// Where two rooms need each other (a closed connection ends its bindings; a binding keeps its connection open) the
// one built first exposes a Hook and the later one subscribes to it at construction: no forward declarations.

import type { Logger } from './log.ts';

export interface Subsystem {
  /** For the logs. */
  readonly name: string;
  /**
   * Loads state, opens sockets; called once, after the subsystems added before it have started. Without one, the
   * subsystem is live from the moment it is added (what it holds was opened before: storage).
   */
  start?(): void | Promise<void>;
  /** Releases what start (or the factory) took; called once, before the subsystems added before it stop. */
  stop?(): void | Promise<void>;
}

export class Lifecycle {
  private readonly parts: Subsystem[] = [];
  /** Those to stop: started (or starting), or live since added. */
  private readonly live = new Set<Subsystem>();
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  /** Adds a subsystem after those already added (it starts after them and stops before them). */
  add<T extends Subsystem>(part: T): T {
    this.parts.push(part);
    if (!part.start) this.live.add(part);
    return part;
  }

  /** Starts every subsystem in order. If one fails, those already started are stopped (reverse) and it throws. */
  async start(): Promise<void> {
    try {
      for (const part of this.parts) {
        // One whose start fails is stopped too: it may have opened part of what it holds.
        this.live.add(part);
        await part.start?.();
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /**
   * Stops the live subsystems in reverse order; one that fails is logged and the rest still stop. Also what a
   * composition that failed before start calls: what was opened while composing closes.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (let i = this.parts.length - 1; i >= 0; i--) {
        const part = this.parts[i];
        if (!this.live.has(part)) continue;
        try {
          await part.stop?.();
        } catch (err) {
          this.log.error({ err, subsystem: part.name }, 'subsystem did not stop cleanly');
        }
      }
    })();
    return this.stopping;
  }
}

/** Listeners of one kind of event, called in the order they subscribed; async ones are awaited one after another. */
export class Hook<T> {
  private readonly listeners: Array<(value: T) => void | Promise<void>> = [];

  on(listener: (value: T) => void | Promise<void>): void {
    this.listeners.push(listener);
  }

  /** Calls every listener in turn, awaiting each; the first failure rejects (as the one callback did before). */
  async run(value: T): Promise<void> {
    for (const l of this.listeners) await l(value);
  }

  /** Calls every listener synchronously (for listeners that return nothing to wait for: the hot path's). */
  emit(value: T): void {
    for (let i = 0; i < this.listeners.length; i++) void this.listeners[i](value);
  }
}
