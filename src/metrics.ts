// Prometheus metrics (prom-client), one registry per server instance so several servers can share a process
// (tests) without mixing figures. Names follow Prometheus conventions: *_total counters, *_seconds histograms.
//
// The per-request metrics are "hot": plain numbers bumped on the request path and turned into Prometheus text
// only at scrape time (prom-client's labels().inc() and observe() hash their labels on every call: about 2% of
// the server's CPU in the REGISTER benchmark's profile).

import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

type LabelValues = Record<string, string>;

/**
 * Label values come from a fixed set: a request's method is attacker-chosen and was a label before the request
 * was validated (300 UDP requests with random 2,000-character methods grew /metrics from 12 KB to 10.5 MB).
 * Methods we know count under their name, every other under `other`.
 */
export const SIP_METHOD_LABELS: ReadonlySet<string> = new Set(['REGISTER', 'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'MESSAGE', 'INFO', 'PRACK', 'UPDATE', 'REFER']);
export const OTHER_LABEL = 'other';
/** The final statuses a registrar sends (RFC 3261 §10.3); any other counts under `other`. */
export const REGISTER_STATUS_LABELS: ReadonlySet<string> = new Set(['200', '400', '401', '403', '404', '407', '423', '429', '480', '500', '503']);
/**
 * Defence in depth for labels without a fixed set (reasons, outcomes, statuses: all chosen by our code today):
 * beyond this many values of one label, new values count under `other`.
 */
export const MAX_LABEL_VALUES = 100;

/** A counter keyed by label values, bumped with a cached key; rendered by prom-client at scrape. */
export class HotCounter {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  private readonly labelNames: string[];
  private readonly allowedA: ReadonlySet<string> | undefined;
  private readonly allowedB: ReadonlySet<string> | undefined;
  private readonly series = new Map<string, Map<string, { labels: LabelValues; value: number }>>();
  private values: Array<{ labels: LabelValues; value: number }> = [];

  /** `allowed`: per label, the fixed set of values it takes (others count under `other`). */
  constructor(registry: Registry, name: string, help: string, labelNames: string[], allowed: Array<ReadonlySet<string> | undefined> = []) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.allowedA = allowed[0];
    this.allowedB = allowed[1];
    registry.registerMetric(this as unknown as Metric);
  }

  /**
   * Adds one under the given label values (in labelNames order; at most two labels). Nested maps, not a joined
   * key: the per-request call allocates nothing once a series exists.
   */
  inc(a = '', b = ''): void {
    if (this.allowedA !== undefined && !this.allowedA.has(a)) a = OTHER_LABEL;
    if (this.allowedB !== undefined && !this.allowedB.has(b)) b = OTHER_LABEL;
    let inner = this.series.get(a);
    if (inner === undefined) {
      if (this.series.size >= MAX_LABEL_VALUES && a !== OTHER_LABEL) return this.inc(OTHER_LABEL, b);
      this.series.set(a, (inner = new Map()));
    }
    const e = inner.get(b);
    if (e !== undefined) e.value++;
    else if (inner.size >= MAX_LABEL_VALUES && b !== OTHER_LABEL) this.inc(a, OTHER_LABEL);
    else {
      const labels: LabelValues = {};
      if (this.labelNames[0]) labels[this.labelNames[0]] = a;
      if (this.labelNames[1]) labels[this.labelNames[1]] = b;
      const entry = { labels, value: 1 };
      inner.set(b, entry);
      this.values.push(entry);
    }
  }

  async get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values.map((v) => ({ labels: v.labels, value: v.value })) };
  }

  reset(): void {
    this.series.clear();
    this.values = [];
  }
}

/** A histogram with one label, counts in a typed array per label value; rendered at scrape. */
export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly label: string;
  private readonly buckets: number[];
  private readonly allowed: ReadonlySet<string> | undefined;
  private readonly series = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  /** `allowed`: the fixed set of values the label takes (others count under `other`). */
  constructor(registry: Registry, name: string, help: string, label: string, buckets: number[], allowed?: ReadonlySet<string>) {
    this.name = name;
    this.help = help;
    this.label = label;
    this.buckets = buckets;
    this.allowed = allowed;
    registry.registerMetric(this as unknown as Metric);
  }

  observe(labelValue: string, seconds: number): void {
    if (this.allowed !== undefined && !this.allowed.has(labelValue)) labelValue = OTHER_LABEL;
    let s = this.series.get(labelValue);
    if (s === undefined) {
      if (this.series.size >= MAX_LABEL_VALUES && labelValue !== OTHER_LABEL) return this.observe(OTHER_LABEL, seconds);
      this.series.set(labelValue, (s = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }));
    }
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]) {
        s.counts[i]++;
        break;
      }
    }
    s.sum += seconds;
    s.count++;
  }

  async get() {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const [lv, s] of this.series) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { le, [this.label]: lv }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', [this.label]: lv }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: lv }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: lv }, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }
}

