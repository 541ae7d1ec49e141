// The figures of /metrics as charts: scraped every few seconds, the last 60 samples kept per series. Counters
// are shown as rates (per second between two scrapes), gauges as they are.

import { h, fill } from '/ui/shared/dom.js';
import { bytes, compact } from '/ui/shared/format.js';
import { lineChart } from './charts.js';
import { parseProm, total } from './prom.js';

const KEEP = 60;

const SERIES = [
  { id: 'bindings', title: 'Active bindings', kind: 'gauge', pick: (m) => total(m, 'switchboard_bindings_active'), format: compact },
  { id: 'aors', title: 'AORs registered', kind: 'gauge', pick: (m) => total(m, 'switchboard_aors_registered'), format: compact },
  { id: 'sip', title: 'SIP requests / s', kind: 'rate', pick: (m) => total(m, 'switchboard_sip_requests_total'), format: compact },
  { id: 'register', title: 'REGISTER outcomes / s', kind: 'rate', pick: (m) => total(m, 'switchboard_registrations_total'), format: compact },
  { id: 'authfail', title: 'Auth failures / s', kind: 'rate', pick: (m) => total(m, 'switchboard_auth_failures_total'), format: compact },
  { id: 'conns', title: 'SIP connections', kind: 'gauge', pick: (m) => total(m, 'switchboard_sip_connections'), format: compact },
  { id: 'cpu', title: 'CPU %', kind: 'rate', scale: 100, pick: (m) => total(m, 'switchboard_process_cpu_seconds_total'), format: (v) => (Number.isFinite(v) ? `${v.toFixed(1)}%` : '–') },
  { id: 'rss', title: 'Resident memory', kind: 'gauge', pick: (m) => total(m, 'switchboard_process_resident_memory_bytes'), format: bytes },
];

export class MetricsSampler {
  constructor(intervalMs = 5000) {
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
      const res = await fetch('/metrics', { credentials: 'omit' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const m = parseProm(await res.text());
      const now = performance.now();
      for (const d of SERIES) {
        const raw = d.pick(m);
        let v = raw;
        if (d.kind === 'rate') {
          const p = this.prev?.raw.get(d.id);
          v = p === undefined ? NaN : (Math.max(0, raw - p) / ((now - this.prev.at) / 1000)) * (d.scale ?? 1);
        }
        const list = this.samples.get(d.id);
        list.push(v);
        if (list.length > KEEP) list.shift();
      }
      this.prev = { at: now, raw: new Map(SERIES.map((d) => [d.id, d.pick(m)])) };
      this.error = null;
    } catch (e) {
      this.error = e.message;
    }
    for (const fn of this.listeners) fn();
  }

  /** A grid of charts for the given series ids (all by default) that redraws after each scrape. */
  charts(ids = SERIES.map((d) => d.id)) {
    const defs = SERIES.filter((d) => ids.includes(d.id));
    const charts = defs.map((d) => ({ d, c: lineChart(d.title, d.format) }));
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
    h('h2', {}, 'Metrics ', h('span', { class: 'count' }, 'from /metrics, every 5 s, last 5 minutes')),
    sampler.charts(),
  );
}
