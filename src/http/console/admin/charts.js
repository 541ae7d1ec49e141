// Line charts as inline SVG, drawn from the periodic /metrics scrapes (no chart library).

import { h, s, fill } from '/ui/shared/dom.js';

const W = 300;
const H = 64;

/** A chart card: title, current value, and a line of the recent values. */
export function lineChart(title, format) {
  const value = h('div', { class: 'value' }, '–');
  const range = h('span', {}, '');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
  const el = h('div', { class: 'chart', 'data-testid': 'chart' }, h('div', { class: 'title' }, h('span', {}, title), range), value, svg);
  return {
    el,
    /** points: Array<number> (oldest first); NaN gaps are skipped. */
    draw(points) {
      const finite = points.filter(Number.isFinite);
      const last = finite.length ? finite[finite.length - 1] : NaN;
      value.textContent = format(last);
      if (finite.length === 0) {
        fill(svg, s('line', { class: 'base', x1: 0, x2: W, y1: H - 1, y2: H - 1 }));
        range.textContent = '';
        return;
      }
      const max = Math.max(...finite);
      const min = Math.min(0, ...finite);
      const span = max - min || 1;
      const n = Math.max(points.length - 1, 1);
      const xy = [];
      points.forEach((p, i) => {
        if (Number.isFinite(p)) xy.push([(i / n) * W, H - 2 - ((p - min) / span) * (H - 6)]);
      });
      const line = xy.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
      const area = `${line} L${xy[xy.length - 1][0].toFixed(1)},${H} L${xy[0][0].toFixed(1)},${H} Z`;
      range.textContent = `max ${format(max)}`;
      fill(svg, s('path', { class: 'area', d: area }), s('path', { class: 'line', d: line }), s('line', { class: 'base', x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5 }));
    },
  };
}
