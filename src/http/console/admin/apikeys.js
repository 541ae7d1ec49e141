// An account's API keys: list, create (the key is shown once), revoke.

import { h, fill } from '/ui/shared/dom.js';

const PERMISSIONS = ['registrations.read', 'users.read', 'users.write', 'presence.read', 'presence.write', 'events.read'];

export function apiKeysPanel(session, accountId) {
  const body = h('tbody');
  const created = h('div');
  const error = h('p', { class: 'error' });
  const name = h('input', { placeholder: 'name', required: true, size: 14 });
  const perms = PERMISSIONS.map((p) => ({ p, box: h('input', { type: 'checkbox', value: p }) }));

  async function load() {
    try {
      const { keys } = await session.api('GET', `/users/${encodeURIComponent(accountId)}/api-keys`);
      fill(
        body,
        keys.length
          ? keys.map((k) =>
              h(
                'tr',
                {},
                h('td', {}, k.name),
                h('td', {}, k.permissions.map((p) => [h('span', { class: 'pill' }, p), ' '])),
                h('td', {}, k.revokedAt ? h('span', { class: 'pill bad' }, 'revoked') : k.expiresAt ? `until ${k.expiresAt.slice(0, 10)}` : 'no expiry'),
                h('td', { class: 'muted' }, k.lastUsedAt ? k.lastUsedAt.replace('T', ' ').slice(0, 19) : 'never used'),
                h('td', {}, k.revokedAt ? '' : h('button', { class: 'btn danger', type: 'button', onclick: () => revoke(k.id) }, 'Revoke')),
              ),
            )
          : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No API keys.')),
      );
    } catch (e) {
      error.textContent = e.message;
    }
  }

  async function revoke(id) {
    await session.api('DELETE', `/users/${encodeURIComponent(accountId)}/api-keys/${encodeURIComponent(id)}`).catch((e) => (error.textContent = e.message));
    load();
  }

  async function create(e) {
    e.preventDefault();
    const permissions = perms.filter((x) => x.box.checked).map((x) => x.p);
    try {
      const k = await session.api('POST', `/users/${encodeURIComponent(accountId)}/api-keys`, { name: name.value, permissions });
      error.textContent = '';
      fill(created, h('div', { class: 'notice' }, 'Copy the key now; it is not shown again: ', h('code', { class: 'mono', 'data-testid': 'new-api-key' }, k.key)));
      name.value = '';
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  load();
  return h(
    'div',
    {},
    h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Permissions', 'Expiry', 'Last used', ''].map((t) => h('th', {}, t)))), body),
    h('form', { class: 'row', onsubmit: create }, name, perms.map((x) => h('label', {}, x.box, ` ${x.p}`)), h('button', { class: 'btn primary', type: 'submit' }, 'Create key')),
    created,
    error,
  );
}
