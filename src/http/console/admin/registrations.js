// Live registrations: every binding the location service holds, filtered by realm, user, transport, User-Agent
// and "expiring soon" (GET /v1/registrations does the filtering), refreshed on every binding.* event of the live
// feed; a click shows that AOR's bindings in full.

import { breakable, h, fill } from '/ui/shared/dom.js';
import { dateTime, duration } from '/ui/shared/format.js';

const hostPort = (a) => (a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);

const EXPIRING = [
  ['', 'any time'],
  ['60', 'within 1 min'],
  ['300', 'within 5 min'],
  ['900', 'within 15 min'],
  ['3600', 'within 1 h'],
];

export function registrationsView(session, config, { sampler, feed }) {
  const realm = h('select', { name: 'realm' }, h('option', { value: '' }, 'all realms'), config.realms.map((r) => h('option', { value: r }, r)));
  const user = h('input', { name: 'user', placeholder: 'exact name', size: 12 });
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
  const truncated = h('p', { class: 'notice-inline' });
  const body = h('tbody', { 'data-testid': 'registrations' });
  const error = h('p', { class: 'error' });
  const detail = h('div');
  const detailTitle = h('span', {}, 'Bindings');
  const close = h('button', { class: 'btn', type: 'button', 'aria-label': 'Close', title: 'Close', onclick: () => select(null) }, 'Close');
  // The bindings of the selected AOR open beside the table (which has the whole width otherwise).
  const detailCard = h('section', { class: 'card detail hidden', 'data-testid': 'aor-detail' }, h('h2', {}, detailTitle, h('span', { class: 'spacer' }), close), detail);
  let rows = []; // [{ aor, expiresAt, tr, cell }]
  let selected = null;
  let known = new Set();

  const table = h(
    'table',
    { class: 'registrations' },
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
    // By address of record (the API lists them in index order, which moves as phones come and go).
    const regs = [...data.registrations].sort((a, b) => a.realm.localeCompare(b.realm) || a.user.localeCompare(b.user));
    for (const reg of regs) {
      reg.bindings.forEach((b, i) => {
        bindings++;
        const key = `${reg.aor} ${b.contact}`;
        seen.add(key);
        const cell = h('td', { class: 'expires' });
        const tr = h(
          'tr',
          { class: `clickable${known.has(key) ? '' : ' fresh'}${selected === reg.aor ? ' selected' : ''}${i > 0 ? ' same-aor' : ''}`, 'data-testid': 'registration-row', 'data-aor': reg.aor, onclick: () => select(reg.aor) },
          h('td', { class: 'aor' }, reg.aor),
          h('td', { class: 'break mono' }, breakable(b.contact)),
          h('td', {}, h('span', { class: 'pill info' }, b.transport)),
          h('td', { class: 'mono nowrap' }, hostPort(b.source)),
          h('td', { class: 'break', 'data-testid': 'user-agent' }, b.userAgent ?? '–'),
          cell,
        );
        rows.push({ aor: reg.aor, expiresAt: Date.parse(b.expiresAt), tr, cell });
      });
    }
    known = seen;
    fill(count, `${data.total} AOR${data.total === 1 ? '' : 's'}, ${bindings} binding${bindings === 1 ? '' : 's'}`);
    fill(truncated, data.total > regs.length ? `Showing the first ${regs.length} of ${data.total} addresses of record: narrow the filter to see the others.` : '');
    fill(body, rows.length ? rows.map((r) => r.tr) : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No registrations match.')));
    tick(now);
    if (selected) showDetail(selected);
  }

  function tick(now = Date.now()) {
    for (const r of rows) {
      const left = (r.expiresAt - now) / 1000;
      r.cell.textContent = left > 0 ? duration(left) : 'expired';
      r.cell.className = `expires nowrap${left < 60 ? ' warn' : ''}`;
    }
  }

  async function showDetail(aor) {
    const at = aor.lastIndexOf('@');
    try {
      const data = await session.api('GET', `/v1/registrations?${new URLSearchParams({ realm: aor.slice(at + 1), user: aor.slice(0, at) })}`);
      if (selected !== aor) return; // another row was picked meanwhile
      const reg = data.registrations[0];
      if (!reg) return fill(detail, h('p', { class: 'muted' }, `${aor} has no bindings any more.`));
      // Contact parameters other than those shown on their own rows.
      const params = (b) => (b.params ?? '').replace(/;\s*\+sip\.instance\s*=\s*"[^"]*"/i, '').replace(/;\s*reg-id\s*=\s*\d+/i, '').trim();
      fill(
        detail,
        h('p', { class: 'muted' }, `${reg.bindings.length} binding${reg.bindings.length === 1 ? '' : 's'}`),
        reg.bindings.map((b) =>
          h(
            'dl',
            { class: 'kv binding' },
            [
              ['Contact', h('span', { class: 'mono' }, breakable(b.contact))],
              params(b) ? ['Parameters', h('span', { class: 'mono' }, breakable(params(b)))] : null,
              [
                'Flow',
                h(
                  'span',
                  {},
                  h('span', { class: 'pill info' }, b.transport),
                  ' from ',
                  h('span', { class: 'mono' }, hostPort(b.source)),
                  ' to ',
                  h('span', { class: 'mono' }, hostPort(b.local)),
                  b.connectionId !== null && b.connectionId !== undefined ? ` (connection ${b.connectionId})` : '',
                ),
              ],
              ['Expires', `in ${duration(b.expires)} (${dateTime(Date.parse(b.expiresAt))})`],
              b.q !== null && b.q !== undefined ? ['q', b.q] : null,
              ['User agent', b.userAgent ?? '–'],
              b.instanceId ? ['Instance', h('span', {}, h('span', { class: 'mono' }, breakable(b.instanceId)), b.regId !== null && b.regId !== undefined ? ` reg-id ${b.regId}` : '')] : null,
              b.path?.length ? ['Path', h('span', { class: 'mono' }, b.path.map((p, i) => [i ? h('br', {}) : null, breakable(p)]))] : null,
              ['Call-ID, CSeq', h('span', { class: 'mono' }, breakable(b.callId), ` ${b.cseq}`)],
              ['Node', b.node ?? '–'],
              ['Registered', dateTime(Date.parse(b.registeredAt))],
              ['Last REGISTER', dateTime(Date.parse(b.updatedAt))],
            ]
              .filter(Boolean)
              .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v instanceof Node ? v : String(v))]),
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
    split.classList.toggle('with-detail', aor !== null);
    detailCard.classList.toggle('hidden', aor === null);
    if (aor === null) return fill(detail);
    fill(detailTitle, aor);
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

  const split = h(
    'div',
    { class: 'split' },
    h('section', { class: 'card' }, h('h2', {}, 'Registrations ', count), form, error, truncated, table, h('p', { class: 'muted hint' }, 'Click a row to see all bindings of its address of record.')),
    detailCard,
  );
  const el = h('div', {}, h('section', { class: 'card' }, sampler.charts(['bindings', 'aors', 'sip', 'authfail'])), split);
  load();
  return { el };
}
