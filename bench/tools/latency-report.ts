// The figures of `npm run bench:latency` (bench/latency.sh), in two commands:
//
//   node bench/tools/latency-report.ts run <rtt.csv> <label JSON> [metrics-before metrics-after] [wire=<pcap>:<port>:<dropped>]
//     one SIPp run: percentiles of its -trace_rtt response times (rtd 1: REGISTER → 401, rtd 2: REGISTER with
//     credentials → 200 OK), and, given two /metrics scrapes around the run, the server's own REGISTER → 200 OK
//     histogram over the same run (SIPp's clock steps in whole milliseconds, often 4 at a time; the server's
//     buckets are finer), its event-loop delay and GC pauses; given a capture of the run, the same response times
//     on the wire's clock (bench/tools/wire-latency.ts; the capture file is removed once read). Prints one JSON line.
//   node bench/tools/latency-report.ts plot <results.jsonl> <out.svg>
//     latency percentiles against offered load, both servers, one panel per configuration and transport; the
//     median of each point's rounds. Also prints the table for bench/RESULTS.md.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readPcap, wireLatency } from './wire-latency.ts';

interface Percentiles { n: number; p50: number; p90: number; p99: number; max: number }
export interface RunResult {
  server: 'switchboard' | 'kamailio';
  config: string;
  transport: string;
  load: number;
  rate: number;
  round: number;
  ok: number;
  failed: number;
  /** SIPp's response times in ms: the 200 OK and the 401. */
  register: Percentiles;
  challenge: Percentiles;
  /** The server's own REGISTER → 200 OK histogram (ms, interpolated within buckets; max is a bucket's bound). */
  server_register?: Percentiles;
  /** Event-loop delay during the run (ms, from prom-client's monitorEventLoopDelay) and GC pause time (ms). */
  loop_p99?: number;
  loop_max?: number;
  gc_ms?: number;
  gc_count?: number;
  /** The same response times from a packet capture (ms, kernel stamps): the 200 OK and the 401; packets the kernel
   *  dropped from the capture, requests it holds no final response for. */
  wire_register?: Percentiles;
  wire_challenge?: Percentiles;
  wire_dropped?: number;
  wire_unanswered?: number;
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const v = values.sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)];
  return { n: v.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: v[v.length - 1] };
}

/** Prometheus text → sample name with labels → value. */
function scrape(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** Buckets of one histogram series (matching `select` in its labels), cumulative counts differenced. */
function histogramDelta(before: Map<string, number>, after: Map<string, number>, name: string, select: string): Array<{ le: number; count: number }> {
  const out: Array<{ le: number; count: number }> = [];
  for (const [k, v] of after) {
    if (!k.startsWith(`${name}_bucket{`) || !k.includes(select)) continue;
    const le = /le="([^"]+)"/.exec(k)![1];
    out.push({ le: le === '+Inf' ? Infinity : Number(le), count: v - (before.get(k) ?? 0) });
  }
  return out.sort((a, b) => a.le - b.le);
}

function histogramPercentiles(buckets: Array<{ le: number; count: number }>): Percentiles | undefined {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const at = (q: number) => {
    const rank = q * total;
    let lo = 0;
    let below = 0;
    for (const b of buckets) {
      if (b.count >= rank) {
        if (!Number.isFinite(b.le)) return lo * 1000;
        return (lo + ((b.le - lo) * (rank - below)) / Math.max(1, b.count - below)) * 1000;
      }
      lo = b.le;
      below = b.count;
    }
    return lo * 1000;
  };
  const top = buckets.find((b) => b.count === total)!;
  return { n: total, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: (Number.isFinite(top.le) ? top.le : buckets.at(-2)!.le) * 1000 };
}

