// Presence: one account's composed state (basic, activities, note, tuples), its watchers and watcher policy,
// and the latest presence.changed events of every presentity.

import { h, fill } from '/ui/shared/dom.js';
import { clock, duration } from '/ui/shared/format.js';

function dotFor(basic, activities) {
  if (basic !== 'open') return 'closed';
  if (activities.some((a) => ['busy', 'on-the-phone', 'meeting'].includes(a))) return 'busy';
  if (activities.some((a) => ['away', 'vacation', 'sleeping'].includes(a))) return 'away';
  return 'open';
}

/** The state and watchers of one account, reloaded on presence events for its AOR. */
export function presencePanel(session, account, feed) {
  const el = h('div', { 'data-testid': 'presence-panel' });
  const id = encodeURIComponent(account.id);
  let alive = true;
  async function load() {
    try {
      const [state, { watchers }, policy] = await Promise.all([
        session.api('GET', `/users/${id}/presence`),
        session.api('GET', `/users/${id}/presence/watchers`),
        session.api('GET', `/users/${id}/presence/policy`),
      ]);
      fill(
        el,
        h(
          'div',
          { class: 'status-line' },
          h('span', { class: `dot ${dotFor(state.basic, state.activities)}` }),
          h('b', { 'data-testid': 'presence-basic' }, state.basic),
          state.activities.map((a) => h('span', { class: 'pill' }, a)),
          h('span', { class: 'muted' }, `from ${state.source}`),
        ),
        state.notes?.length ? h('p', {}, state.notes.join(' · ')) : null,
        h('p', { class: 'muted' }, `${state.tuples.length} tuple(s), ${state.publications.length} publication(s); policy: ${policy.mode}${policy.allow.length ? ` + ${policy.allow.join(', ')}` : ''}`),
        h(
          'table',
          {},
          h('thead', {}, h('tr', {}, ['Watcher', 'State', 'Transport', 'Address', 'Expires in'].map((t) => h('th', {}, t)))),
          h(
            'tbody',
            { 'data-testid': 'watchers' },
            watchers.length
              ? watchers.map((w) => h('tr', {}, h('td', {}, w.watcher), h('td', {}, h('span', { class: `pill ${w.state === 'active' ? 'ok' : 'warn'}` }, w.state)), h('td', {}, w.transport), h('td', { class: 'mono' }, `${w.address}:${w.port}`), h('td', {}, duration(w.expires))))
              : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'Nobody watches.')),
          ),
        ),
      );
    } catch (e) {
      fill(el, h('p', { class: 'error' }, e.message));
    }
  }
  feed.on((topic, e) => {
    if (!alive || !topic.startsWith('presence.')) return;
    const p = e.payload;
    if (p.aor === account.aor || p.presentity === account.aor) load();
  });
  load();
  return { el, dispose: () => (alive = false) };
}

/** The Presence tab: look up anyone's state; recent changes everywhere. */
export function presenceView(session, feed) {
  const input = h('input', { placeholder: 'user@realm', size: 28, 'data-testid': 'presence-lookup' });
  const result = h('div');
  const error = h('p', { class: 'error' });
  const recent = h('tbody', { 'data-testid': 'presence-recent' });
  let panel = null;

  async function lookup(e) {
    e?.preventDefault();
    error.textContent = '';
    const q = input.value.trim();
    if (!q) return;
    try {
      const { users } = await session.api('GET', `/users?${new URLSearchParams({ search: q, limit: '10' })}`);
      const account = users.find((u) => u.aor === q || `${u.username}@${u.realm}` === q) ?? users[0];
      if (!account) throw new Error(`no account matches ${q}`);
      panel?.dispose();
      panel = presencePanel(session, account, feed);
      fill(result, h('h3', {}, account.aor), panel.el);
    } catch (err) {
      error.textContent = err.message;
    }
  }

  feed.on((topic, e) => {
    if (topic !== 'presence.changed') return;
    const p = e.payload;
    recent.prepend(
      h(
        'tr',
        { class: 'fresh' },
        h('td', { class: 'muted mono' }, clock(e.at)),
        h('td', {}, p.aor),
        h('td', {}, h('span', { class: `dot ${dotFor(p.basic, p.activities ?? [])}` }), p.basic),
        h('td', {}, (p.activities ?? []).join(', ') || '–'),
        h('td', {}, (p.notes ?? []).join(' · ') || '–'),
        h('td', {}, p.cause),
        h('td', {}, String(p.watchers ?? 0)),
      ),
    );
    while (recent.children.length > 100) recent.lastChild.remove();
  });

  return h(
    'div',
    { class: 'grid2' },
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Recent presence changes'),
      h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Presentity', 'Basic', 'Activities', 'Note', 'Cause', 'Watchers'].map((t) => h('th', {}, t)))), recent),
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Look up a presentity'), h('form', { class: 'row', onsubmit: lookup }, input, h('button', { class: 'btn primary', type: 'submit' }, 'Show')), error, result),
  );
}
