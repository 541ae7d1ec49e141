// Accounts: search and page through them; one account's roles, devices (phone sign-up), registrations,
// presence with watchers, and API keys.

import { breakable, h, fill } from '/ui/shared/dom.js';
import { dateTime, duration } from '/ui/shared/format.js';
import { apiKeysPanel } from './apikeys.js';
import { presencePanel } from './presence.js';

export function accountsView(session, feed) {
  const search = h('input', { placeholder: 'search user@realm', size: 24, 'data-testid': 'account-search' });
  const body = h('tbody', { 'data-testid': 'accounts' });
  const count = h('span', { class: 'count' });
  const error = h('p', { class: 'error' });
  const detail = h('div', {}, h('p', { class: 'muted' }, 'Select an account.'));
  let presence = null;
  let selected = null;

  async function load(e) {
    e?.preventDefault();
    try {
      const q = new URLSearchParams({ limit: '200' });
      if (search.value.trim()) q.set('search', search.value.trim());
      const data = await session.api('GET', `/users?${q}`);
      error.textContent = '';
      fill(count, `${data.total}`);
      fill(
        body,
        data.users.length
          ? data.users.map((u) =>
              h(
                'tr',
                { class: `clickable${selected === u.id ? ' selected' : ''}`, 'data-testid': 'account-row', 'data-id': u.id, onclick: () => show(u) },
                h('td', {}, u.aor),
                h('td', {}, u.roles.map((r) => h('span', { class: 'pill info' }, r))),
                h('td', {}, u.disabled ? h('span', { class: 'pill bad' }, 'disabled') : h('span', { class: 'pill ok' }, 'active')),
                h('td', { class: 'muted' }, u.createdAt.slice(0, 10)),
              ),
            )
          : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No accounts match.')),
      );
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function show(u) {
    selected = u.id;
    for (const tr of body.querySelectorAll('tr[data-id]')) tr.classList.toggle('selected', tr.dataset.id === u.id);
    presence?.dispose();
    presence = presencePanel(session, u, feed);
    const id = encodeURIComponent(u.id);
    const devices = h('tbody');
    const bindings = h('tbody');
    fill(
      detail,
      h('h3', {}, u.aor),
      h('dl', { class: 'kv' }, [
        [h('dt', {}, 'Account id'), h('dd', { class: 'mono' }, u.id)],
        [h('dt', {}, 'Roles'), h('dd', {}, u.roles.join(', ') || 'none')],
        [h('dt', {}, 'Password'), h('dd', {}, u.hasPassword ? 'set' : 'none')],
        [h('dt', {}, 'Created'), h('dd', {}, dateTime(Date.parse(u.createdAt)))],
      ]),
      h('h3', {}, 'SIP registrations'),
      h('table', {}, h('thead', {}, h('tr', {}, ['Contact', 'Transport', 'User agent', 'Expires in'].map((t) => h('th', {}, t)))), bindings),
      h('h3', {}, 'Phone devices'),
      h('table', {}, h('thead', {}, h('tr', {}, ['Id', 'Name', 'Created', 'Last seen'].map((t) => h('th', {}, t)))), devices),
      h('h3', {}, 'Presence'),
      presence.el,
      h('h3', {}, 'API keys'),
      apiKeysPanel(session, u.id),
    );
    const at = u.aor.lastIndexOf('@');
    session
      .api('GET', `/v1/registrations?${new URLSearchParams({ realm: u.aor.slice(at + 1), user: u.aor.slice(0, at) })}`)
      .then((r) => {
        const list = r.registrations[0]?.bindings ?? [];
        fill(bindings, list.length ? list.map((b) => h('tr', {}, h('td', { class: 'wrap mono' }, breakable(b.contact)), h('td', {}, h('span', { class: 'pill info' }, b.transport)), h('td', {}, b.userAgent ?? '–'), h('td', { class: 'nowrap' }, duration(b.expires)))) : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'Not registered.')));
      })
      .catch((e) => fill(bindings, h('tr', {}, h('td', { colspan: 4, class: 'error' }, e.message))));
    session
      .api('GET', `/users/${id}/devices`)
      .then((r) => fill(devices, r.devices.length ? r.devices.map((d) => h('tr', {}, h('td', {}, String(d.id)), h('td', {}, d.name ?? '–'), h('td', {}, new Date(d.created).toISOString().slice(0, 10)), h('td', {}, new Date(d.lastSeen).toISOString().slice(0, 10)))) : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'None (not a phone sign-up account).'))))
      .catch((e) => fill(devices, h('tr', {}, h('td', { colspan: 4, class: 'error' }, e.message))));
  }

  load();
  return h(
    'div',
    { class: 'grid2' },
    h('section', { class: 'card' }, h('h2', {}, 'Accounts ', count), h('form', { class: 'row', onsubmit: load }, search, h('button', { class: 'btn primary', type: 'submit' }, 'Search')), error, h('table', {}, h('thead', {}, h('tr', {}, ['Account', 'Roles', 'Status', 'Created'].map((t) => h('th', {}, t)))), body)),
    h('section', { class: 'card' }, h('h2', {}, 'Account'), detail),
  );
}
