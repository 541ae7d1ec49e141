// Line charts as inline SVG, drawn from the periodic /metrics scrapes (no chart library). A chart shows one
// series, or up to five (one per label value, e.g. REGISTER outcomes) with a legend; colours come from the
// stylesheet (classes s0…s4), never from style attributes (the CSP allows no inline style).

import { h, s, fill } from '/ui/shared/dom.js';

const W = 300;
const H = 64;
const MAX_LINES = 5;

/**
 * A chart card: title, current value (the sum of the series, or the `headline` series alone when a sum means
 * nothing), a legend when split, and the recent values.
 */
export function lineChart(title, format, { headline } = {}) {
  const value = h('div', { class: 'value' }, '–');
  const range = h('span', {}, '');
  const legend = h('div', { class: 'legend' });
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
  const el = h('div', { class: 'chart', 'data-testid': 'chart' }, h('div', { class: 'title' }, h('span', {}, title), range), value, svg, legend);
  return {
    el,
    /**
     * samples: Array<Map<string, number>> (oldest first), one map per scrape from series name ('' when not
     * split) to value; NaN or a missing name is a gap.
     */
    draw(samples) {
      const lastSample = samples.at(-1);
      // What the big number shows, per sample: the headline series, or the sum of all.
      const shown = (m) => {
        if (headline !== undefined) return m.get(headline) ?? NaN;
        const vs = [...m.values()].filter(Number.isFinite);
        return vs.length ? vs.reduce((a, b) => a + b, 0) : NaN;
      };
      value.textContent = format(lastSample ? shown(lastSample) : NaN);
      // The busiest names over the window get a line (the rest count in the value only), in name order so that
      // each keeps its colour from one scrape to the next.
      const weight = new Map();
      for (const m of samples) for (const [k, v] of m) weight.set(k, (weight.get(k) ?? 0) + (Number.isFinite(v) ? v : 0));
      const names = [...weight.keys()]
        .sort((a, b) => weight.get(b) - weight.get(a) || a.localeCompare(b))
        .slice(0, MAX_LINES)
        .sort((a, b) => a.localeCompare(b));
      const split = names.length > 1 || (names.length === 1 && names[0] !== '');
      fill(
        legend,
        split ? names.map((n, i) => h('span', { class: 'item' }, h('span', { class: `sw s${i}` }), `${n} ${format(lastSample?.get(n) ?? NaN)}`)) : null,
      );
      const finite = samples.flatMap((m) => names.map((n) => m.get(n))).filter(Number.isFinite);
      const base = s('line', { class: 'base', x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5 });
      if (finite.length === 0) {
        fill(svg, base);
        range.textContent = '';
        return;
      }
      const max = Math.max(...finite);
      const min = Math.min(0, ...finite);
      const span = max - min || 1;
      const n = Math.max(samples.length - 1, 1);
      const paths = [];
      names.forEach((name, k) => {
        const xy = [];
        samples.forEach((m, i) => {
          const p = m.get(name);
          if (Number.isFinite(p)) xy.push([(i / n) * W, H - 2 - ((p - min) / span) * (H - 6)]);
        });
        if (xy.length === 0) return;
        const line = xy.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
        if (!split) paths.push(s('path', { class: 'area', d: `${line} L${xy.at(-1)[0].toFixed(1)},${H} L${xy[0][0].toFixed(1)},${H} Z` }));
        paths.push(s('path', { class: `line s${k}`, d: line }));
      });
      const peaks = samples.map(shown).filter(Number.isFinite);
      range.textContent = peaks.length ? `max ${format(Math.max(...peaks))}` : '';
      fill(svg, paths, base);
    },
  };
}
