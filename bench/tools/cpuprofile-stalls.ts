// The event loop's long stretches in a V8 .cpuprofile (node --cpu-prof --cpu-prof-interval 100): runs of samples
// with no (idle) among them, longer than a threshold, each with what filled it (self time by function, and by the
// outermost frame of our own code under the event loop's entry). A REGISTER that arrives during such a stretch waits
// for its end: these are the p99 of bench:latency seen from inside. A stretch whose samples are far apart in time
// (the thread was descheduled) is flagged: the machine's stall, not ours.
// Usage: node bench/tools/cpuprofile-stalls.ts <file.cpuprofile> [threshold ms = 5] [top = 8]
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
const [file, thresholdArg, topArg] = process.argv.slice(2);
const threshold = Number(thresholdArg ?? 5) * 1000;
const top = Number(topArg ?? 8);
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/').replace(/^node:/, '')}:${n.callFrame.lineNumber + 1}`;
const idle = (id: number) => byId.get(id)!.callFrame.functionName === '(idle)';
const ours = (n: Node) => n.callFrame.url.includes('/src/');
/** The outermost frame of our code on the sample's stack (what the event loop called into), else the leaf. */
function entry(id: number): string {
  let outer: Node | undefined;
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const n = byId.get(at)!;
    if (ours(n)) outer = n;
  }
  return outer ? name(outer) : name(byId.get(id)!);
}

interface Stretch { start: number; end: number; samples: number[]; longestGap: number }
const stretches: Stretch[] = [];
let at = 0;
let cur: Stretch | null = null;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  at += dt;
  if (idle(prof.samples[i])) {
    if (cur && cur.end - cur.start >= threshold) stretches.push(cur);
    cur = null;
    continue;
  }
  if (cur === null) cur = { start: at - dt, end: at, samples: [], longestGap: 0 };
  cur.end = at;
  cur.samples.push(prof.samples[i]);
  cur.longestGap = Math.max(cur.longestGap, dt);
}
const total = at;
console.log(`profile ${(total / 1e6).toFixed(1)} s, ${prof.samples.length} samples; stretches without idle ≥ ${threshold / 1000} ms: ${stretches.length}`);
const count = <K>(keys: K[]) => {
  const m = new Map<K, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return [...m].sort((a, b) => b[1] - a[1]);
};
for (const s of stretches.sort((a, b) => b.end - b.start - (a.end - a.start)).slice(0, 20)) {
  const ms = (s.end - s.start) / 1000;
  const flag = s.longestGap > 2000 ? ` (a ${(s.longestGap / 1000).toFixed(1)} ms gap between samples: descheduled)` : '';
  console.log(`\n${ms.toFixed(1)} ms at ${(s.start / 1e6).toFixed(3)} s, ${s.samples.length} samples${flag}`);
  console.log('  self:  ' + count(s.samples.map((id) => name(byId.get(id)!))).slice(0, top).map(([k, n]) => `${((100 * n) / s.samples.length).toFixed(0)}% ${k}`).join('\n         '));
  console.log('  entry: ' + count(s.samples.map(entry)).slice(0, 4).map(([k, n]) => `${((100 * n) / s.samples.length).toFixed(0)}% ${k}`).join('\n         '));
}
