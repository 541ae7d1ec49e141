// Fork late (Flexisip's name for it; RFC 8599 §5.3): a device that registered with push parameters (pn-provider,
// pn-prid) and cannot be reached now (the connection it registered on, held by this node, is closed) gets a push
// instead of a branch, and the request waits, bounded, for that device to register again; each binding of it that
// comes up (a REGISTER on any node: its binding.added / binding.refreshed event on the bus) is handed to the waiter,
// which adds it as a branch of the still-pending transaction (fork.ts `addBranch` for INVITE, non-invite.ts for
// MESSAGE). The caller's CANCEL, an answer from another branch, or the timeout end the wait.
//
// The push itself is messaging's (the providers port); the proxy sees it as a DeviceWaker set at composition
// (server.ts), since the proxy room does not import messaging. Without a waker nothing is push-only: the bindings
// are tried as before. Known to be gone: a connection of this node that closed, and a binding the location service
// parked (an RFC 5626 or WebSocket flow with push parameters whose connection closed on any node, or before a
// restart; push-params.ts PARKED). A UDP contact, or a connection another node holds, is tried as a branch.

import type { EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import { bindingTopic } from '../registrar/location-service.ts';
import { parked, pushParamsOf, sameDevice } from '../registrar/push-params.ts';
import type { BindingRecord } from '../storage/ports.ts';

/** Sends a content-free wake-up to the device of a binding; true when the provider accepted it. */
export type DeviceWaker = (b: BindingRecord, kind: 'call' | 'message', ttlSeconds: number) => Promise<boolean>;

export interface LateForkOptions {
  bus: EventBus;
  location: { lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]> };
  node: string;
  /** Whether a connection of this node is open. */
  isOpen: (connectionId: number) => boolean;
  log: Logger;
}

export interface LateWait {
  /** The devices woken, or to be (each by one push). */
  readonly devices: readonly BindingRecord[];
  /** Ends the wait (answered elsewhere, cancelled); no callback after it. */
  stop(): void;
}

interface Waiter {
  aor: string;
  devices: BindingRecord[];
  /** Bindings already handed over (key and connection): a refresh of the same flow is not a second branch. */
  handed: Set<string>;
  onDevice: (b: BindingRecord) => void;
  done: boolean;
}

/** Most requests waiting for pushed devices at once (each holds a transaction and a timer). */
const MAX_WAITERS = 10_000;

export class LateForks {
  private readonly o: LateForkOptions;
  private waker: DeviceWaker | null = null;
  /** Per AOR: the waiters and the one bus subscription to its binding events. */
  private readonly byAor = new Map<string, { waiters: Set<Waiter>; unsubscribe: () => void }>();
  private count = 0;

  constructor(o: LateForkOptions) {
    this.o = o;
  }

  setWaker(w: DeviceWaker | null): void {
    this.waker = w;
  }

  /**
   * The bindings (of those given) that carry push parameters and whose flow is known to be gone, less the devices
   * that are reachable through another of them (registered again from a new flow: no push, that binding rings).
   */
  pushOnly(bindings: readonly BindingRecord[]): BindingRecord[] {
    if (!this.waker || this.count >= MAX_WAITERS) return [];
    const gone = bindings.filter((b) => !this.reachable(b) && pushParamsOf(b.contact) !== null);
    if (gone.length === 0) return gone;
    const up = bindings.filter((b) => this.reachable(b));
    return gone.filter((b) => !up.some((u) => sameDevice(b, u)));
  }

  /** Whether a binding can be tried now (not a parked one, nor one whose connection here is closed). */
  reachable(b: BindingRecord): boolean {
    return !parked(b) && !(b.node === this.o.node && b.connectionId !== null && !this.o.isOpen(b.connectionId));
  }

  /**
   * Pushes each device and hands every binding of them that registers again to `onDevice`, until `stop()` or
   * `timeoutMs` (then `onEnd('timeout')`); when no push could be sent, `onEnd('push-failed')` at once.
   */
  wait(aor: string, devices: BindingRecord[], kind: 'call' | 'message', timeoutMs: number, onDevice: (b: BindingRecord) => void, onEnd: (why: 'timeout' | 'push-failed') => void): LateWait {
    const w: Waiter = { aor, devices, handed: new Set(), onDevice, done: false };
    this.count++;
    let entry = this.byAor.get(aor);
    if (!entry) {
      const waiters = new Set<Waiter>();
      const unsubscribe = this.o.bus.subscribe(bindingTopic('*', aor), (m) => {
        if (m.payload.event === 'added' || m.payload.event === 'refreshed') void this.registered(aor);
      });
      this.byAor.set(aor, (entry = { waiters, unsubscribe }));
    }
    entry.waiters.add(w);
    const stop = () => {
      if (w.done) return;
      w.done = true;
      this.count--;
      clearTimeout(timer);
      const e = this.byAor.get(aor);
      e?.waiters.delete(w);
      if (e && e.waiters.size === 0) {
        e.unsubscribe();
        this.byAor.delete(aor);
      }
    };
    const end = (why: 'timeout' | 'push-failed') => {
      if (w.done) return;
      stop();
      onEnd(why);
    };
    const timer = setTimeout(() => end('timeout'), timeoutMs);
    timer.unref();
    // The subscription is in place before the push leaves: the device's REGISTER cannot come before we listen.
    void this.o.bus
      .subscribed()
      .then(() => Promise.all(devices.map((b) => (this.waker ? this.waker(b, kind, Math.ceil(timeoutMs / 1000)) : false))))
      .then(
        (sent) => {
          if (!sent.some(Boolean)) end('push-failed');
        },
        (err: unknown) => {
          this.o.log.warn({ err, aor }, 'fork late: push failed');
          end('push-failed');
        },
      );
    return { devices, stop };
  }

  /** A binding of the AOR was added or refreshed somewhere: the waiting devices that are back go to their waiters. */
  private async registered(aor: string): Promise<void> {
    const entry = this.byAor.get(aor);
    if (!entry) return;
    let bindings: BindingRecord[];
    try {
      bindings = await this.o.location.lookup(aor);
    } catch (err) {
      this.o.log.warn({ err, aor }, 'fork late: lookup failed');
      return;
    }
    for (const w of entry.waiters) {
      for (const b of bindings) {
        const id = `${b.key}|${b.node}|${b.connectionId ?? ''}|${b.sourcePort}`;
        if (w.done || w.handed.has(id) || !this.reachable(b) || !w.devices.some((d) => sameDevice(d, b))) continue;
        w.handed.add(id);
        w.onDevice(b);
      }
    }
  }

  close(): void {
    for (const e of this.byAor.values()) e.unsubscribe();
    this.byAor.clear();
  }
}
