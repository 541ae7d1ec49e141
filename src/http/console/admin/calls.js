// Live calls: the calls this node proxies that ring or are answered now (GET /v1/calls, from the proxy's
// accounting), reloaded on every call.* event of the live feed (started, answered, failed, ended), with the time
// each has rung or lasted counted up every second.

import { h, fill } from '/ui/shared/dom.js';
import { dateTime, duration } from '/ui/shared/format.js';

export function callsView(session, feed) {
  const count = h('span', { class: 'count', 'data-testid': 'call-count' });
  const body = h('tbody', { 'data-testid': 'calls' });
  const error = h('p', { class: 'error' });
  const note = h('p', { class: 'muted hint' });
  let rows = []; // [{ call, since }]

  async function load() {
    try {
      const data = await session.api('GET', '/v1/calls');
      error.textContent = '';
      render(data);
    } catch (e) {
      error.textContent = e.message;
    }
  }

  function render(data) {
    rows = data.calls.map((c) => {
      const since = h('td', { 'data-testid': 'call-since' });
      const tr = h(
        'tr',
        { 'data-testid': 'call-row', 'data-call-id': c.callId, 'data-state': c.state },
        h('td', {}, c.caller),
        h('td', {}, c.callee),
        h('td', {}, h('span', { class: `pill ${c.state === 'answered' ? 'ok' : 'warn'}`, 'data-testid': 'call-state' }, c.state)),
        h('td', {}, dateTime(Date.parse(c.startedAt))),
        since,
        h('td', { class: 'num' }, String(c.branches)),
      );
      return { call: c, since, tr };
    });
    fill(body, rows.length ? rows.map((r) => r.tr) : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No calls now.')));
    fill(count, `${data.total} ${data.total === 1 ? 'call' : 'calls'}`);
    fill(note, `Calls proxied by node ${data.node}${data.total > data.calls.length ? ` (the newest ${data.calls.length} shown)` : ''}.`);
    tick();
  }

  function tick() {
    const now = Date.now();
    for (const r of rows) {
      const from = Date.parse(r.call.answeredAt ?? r.call.startedAt);
      fill(r.since, `${r.call.answeredAt ? 'talking' : 'ringing'} ${duration((now - from) / 1000)}`);
    }
  }

  let pending = null;
  feed.on((topic) => {
    if (!topic.startsWith('call.')) return;
    clearTimeout(pending);
    pending = setTimeout(load, 150);
  });
  setInterval(tick, 1000);
  setInterval(load, 30000);
  load();

  const table = h(
    'table',
    { class: 'registrations' },
    h('thead', {}, h('tr', {}, ['Caller', 'Callee', 'State', 'Started', 'For', 'Branches'].map((t) => h('th', {}, t)))),
    body,
  );
  return h('section', { class: 'card' }, h('h2', {}, 'Live calls ', count), error, table, note);
}
