// Live registrations: every binding the location service holds, filtered by realm, user, transport, User-Agent
// and "expiring soon" (GET /v1/registrations does the filtering), refreshed on every binding.* event of the live
// feed; a click shows that AOR's bindings in full.

import { h, fill } from '/ui/shared/dom.js';
import { duration } from '/ui/shared/format.js';

const EXPIRING = [
  ['', 'any time'],
  ['60', 'within 1 min'],
  ['300', 'within 5 min'],
  ['900', 'within 15 min'],
  ['3600', 'within 1 h'],
];

export function registrationsView(session, config, { sampler, feed }) {
  const realm = h('select', { name: 'realm' }, h('option', { value: '' }, 'all realms'), config.realms.map((r) => h('option', { value: r }, r)));
  const user = h('input', { name: 'user', placeholder: 'user', size: 12 });
  const transport = h('select', { name: 'transport' }, h('option', { value: '' }, 'any'), ['UDP', 'TCP', 'TLS', 'WS', 'WSS'].map((t) => h('option', { value: t }, t)));
  const userAgent = h('input', { name: 'userAgent', placeholder: 'contains…', size: 14 });
  const expiring = h('select', { name: 'expiringWithin' }, EXPIRING.map(([v, t]) => h('option', { value: v }, t)));
  const form = h(
    'form',
    { class: 'filters', onsubmit: (e) => (e.preventDefault(), load()) },
    h('label', { class: 'field' }, 'Realm', realm),
    h('label', { class: 'field' }, 'User', user),
    h('label', { class: 'field' }, 'Transport', transport),
    h('label', { class: 'field' }, 'User agent', userAgent),
    h('label', { class: 'field' }, 'Expires', expiring),
    h('button', { class: 'btn primary', type: 'submit' }, 'Filter'),
  );
  for (const el of [realm, transport, expiring]) el.addEventListener('change', () => load());

  const count = h('span', { class: 'count', 'data-testid': 'registration-count' });
  const body = h('tbody', { 'data-testid': 'registrations' });
  const error = h('p', { class: 'error' });
  const detail = h('div', { 'data-testid': 'aor-detail' }, h('p', { class: 'muted' }, 'Select a registration to see its bindings.'));
  let rows = []; // [{ aor, binding, expiresAt, tr, cell }]
  let selected = null;
  let known = new Set();

  const table = h(
    'table',
    {},
    h('thead', {}, h('tr', {}, ['Address of record', 'Contact', 'Transport', 'Source', 'User agent', 'Expires in'].map((t) => h('th', {}, t)))),
    body,
  );

  async function load() {
    const q = new URLSearchParams();
    for (const [k, el] of [['realm', realm], ['user', user], ['transport', transport], ['userAgent', userAgent], ['expiringWithin', expiring]]) {
      if (el.value.trim()) q.set(k, el.value.trim());
    }
    try {
      const data = await session.api('GET', `/v1/registrations?${q}`);
      error.textContent = '';
      render(data);
    } catch (e) {
      error.textContent = e.message;
    }
  }

  function render(data) {
    const now = Date.now();
    const seen = new Set();
    rows = [];
    let bindings = 0;
    for (const reg of data.registrations) {
      for (const b of reg.bindings) {
        bindings++;
        const key = `${reg.aor} ${b.contact}`;
        seen.add(key);
        const cell = h('td', { class: 'expires' });
        const tr = h(
          'tr',
          { class: `clickable${known.has(key) ? '' : ' fresh'}${selected === reg.aor ? ' selected' : ''}`, 'data-testid': 'registration-row', 'data-aor': reg.aor, onclick: () => select(reg.aor) },
          h('td', {}, reg.aor),
          h('td', { class: 'wrap mono' }, b.contact),
          h('td', {}, h('span', { class: 'pill info' }, b.transport)),
          h('td', { class: 'mono' }, `${b.source.address}:${b.source.port}`),
          h('td', { class: 'wrap', 'data-testid': 'user-agent' }, b.userAgent ?? '–'),
          cell,
        );
        rows.push({ aor: reg.aor, expiresAt: Date.parse(b.expiresAt), tr, cell });
      }
    }
    known = seen;
    fill(count, `${data.total} AOR${data.total === 1 ? '' : 's'}, ${bindings} binding${bindings === 1 ? '' : 's'}`);
    fill(body, rows.length ? rows.map((r) => r.tr) : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No registrations match.')));
    tick(now);
    if (selected) showDetail(selected);
  }

  function tick(now = Date.now()) {
    for (const r of rows) {
      const left = (r.expiresAt - now) / 1000;
      r.cell.textContent = left > 0 ? duration(left) : 'expired';
      r.cell.className = `expires ${left < 60 ? 'warn' : ''}`;
    }
  }

  async function showDetail(aor) {
    const at = aor.lastIndexOf('@');
    try {
      const data = await session.api('GET', `/v1/registrations?${new URLSearchParams({ realm: aor.slice(at + 1), user: aor.slice(0, at) })}`);
      const reg = data.registrations[0];
      if (!reg) return fill(detail, h('p', { class: 'muted' }, `${aor} has no bindings any more.`));
      fill(
        detail,
        h('h3', {}, aor),
        reg.bindings.map((b) =>
          h(
            'dl',
            { class: 'kv card' },
            [
              ['Contact', b.contact],
              ['Transport', b.transport],
              ['Source', `${b.source.address}:${b.source.port}`],
              ['Local', `${b.local.address}:${b.local.port}`],
              ['Expires', `${b.expiresAt} (${duration(b.expires)})`],
              ['q', b.q ?? '–'],
              ['Call-ID', b.callId],
              ['CSeq', b.cseq],
              ['User agent', b.userAgent ?? '–'],
              ['Instance', b.instanceId ?? '–'],
              ['reg-id', b.regId ?? '–'],
              ['Path', b.path?.length ? b.path.join(', ') : '–'],
              ['Node', b.node ?? '–'],
              ['Registered', b.registeredAt],
              ['Updated', b.updatedAt],
            ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]),
          ),
        ),
      );
    } catch (e) {
      fill(detail, h('p', { class: 'error' }, e.message));
    }
  }

  function select(aor) {
    selected = aor;
    for (const r of rows) r.tr.classList.toggle('selected', r.aor === aor);
    showDetail(aor);
  }

  let pending = null;
  const reloadSoon = () => {
    clearTimeout(pending);
    pending = setTimeout(load, 150);
  };
  feed.on((topic) => {
    if (topic.startsWith('binding.')) reloadSoon();
  });
  setInterval(() => tick(), 1000);
  setInterval(load, 30000);

  const el = h(
    'div',
    {},
    h('section', { class: 'card' }, sampler.charts(['bindings', 'aors', 'sip', 'authfail'])),
    h(
      'div',
      { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', {}, 'Registrations ', count), form, error, table),
      h('section', { class: 'card' }, h('h2', {}, 'Bindings'), detail),
    ),
  );
  load();
  return { el };
}