function run(all: string[]): void {
  const wire = all.find((a) => a.startsWith('wire='));
  const [csv, labelJson, before, after] = all.filter((a) => a !== wire);
  const reg: number[] = [];
  const chal: number[] = [];
  for (const line of readFileSync(csv, 'latin1').split('\n').slice(1)) {
    const f = line.split(';');
    if (f.length < 3) continue;
    (f[2] === '2' ? reg : chal).push(Number(f[1]));
  }
  const r = { ...(JSON.parse(labelJson) as object), register: percentiles(reg), challenge: percentiles(chal) } as RunResult;
  if (before && after) {
    const b = scrape(readFileSync(before, 'utf8'));
    const a = scrape(readFileSync(after, 'utf8'));
    r.server_register = histogramPercentiles(histogramDelta(b, a, 'switchboard_sip_register_duration_seconds', 'status="200"'));
    // prom-client resets its event-loop histogram at every scrape: the second scrape holds this run's.
    r.loop_p99 = (a.get('switchboard_nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000;
    r.loop_max = (a.get('switchboard_nodejs_eventloop_lag_max_seconds') ?? NaN) * 1000;
    let gc = 0;
    let n = 0;
    for (const [k, v] of a) {
      if (k.startsWith('switchboard_nodejs_gc_duration_seconds_sum')) gc += v - (b.get(k) ?? 0);
      if (k.startsWith('switchboard_nodejs_gc_duration_seconds_count')) n += v - (b.get(k) ?? 0);
    }
    r.gc_ms = gc * 1000;
    r.gc_count = n;
  }
  if (wire !== undefined) {
    const [file, port, dropped] = wire.slice('wire='.length).split(':');
    const w = wireLatency(readPcap(readFileSync(file)), Number(port));
    rmSync(file); // ~300 MB a run at 75 %
    r.wire_register = w.credentialed;
    r.wire_challenge = w.first;
    r.wire_dropped = Number(dropped || NaN);
    r.wire_unanswered = w.unanswered;
  }
  console.log(JSON.stringify(r));
}

const median = (v: number[]) => {
  const s = v.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function plot(args: string[]): void {
  const [jsonl, svgFile] = args;
  const runs = readFileSync(jsonl, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunResult);
  const panels = [...new Set(runs.map((r) => `${r.config} ${r.transport}`))];
  const loads = [...new Set(runs.map((r) => r.load))].sort((a, b) => a - b);
  type Series = { name: string; color: string; dash: string; pick: (r: RunResult) => number | undefined; server: RunResult['server'] };
  const everySeries: Series[] = [
    { name: 'Kamailio p50 (SIPp)', color: '#1f77b4', dash: '', pick: (r) => r.register.p50, server: 'kamailio' },
    { name: 'Kamailio p99 (SIPp)', color: '#1f77b4', dash: '6,4', pick: (r) => r.register.p99, server: 'kamailio' },
    { name: 'Switchboard p50 (SIPp)', color: '#d62728', dash: '', pick: (r) => r.register.p50, server: 'switchboard' },
    { name: 'Switchboard p99 (SIPp)', color: '#d62728', dash: '6,4', pick: (r) => r.register.p99, server: 'switchboard' },
    { name: 'Switchboard p99 (its /metrics)', color: '#ff9896', dash: '2,3', pick: (r) => r.server_register?.p99, server: 'switchboard' },
  ];
  // With a capture, the wire's clock replaces SIPp's in the plot (SIPp's 0 and 4 ms steps stay in the table).
  const wireSeries: Series[] = [
    { name: 'Kamailio p50 (wire)', color: '#1f77b4', dash: '', pick: (r) => r.wire_register?.p50, server: 'kamailio' },
    { name: 'Kamailio p99 (wire)', color: '#1f77b4', dash: '6,4', pick: (r) => r.wire_register?.p99, server: 'kamailio' },
    { name: 'Switchboard p50 (wire)', color: '#d62728', dash: '', pick: (r) => r.wire_register?.p50, server: 'switchboard' },
    { name: 'Switchboard p99 (wire)', color: '#d62728', dash: '6,4', pick: (r) => r.wire_register?.p99, server: 'switchboard' },
    everySeries[4],
  ];
  const series = runs.some((r) => r.wire_register !== undefined) ? wireSeries : everySeries;
  const point = (panel: string, load: number, s: Series) =>
    median(runs.filter((r) => `${r.config} ${r.transport}` === panel && r.load === load && r.server === s.server).map((r) => s.pick(r) ?? NaN));

  // The table.
  const lines = ['| configuration | transport | load | offered reg/s | server | p50 | p90 | p99 | max (ms, SIPp) | wire p50 / p90 / p99 / max (ms) | server histogram p50 / p99 (ms) | loop delay p99 / max (ms) |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const panel of panels) {
    const [config, transport] = panel.split(' ');
    for (const load of loads) {
      for (const server of ['kamailio', 'switchboard'] as const) {
        const rs = runs.filter((r) => r.config === config && r.transport === transport && r.load === load && r.server === server);
        if (rs.length === 0) continue;
        const m = (f: (r: RunResult) => number | undefined, d = 0) => {
          const x = median(rs.map((r) => f(r) ?? NaN));
          return Number.isFinite(x) ? x.toFixed(d) : '–';
        };
        lines.push(
          `| ${config} | ${transport} | ${load} % | ${m((r) => r.rate)} | ${server} | ${m((r) => r.register.p50)} | ${m((r) => r.register.p90)} | ${m((r) => r.register.p99)} | ${m((r) => r.register.max)} | ` +
            `${m((r) => r.wire_register?.p50, 2)} / ${m((r) => r.wire_register?.p90, 2)} / ${m((r) => r.wire_register?.p99, 2)} / ${m((r) => r.wire_register?.max, 1)} | ` +
            (server === 'switchboard' ? `${m((r) => r.server_register?.p50, 2)} / ${m((r) => r.server_register?.p99, 2)} | ${m((r) => r.loop_p99, 1)} / ${m((r) => r.loop_max, 1)} |` : '– | – |'),
        );
      }
    }
  }
  console.log(lines.join('\n'));
  console.log(`(median of ${Math.max(...runs.map((r) => r.round))} round(s) per point; SIPp's response times are whole milliseconds; the wire's are kernel stamps of a capture)`);

  // The SVG: one panel per configuration and transport, ms on a log scale (0 drawn at the bottom line).
  const W = 420;
  const H = 300;
  const pad = { l: 48, r: 24, t: 28, b: 36 };
  const cols = Math.min(2, panels.length);
  const rows = Math.ceil(panels.length / cols);
  const width = cols * W;
  const perRow = Math.max(1, Math.floor(width / 210));
  const legendH = 24 * Math.ceil(series.length / perRow) + 24;
  const height = rows * H + legendH;
  const all = panels.flatMap((p) => loads.flatMap((l) => series.map((s) => point(p, l, s)))).filter((x) => Number.isFinite(x));
  const yMax = Math.max(10, ...all);
  const yMin = 0.1;
  const top = Math.pow(10, Math.ceil(Math.log10(yMax)));
  const y = (v: number) => pad.t + (H - pad.t - pad.b) * (1 - (Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(top) - Math.log10(yMin)));
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`];
  panels.forEach((panel, i) => {
    const ox = (i % cols) * W;
    const oy = Math.floor(i / cols) * H;
    const lo = loads[0];
    const hi = loads.at(-1)!;
    const x = (l: number) => ox + pad.l + ((W - pad.l - pad.r) * (hi === lo ? 0.5 : (l - lo) / (hi - lo)));
    out.push(`<text x="${ox + W / 2}" y="${oy + 16}" text-anchor="middle" font-weight="bold">${panel.replace(' u1', ', UDP').replace(' t1', ', TCP')}</text>`);
    for (let d = yMin; d <= top; d *= 10) {
      out.push(`<line x1="${ox + pad.l}" x2="${ox + W - pad.r}" y1="${oy + y(d)}" y2="${oy + y(d)}" stroke="#ddd"/>`);
      out.push(`<text x="${ox + pad.l - 4}" y="${oy + y(d) + 4}" text-anchor="end">${d < 1 ? d.toFixed(1) : d.toFixed(0)}</text>`);
    }
    out.push(`<text x="${ox + 12}" y="${oy + H / 2}" transform="rotate(-90 ${ox + 12} ${oy + H / 2})" text-anchor="middle">ms (log)</text>`);
    for (const l of loads) out.push(`<text x="${x(l)}" y="${oy + H - pad.b + 16}" text-anchor="middle">${l} %</text>`);
    out.push(`<text x="${ox + W / 2}" y="${oy + H - 6}" text-anchor="middle">offered load (share of Kamailio's peak)</text>`);
    for (const s of series) {
      const pts = loads.map((l) => [x(l), point(panel, l, s)] as const).filter(([, v]) => Number.isFinite(v));
      if (pts.length === 0) continue;
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}" points="${pts.map(([px, v]) => `${px.toFixed(1)},${(oy + y(v)).toFixed(1)}`).join(' ')}"/>`);
      for (const [px, v] of pts) out.push(`<circle cx="${px.toFixed(1)}" cy="${(oy + y(v)).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
  });
  series.forEach((s, i) => {
    const lx = 12 + (i % perRow) * (width / perRow);
    const ly = rows * H + 16 + Math.floor(i / perRow) * 24;
    out.push(`<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`);
    out.push(`<text x="${lx + 34}" y="${ly + 4}">${s.name}</text>`);
  });
  const clock = series === wireSeries ? 'times from a packet capture (kernel stamps)' : `SIPp's clock, 0 ms drawn at ${yMin} ms`;
  out.push(`<text x="${width - 8}" y="${height - 4}" text-anchor="end" fill="#888">REGISTER with credentials → 200 OK; ${clock}</text>`);
  out.push('</svg>');
  writeFileSync(svgFile, out.join('\n'));
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === 'run') run(rest);
else if (cmd === 'plot') plot(rest);
else {
  console.error('usage: latency-report.ts run <rtt.csv> <label JSON> [metrics-before metrics-after] | plot <results.jsonl> <out.svg>');
  process.exit(2);
}
