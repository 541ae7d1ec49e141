// Summarises a sampling heap profile (alloc-sampler.ts): bytes by allocating function (self), and by the project
// function nearest the allocation (the first frame under src/), per unit of DIVISOR (e.g. registrations).
// Usage: node bench/tools/alloc-top.ts <file.heapprofile> [divisor] [top]
import { readFileSync } from 'node:fs';
const [file, divisor = '1', top = '30'] = process.argv.slice(2);
interface Frame { functionName: string; url: string; lineNumber: number }
interface Node { callFrame: Frame; selfSize: number; children: Node[] }
const { head } = JSON.parse(readFileSync(file!, 'utf8')) as { head: Node };
const self = new Map<string, number>(), ours = new Map<string, number>();
let total = 0;
const name = (f: Frame): string => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|node:)/, '$1')}:${f.lineNumber + 1}`;
(function walk(node: Node, stack: Frame[]): void {
  const here = [...stack, node.callFrame];
  if (node.selfSize) {
    total += node.selfSize;
    const k = name(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + node.selfSize);
    const mine = [...here].reverse().find((f) => f.url.includes('/src/'));
    const o = mine ? name(mine) : '(outside src/)';
    ours.set(o, (ours.get(o) ?? 0) + node.selfSize);
  }
  for (const c of node.children) walk(c, here);
})(head, []);
const d = Number(divisor);
const show = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title} (bytes per unit, of ${(total / d).toFixed(0)})`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) console.log(`${(v / d).toFixed(0).padStart(8)}  ${k}`);
};
show('allocated by (self)', self);
show('nearest project function', ours);

if (process.env.STACKS) {
  const stacks = new Map<string, number>();
  (function walk(node: Node, stack: Frame[]): void {
    const here = [...stack, node.callFrame];
    if (node.selfSize) {
      const k = here.slice(-Number(process.env.STACKS)).map(name).reverse().join('\n          < ');
      stacks.set(k, (stacks.get(k) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, here);
  })(head, []);
  show('stacks', stacks);
}
