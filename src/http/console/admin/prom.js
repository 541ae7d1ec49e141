// A small parser for the Prometheus text exposition format (what /metrics serves): enough for the console's
// charts. Returns Map<metric name, Array<{ labels, value }>>.

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseProm(text) {
  const out = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    let name;
    let rest;
    const labels = {};
    if (brace >= 0 && brace < space) {
      name = line.slice(0, brace);
      const close = line.lastIndexOf('}');
      for (const m of line.slice(brace + 1, close).matchAll(LABEL)) labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      rest = line.slice(close + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const value = Number(rest.split(/\s+/)[0]);
    if (!out.has(name)) out.set(name, []);
    out.get(name).push({ labels, value });
  }
  return out;
}

/** The sum of a metric's series (optionally only those whose labels match `where`); NaN when absent. */
export function total(metrics, name, where = {}) {
  const series = metrics.get(name);
  if (!series) return NaN;
  let sum = 0;
  for (const s of series) if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}

/** The metric's series summed by one label: Map<label value (renamed by `key`), sum>; empty when absent. */
export function byLabel(metrics, name, label, key = (v) => v) {
  const out = new Map();
  for (const s of metrics.get(name) ?? []) {
    const k = key(s.labels[label] ?? '');
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}
