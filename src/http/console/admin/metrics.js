// The figures of /metrics as charts: scraped every few seconds, the last 60 samples kept per series. Counters
// are shown as rates (per second between two scrapes), gauges as they are, histograms as the mean of the
// observations between two scrapes. Labelled families (requests by method, responses by class, REGISTER
// outcomes, …) are drawn one line per label value.

import { h, fill } from '/ui/shared/dom.js';
import { bytes, compact } from '/ui/shared/format.js';
import { lineChart } from './charts.js';
import { byLabel, parseProm, total } from './prom.js';

const KEEP = 60;

const one = (v) => new Map([['', v]]);
const ms = (v) => (!Number.isFinite(v) ? '–' : v < 10 ? `${v.toFixed(2)} ms` : `${compact(v)} ms`);
const percent = (v) => (Number.isFinite(v) ? `${v.toFixed(1)}%` : '–');

/**
 * kind: gauge (as is, times `scale`), rate (per second, times `scale`), or mean (pick gives sum and count; the
 * change of sum over the change of count, times `scale`). pick(metrics) gives a Map of series name → value.
 */
const SERIES = [
  { id: 'bindings', title: 'Active bindings', kind: 'gauge', pick: (m) => one(total(m, 'switchboard_bindings_active')), format: compact },
  { id: 'aors', title: 'AORs registered', kind: 'gauge', pick: (m) => one(total(m, 'switchboard_aors_registered')), format: compact },
  { id: 'sip', title: 'SIP requests / s', kind: 'rate', pick: (m) => byLabel(m, 'switchboard_sip_requests_total', 'method'), format: compact },
  { id: 'responses', title: 'SIP responses / s', kind: 'rate', pick: (m) => byLabel(m, 'switchboard_sip_responses_total', 'status', (s) => `${s.slice(0, 1)}xx`), format: compact },
  { id: 'register', title: 'REGISTER outcomes / s', kind: 'rate', pick: (m) => byLabel(m, 'switchboard_registrations_total', 'outcome'), format: compact },
  { id: 'authfail', title: 'Auth failures / s', kind: 'rate', pick: (m) => byLabel(m, 'switchboard_auth_failures_total', 'reason'), format: compact },
  { id: 'changes', title: 'Binding changes / s', kind: 'rate', pick: (m) => byLabel(m, 'switchboard_binding_changes_total', 'event'), format: compact },
  {
    id: 'latency',
    title: 'SIP request handling (mean)',
    kind: 'mean',
    scale: 1000,
    pick: (m) => new Map([['sum', total(m, 'switchboard_sip_request_duration_seconds_sum')], ['count', total(m, 'switchboard_sip_request_duration_seconds_count')]]),
    format: ms,
  },
  {
    id: 'store',
    title: 'Location store writes / s',
    kind: 'rate',
    headline: 'writes',
    pick: (m) => new Map([['writes', total(m, 'switchboard_location_writes_total')], ['commits', total(m, 'switchboard_location_commits_total')]]),
    format: compact,
  },
  { id: 'conns', title: 'SIP connections', kind: 'gauge', pick: (m) => one(total(m, 'switchboard_sip_connections')), format: compact },
  { id: 'lag', title: 'Event-loop delay (p99)', kind: 'gauge', scale: 1000, pick: (m) => one(total(m, 'switchboard_nodejs_eventloop_lag_p99_seconds')), format: ms },
  { id: 'cpu', title: 'CPU', kind: 'rate', scale: 100, pick: (m) => one(total(m, 'switchboard_process_cpu_seconds_total')), format: percent },
  { id: 'rss', title: 'Resident memory', kind: 'gauge', pick: (m) => one(total(m, 'switchboard_process_resident_memory_bytes')), format: bytes },
  { id: 'heap', title: 'JavaScript heap used', kind: 'gauge', pick: (m) => one(total(m, 'switchboard_nodejs_heap_size_used_bytes')), format: bytes },
];

/** One sample of a series from this scrape's raw values and the previous scrape's (null on the first). */
function sample(d, raw, prev, seconds) {
  const scale = d.scale ?? 1;
  if (d.kind === 'gauge') return new Map([...raw].map(([k, v]) => [k, v * scale]));
  if (d.kind === 'mean') {
    if (!prev) return one(NaN);
    const count = raw.get('count') - prev.get('count');
    return one(count > 0 ? ((raw.get('sum') - prev.get('sum')) / count) * scale : NaN);
  }
  // A labelled counter appears on its first increment: missing before means 0 then.
  if (!prev) return new Map([...raw].map(([k]) => [k, NaN]));
  return new Map([...raw].map(([k, v]) => [k, (Math.max(0, v - (prev.get(k) ?? 0)) / seconds) * scale]));
}

export class MetricsSampler {
  /** `session`: the admin's; /metrics takes its token from anywhere but the configured open networks. */
  constructor(session, intervalMs = 5000) {
    this.session = session;
    this.intervalMs = intervalMs;
    this.samples = new Map(SERIES.map((d) => [d.id, []]));
    this.prev = null;
    this.listeners = new Set();
    this.error = null;
  }

  start() {
    const tick = () => this.scrape().finally(() => (this.timer = setTimeout(tick, this.intervalMs)));
    tick();
  }

  async scrape() {
    try {
      const res = await fetch('/metrics', { headers: { authorization: `Bearer ${this.session.token}` }, credentials: 'omit' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const m = parseProm(await res.text());
      const now = performance.now();
      const raw = new Map(SERIES.map((d) => [d.id, d.pick(m)]));
      for (const d of SERIES) {
        const list = this.samples.get(d.id);
        list.push(sample(d, raw.get(d.id), this.prev?.raw.get(d.id) ?? null, this.prev ? (now - this.prev.at) / 1000 : 0));
        if (list.length > KEEP) list.shift();
      }
      this.prev = { at: now, raw };
      this.error = null;
    } catch (e) {
      this.error = e.message;
    }
    for (const fn of this.listeners) fn();
  }

  /** A grid of charts for the given series ids (all by default) that redraws after each scrape. */
  charts(ids = SERIES.map((d) => d.id)) {
    const defs = SERIES.filter((d) => ids.includes(d.id));
    const charts = defs.map((d) => ({ d, c: lineChart(d.title, d.format, { headline: d.headline }) }));
    const note = h('p', { class: 'muted' });
    const el = h('div', {}, h('div', { class: 'charts' }, charts.map((x) => x.c.el)), note);
    const redraw = () => {
      for (const { d, c } of charts) c.draw(this.samples.get(d.id));
      fill(note, this.error ? `metrics unavailable: ${this.error}` : '');
    };
    this.listeners.add(redraw);
    redraw();
    return el;
  }
}

export function metricsView(sampler) {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, 'Metrics ', h('span', { class: 'count' }, `from /metrics, every ${sampler.intervalMs / 1000} s, the last ${(KEEP * sampler.intervalMs) / 60000} minutes`)),
    sampler.charts(),
  );
}