/** The AMQP bus's running figures. */
export interface BusStats {
  connected: boolean;
  pending: number;
  published: number;
  confirmed: number;
  dropped: number;
  delivered: number;
  rejected: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly sipRequests: HotCounter;
  readonly sipResponses: HotCounter;
  readonly sipBadMessages: HotCounter;
  readonly sipRetransmissions: HotCounter;
  readonly sipRequestDuration: HotHistogram;
  readonly sipRegisterDuration: HotHistogram;
  readonly registrations: HotCounter;
  readonly bindingChanges: HotCounter;
  readonly authFailures: HotCounter;

  constructor() {
    const r = this.registry;
    this.sipRequests = new HotCounter(r, 'switchboard_sip_requests_total', 'SIP requests received (new transactions)', ['method'], [SIP_METHOD_LABELS]);
    this.sipResponses = new HotCounter(r, 'switchboard_sip_responses_total', 'SIP responses sent', ['method', 'status'], [SIP_METHOD_LABELS]);
    this.sipBadMessages = new HotCounter(r, 'switchboard_sip_bad_messages_total', 'SIP messages rejected or dropped as malformed', ['reason']);
    this.sipRetransmissions = new HotCounter(r, 'switchboard_sip_retransmissions_total', 'Request retransmissions absorbed by server transactions', []);
    this.sipRequestDuration = new HotHistogram(
      r,
      'switchboard_sip_request_duration_seconds',
      'Time from a request arriving to its final response leaving',
      'method',
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      SIP_METHOD_LABELS,
    );
    // What a phone waits for its REGISTER, by final status (the 200 OK follows the binding's commit, a 401 does not),
    // with buckets fine enough around the 5 ms target to read a p99 from (bench:latency does).
    this.sipRegisterDuration = new HotHistogram(
      r,
      'switchboard_sip_register_duration_seconds',
      'Time from a REGISTER arriving to its final response leaving, by status',
      'status',
      [0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 2.5, 10],
      REGISTER_STATUS_LABELS,
    );
    this.registrations = new HotCounter(r, 'switchboard_registrations_total', 'REGISTER requests by outcome', ['outcome']);
    this.bindingChanges = new HotCounter(r, 'switchboard_binding_changes_total', 'Binding changes by kind', ['event']);
    this.authFailures = new HotCounter(r, 'switchboard_auth_failures_total', 'Failed SIP authentications by reason', ['reason']);
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_' });
  }

  // The figures read at scrape time, each registered by the subsystem that holds them (lifecycle.ts).

  /** The SIP stack's: open connections and held server transactions. */
  observeSip(read: { connections: () => number; serverTransactions: () => number }): void {
    const registers = [this.registry];
    new Gauge({ name: 'switchboard_sip_connections', help: 'Open SIP connections (TCP, TLS, WS, WSS)', registers, collect() { this.set(read.connections()); } });
    new Gauge({ name: 'switchboard_sip_server_transactions', help: 'Server transactions held (absorbing retransmissions)', registers, collect() { this.set(read.serverTransactions()); } });
  }

  /** The location service's: live bindings and AORs, and the store's group commits and the binding writes they carried. */
  observeLocation(read: { bindings: () => number; aors: () => number; storeCommits: () => { commits: number; writes: number } }): void {
    const registers = [this.registry];
    new Gauge({ name: 'switchboard_bindings_active', help: 'Live bindings in the location service', registers, collect() { this.set(read.bindings()); } });
    new Gauge({ name: 'switchboard_aors_registered', help: 'Addresses of record with at least one binding', registers, collect() { this.set(read.aors()); } });
    new Counter({ name: 'switchboard_location_commits_total', help: 'Location store commits (each a group of binding writes)', registers, collect() { this.reset(); this.inc(read.storeCommits().commits); } });
    new Counter({ name: 'switchboard_location_writes_total', help: 'Binding writes committed to the location store', registers, collect() { this.reset(); this.inc(read.storeCommits().writes); } });
  }

  /** The AMQP bus's (no such figures with the in-process bus). */
  observeBus(bus: () => BusStats): void {
    const registers = [this.registry];
    new Gauge({ name: 'switchboard_bus_connected', help: 'AMQP broker connection up (1) or down (0)', registers, collect() { this.set(bus().connected ? 1 : 0); } });
    new Gauge({ name: 'switchboard_bus_outbox', help: 'Published events not yet confirmed by the broker', registers, collect() { this.set(bus().pending); } });
    const counter = (name: string, help: string, pick: (s: BusStats) => number) =>
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(pick(bus())); } });
    counter('switchboard_bus_published_total', 'Events published on the AMQP bus', (s) => s.published);
    counter('switchboard_bus_confirmed_total', 'Events the broker confirmed', (s) => s.confirmed);
    counter('switchboard_bus_dropped_total', 'Events dropped because the outbox was full', (s) => s.dropped);
    counter('switchboard_bus_delivered_total', 'Messages consumed from the AMQP bus', (s) => s.delivered);
    counter('switchboard_bus_rejected_total', 'Messages rejected as malformed or failed', (s) => s.rejected);
  }

  /** The key ring's signing key reads from the store after start-up. */
  observeSigningKeys(reloads: () => number): void {
    new Counter({ name: 'switchboard_signing_key_reloads_total', help: 'Signing key reads from the store after start-up (periodic, or for a token naming an unknown kid: at most one per --jwks-cooldown)', registers: [this.registry], collect() { this.reset(); this.inc(reloads()); } });
  }
}
