// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file, to see where the time goes.
// Usage: node bench/tools/cpuprofile-top.ts <file.cpuprofile> [rows] [from-to]
//   from-to: only the samples between these seconds after the profile's start (e.g. 3.5-6), to read one phase of a
//   benchmark (bench:presence's set-up, then its fan-out 50 s later); without it a timeline of busy milliseconds per
//   second is printed first, to find the phases.
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number; children?: number[] }
const file = process.argv[2];
const rows = Number(process.argv[3] ?? 40);
const window = process.argv[4]?.split('-').map(Number);
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const idle = new Set(prof.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
const self = new Map<number, number>();
const busyPerSecond: number[] = [];
let at = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  at += dt;
  const sec = at / 1e6;
  if (window && (sec < window[0] || sec > window[1])) continue;
  if (!idle.has(prof.samples[i])) busyPerSecond[Math.floor(sec)] = (busyPerSecond[Math.floor(sec)] ?? 0) + dt;
  self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
}
if (!window) console.log('busy ms per second:', Array.from(busyPerSecond, (t, s) => `${s}:${((t ?? 0) / 1000).toFixed(0)}`).join(' '));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFn = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id)!;
  const url = n.callFrame.url.replace(/^file:\/\/.*?\/(src|node_modules)\//, '$1/');
  const key = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
  const f = url || n.callFrame.functionName;
  byFile.set(f, (byFile.get(f) ?? 0) + t);
}
const pct = (t: number) => ((100 * t) / total).toFixed(1).padStart(5) + '%';
console.log(`total sampled ${(total / 1000).toFixed(0)} ms`);
console.log('\n-- self time by function --');
for (const [k, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(pct(t), k);
console.log('\n-- self time by file --');
for (const [k, t] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(pct(t), k);
