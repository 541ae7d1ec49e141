// An account's API keys: list, create (the key is shown once), revoke.

import { h, fill } from '/ui/shared/dom.js';
import { dateTime } from '/ui/shared/format.js';

const PERMISSIONS = ['registrations.read', 'registrations.write', 'users.read', 'users.write', 'presence.read', 'presence.write', 'events.read', 'metrics.read'];
const EXPIRY = [
  ['', 'never expires'],
  ['30', 'expires in 30 days'],
  ['90', 'expires in 90 days'],
  ['365', 'expires in a year'],
];

export function apiKeysPanel(session, accountId) {
  const body = h('tbody');
  const created = h('div');
  const error = h('p', { class: 'error' });
  const name = h('input', { placeholder: 'e.g. monitoring', required: true, maxlength: 100, size: 18, 'data-testid': 'api-key-name' });
  const expiry = h('select', {}, EXPIRY.map(([v, t]) => h('option', { value: v }, t)));
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
                h('td', { class: 'break' }, k.name),
                h('td', {}, k.permissions.map((p) => [h('span', { class: 'pill' }, p), ' '])),
                h('td', { class: 'muted nowrap' }, dateTime(Date.parse(k.createdAt))),
                h('td', { class: 'nowrap' }, k.revokedAt ? h('span', { class: 'pill bad' }, 'revoked') : k.expiresAt ? `until ${k.expiresAt.slice(0, 10)}` : 'no expiry'),
                h('td', { class: 'muted nowrap' }, k.lastUsedAt ? dateTime(Date.parse(k.lastUsedAt)) : 'never used'),
                h('td', {}, k.revokedAt ? '' : h('button', { class: 'btn danger', type: 'button', onclick: () => revoke(k) }, 'Revoke')),
              ),
            )
          : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No API keys.')),
      );
    } catch (e) {
      error.textContent = e.message;
    }
  }

  async function revoke(k) {
    if (!window.confirm(`Revoke the API key "${k.name}"? Whatever uses it stops working at once.`)) return;
    await session.api('DELETE', `/users/${encodeURIComponent(accountId)}/api-keys/${encodeURIComponent(k.id)}`).catch((e) => (error.textContent = e.message));
    load();
  }

  async function create(e) {
    e.preventDefault();
    const permissions = perms.filter((x) => x.box.checked).map((x) => x.p);
    if (permissions.length === 0) {
      error.textContent = 'Tick at least one permission.';
      return;
    }
    const body = { name: name.value.trim(), permissions };
    if (expiry.value) body.expiresInDays = Number(expiry.value);
    try {
      const k = await session.api('POST', `/users/${encodeURIComponent(accountId)}/api-keys`, body);
      error.textContent = '';
      fill(created, h('div', { class: 'notice' }, 'Copy the key now; it is not shown again: ', h('code', { class: 'mono', 'data-testid': 'new-api-key' }, k.key)));
      name.value = '';
      for (const x of perms) x.box.checked = false;
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  load();
  return h(
    'div',
    {},
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Permissions', 'Created', 'Expiry', 'Last used', ''].map((t) => h('th', {}, t)))), body)),
    h(
      'form',
      { class: 'new-key', onsubmit: create },
      h('h4', {}, 'New key'),
      h('div', { class: 'row' }, h('label', { class: 'field' }, 'Name', name), h('label', { class: 'field' }, 'Expiry', expiry)),
      h('fieldset', { class: 'perms' }, h('legend', {}, 'Permissions'), perms.map((x) => h('label', {}, x.box, ` ${x.p}`))),
      h('button', { class: 'btn primary', type: 'submit' }, 'Create key'),
    ),
    created,
    error,
  );
}
