// Call accounting (issue 17): events on the bus, Prometheus metrics and the live calls (the console's list, GET
// /v1/calls) for the calls the proxy routes.
//
// Topics: `call.<event>.<callee domain>.<callee user>`, `<event>` one of started (forking began), answered (the
// first 2xx went upstream), failed (a final non-2xx went upstream) and ended (a BYE through the proxy was answered
// 2xx), encoded as the binding topics are; subscribe to `call.#`, or `call.*.<domain>.<user>` for one callee.
//
// Live calls, by Call-ID: ringing from started to the final response (a non-2xx drops it), then answered until the
// BYE (which gives the duration). At most MAX_CALLS (oldest forgotten first: such a call's end is reported without a
// duration) and answered ones for at most a day. This node's calls only: on a cluster each call is held by the node
// that proxies it (the console's live feed still shows every node's call events). One Map write per call event.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { domainWord, valueWord, type EventBus } from '../bus/event-bus.ts';

const MAX_CALLS = 100_000;
const DIALOG_TTL_MS = 24 * 3600_000;

export interface CallInfo {
  callId: string;
  caller: string;
  callee: string;
}

/** A call in progress (GET /v1/calls). */
export interface LiveCall extends CallInfo {
  state: 'ringing' | 'answered';
  /** When forking began, and the first 2xx went upstream (epoch ms). */
  startedAt: number;
  answeredAt: number | null;
  /** Branches the call was forked to at first. */
  branches: number;
}

export class CallAccounting {
  private readonly bus: EventBus | null;
  private readonly live = new Map<string, LiveCall>();
  private answeredCount = 0;
  /** When remember() last looked for calls past DIALOG_TTL_MS. */
  private swept = 0;
  private readonly calls: Counter<'outcome'> | null = null;
  private readonly setup: Histogram | null = null;

  constructor(bus: EventBus | null, registry: Registry | null) {
    this.bus = bus;
    if (registry) {
      const registers = [registry];
      this.calls = new Counter({ name: 'switchboard_calls_total', help: 'Calls routed by the proxy, by outcome (answered, failed: a final non-2xx, including 487 for a cancelled call)', labelNames: ['outcome'], registers });
      this.setup = new Histogram({ name: 'switchboard_call_setup_seconds', help: 'INVITE arrival to the first 2xx forwarded upstream', buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60], registers });
      const count = () => this.answeredCount;
      new Gauge({ name: 'switchboard_calls_active', help: 'Answered calls whose BYE has not been seen', registers, collect() { this.set(count()); } });
    }
  }

  started(c: CallInfo, branches: number): void {
    this.remember({ ...c, state: 'ringing', startedAt: Date.now(), answeredAt: null, branches });
    this.publish('started', c, { branches });
  }

  /** The calls ringing or answered now, oldest first. */
  liveCalls(): LiveCall[] {
    return [...this.live.values()].map((c) => ({ ...c }));
  }

  /** The call's final response upstream; `arrivedAt` is performance.now() when its INVITE arrived. */
  final(c: CallInfo, status: number, arrivedAt: number): void {
    if (status >= 200 && status < 300) {
      const setup = (performance.now() - arrivedAt) / 1000;
      this.calls?.inc({ outcome: 'answered' });
      this.setup?.observe(setup);
      const started = this.live.get(c.callId);
      this.remember({ ...c, state: 'answered', startedAt: started?.startedAt ?? Date.now(), answeredAt: Date.now(), branches: started?.branches ?? 0 });
      this.publish('answered', c, { status, setup_seconds: Math.round(setup * 1000) / 1000 });
    } else {
      this.calls?.inc({ outcome: 'failed' });
      this.forget(c.callId);
      this.publish('failed', c, { status });
    }
  }

  /** A BYE through the proxy was answered 2xx. */
  ended(callId: string, by: string): void {
    const d = this.live.get(callId);
    if (!d || d.answeredAt === null) return;
    this.forget(callId);
    this.publish('ended', d, { by, duration_seconds: Math.round((Date.now() - d.answeredAt) / 1000) });
  }

  private remember(c: LiveCall): void {
    this.forget(c.callId);
    this.live.set(c.callId, c);
    if (c.state === 'answered') this.answeredCount++;
    // The oldest are looked at when the map is full, and for the day's limit once a minute: starting an iteration
    // of a Map whose first entries were deleted walks over their holes, 2.4 us a call in the hot-path profile
    // when it ran on every call event.
    const now = Date.now();
    if (this.live.size <= MAX_CALLS && now - this.swept < 60_000) return;
    this.swept = now;
    for (const [k, v] of this.live) {
      if (this.live.size <= MAX_CALLS && now - v.startedAt < DIALOG_TTL_MS) break;
      this.forget(k); // insertion order is start (or answer) order: the oldest go first
    }
  }

  private forget(callId: string): void {
    const c = this.live.get(callId);
    if (!c) return;
    this.live.delete(callId);
    if (c.state === 'answered') this.answeredCount--;
  }

  private publish(event: string, c: CallInfo, extra: Record<string, unknown>): void {
    if (!this.bus) return;
    const at = c.callee.lastIndexOf('@');
    const topic = `call.${event}.${domainWord(c.callee.slice(at + 1))}.${valueWord(c.callee.slice(0, at))}`;
    this.bus.publish(topic, { event, call_id: c.callId, caller: c.caller, callee: c.callee, ...extra });
  }
}
