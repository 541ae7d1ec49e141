// Call accounting (issue 17): events on the bus and Prometheus metrics for the calls the proxy routes.
//
// Topics: `call.<event>.<callee domain>.<callee user>`, `<event>` one of started (forking began), answered (the
// first 2xx went upstream), failed (a final non-2xx went upstream) and ended (a BYE through the proxy was answered
// 2xx), encoded as the binding topics are; subscribe to `call.#`, or `call.*.<domain>.<user>` for one callee. A
// duration needs the answer time of the dialog: kept per Call-ID for answered calls, at most MAX_DIALOGS (oldest
// forgotten first: such a call's end is reported without a duration) and for at most a day.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { topicWord, type EventBus } from '../bus/event-bus.ts';

const MAX_DIALOGS = 100_000;
const DIALOG_TTL_MS = 24 * 3600_000;

export interface CallInfo {
  callId: string;
  caller: string;
  callee: string;
}

interface Dialog extends CallInfo {
  answeredAt: number;
}

export class CallAccounting {
  private readonly bus: EventBus | null;
  private readonly dialogs = new Map<string, Dialog>();
  private readonly calls: Counter<'outcome'> | null = null;
  private readonly setup: Histogram | null = null;

  constructor(bus: EventBus | null, registry: Registry | null) {
    this.bus = bus;
    if (registry) {
      const registers = [registry];
      this.calls = new Counter({ name: 'switchboard_calls_total', help: 'Calls routed by the proxy, by outcome (answered, failed: a final non-2xx, including 487 for a cancelled call)', labelNames: ['outcome'], registers });
      this.setup = new Histogram({ name: 'switchboard_call_setup_seconds', help: 'INVITE arrival to the first 2xx forwarded upstream', buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60], registers });
      const dialogs = this.dialogs;
      new Gauge({ name: 'switchboard_calls_active', help: 'Answered calls whose BYE has not been seen', registers, collect() { this.set(dialogs.size); } });
    }
  }

  started(c: CallInfo, branches: number): void {
    this.publish('started', c, { branches });
  }

  /** The call's final response upstream; `arrivedAt` is performance.now() when its INVITE arrived. */
  final(c: CallInfo, status: number, arrivedAt: number): void {
    if (status >= 200 && status < 300) {
      const setup = (performance.now() - arrivedAt) / 1000;
      this.calls?.inc({ outcome: 'answered' });
      this.setup?.observe(setup);
      this.remember({ ...c, answeredAt: Date.now() });
      this.publish('answered', c, { status, setup_seconds: Math.round(setup * 1000) / 1000 });
    } else {
      this.calls?.inc({ outcome: 'failed' });
      this.publish('failed', c, { status });
    }
  }

  /** A BYE through the proxy was answered 2xx. */
  ended(callId: string, by: string): void {
    const d = this.dialogs.get(callId);
    if (!d) return;
    this.dialogs.delete(callId);
    this.publish('ended', d, { by, duration_seconds: Math.round((Date.now() - d.answeredAt) / 1000) });
  }

  private remember(d: Dialog): void {
    this.dialogs.delete(d.callId);
    this.dialogs.set(d.callId, d);
    const now = Date.now();
    for (const [k, v] of this.dialogs) {
      if (this.dialogs.size <= MAX_DIALOGS && now - v.answeredAt < DIALOG_TTL_MS) break;
      this.dialogs.delete(k); // insertion order is answer order: the oldest go first
    }
  }

  private publish(event: string, c: CallInfo, extra: Record<string, unknown>): void {
    if (!this.bus) return;
    const at = c.callee.lastIndexOf('@');
    const word = (s: string) => (s === '*' ? '%2A' : s === '#' ? '%23' : topicWord(s));
    const topic = `call.${event}.${word(c.callee.slice(at + 1))}.${word(c.callee.slice(0, at))}`;
    this.bus.publish(topic, { event, call_id: c.callId, caller: c.caller, callee: c.callee, ...extra });
  }
}
