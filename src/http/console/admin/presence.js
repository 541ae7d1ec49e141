// Presence: one account's composed state (basic, activities, note, tuples), its watchers and watcher policy,
// and the latest presence.changed events of every presentity.

import { breakable, h, fill } from '/ui/shared/dom.js';
import { clock, duration } from '/ui/shared/format.js';

function dotFor(basic, activities) {
  if (basic !== 'open') return 'closed';
  if (activities.some((a) => ['busy', 'on-the-phone', 'meeting'].includes(a))) return 'busy';
  if (activities.some((a) => ['away', 'vacation', 'sleeping'].includes(a))) return 'away';
  return 'open';
}

const hostPort = (address, port) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

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
      if (!alive) return;
      // Notes may sit on the document or on a device's tuple (RFC 3863 allows both).
      const notes = [...new Set([...(state.notes ?? []), ...state.tuples.flatMap((t) => t.notes ?? [])])];
      const pubs = state.publications.map((p) => `${p.origin === 'http' ? 'HTTP' : p.transport} (${duration(p.expires)} left)`);
      fill(
        el,
        h(
          'div',
          { class: 'status-line big' },
          h('span', { class: `dot ${dotFor(state.basic, state.activities)}` }),
          h('b', { 'data-testid': 'presence-basic' }, state.basic),
          state.activities.map((a) => h('span', { class: 'pill' }, a)),
          h('span', { class: 'muted' }, `from ${state.source === 'published' ? 'publications' : state.source === 'registration' ? 'registrations' : state.source === 'mixed' ? 'publications and registrations' : 'nothing'}`),
        ),
        notes.length ? h('p', { class: 'note', 'data-testid': 'presence-note' }, notes.join(' · ')) : null,
        h(
          'p',
          { class: 'muted' },
          `Published by: ${pubs.length ? pubs.join(', ') : 'nobody'} · watcher policy: ${policy.mode}${policy.allow.length ? ` + ${policy.allow.join(', ')}` : ''}`,
        ),
        h('h4', {}, `Tuples, one per device (${state.tuples.length})`),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h('thead', {}, h('tr', {}, ['Tuple', 'Status', 'Contact', 'Note'].map((t) => h('th', {}, t)))),
            h(
              'tbody',
              { 'data-testid': 'tuples' },
              state.tuples.map((t) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, t.id),
                  h('td', { class: 'nowrap' }, h('span', { class: `dot ${t.basic === 'open' ? 'open' : 'closed'}` }), t.basic),
                  h('td', { class: 'mono break' }, t.contact ? breakable(t.contact) : '–'),
                  h('td', { class: 'break' }, t.notes?.length ? t.notes.join(' · ') : '–'),
                ),
              ),
            ),
          ),
        ),
        h('h4', {}, `Watchers (${watchers.length})`),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h('thead', {}, h('tr', {}, ['Watcher', 'State', 'Flow', 'Expires in'].map((t) => h('th', {}, t)))),
            h(
              'tbody',
              { 'data-testid': 'watchers' },
              watchers.length
                ? watchers.map((w) =>
                    h(
                      'tr',
                      {},
                      h('td', { class: 'break' }, w.watcher),
                      h('td', {}, h('span', { class: `pill ${w.state === 'active' ? 'ok' : 'warn'}` }, w.state)),
                      h('td', { class: 'mono nowrap' }, `${w.transport} ${hostPort(w.address, w.port)}`),
                      h('td', { class: 'nowrap' }, duration(w.expires)),
                    ),
                  )
                : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'Nobody watches.')),
            ),
          ),
        ),
      );
    } catch (e) {
      fill(el, h('p', { class: 'error' }, e.message));
    }
  }
  let pending = null;
  feed.on((topic, e) => {
    if (!alive || !topic.startsWith('presence.')) return;
    const p = e.payload;
    if (p.aor !== account.aor && p.presentity !== account.aor) return;
    // A burst of events (a PUBLISH notifies, announces, …) is one reload.
    clearTimeout(pending);
    pending = setTimeout(load, 100);
  });
  load();
  return { el, dispose: () => (alive = false) };
}

/** The Presence tab: look up anyone's state and watchers; recent changes everywhere (a click shows that presentity). */
export function presenceView(session, feed) {
  const input = h('input', { placeholder: 'user@realm', size: 28, 'data-testid': 'presence-lookup' });
  const result = h('div', {}, h('p', { class: 'muted' }, 'Enter an address, or pick a presentity from the recent changes.'));
  const error = h('p', { class: 'error' });
  const recent = h('tbody', { 'data-testid': 'presence-recent' }, h('tr', { class: 'placeholder' }, h('td', { colspan: 4, class: 'empty' }, 'No changes since the console opened.')));
  let panel = null;

  async function show(q) {
    error.textContent = '';
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
    recent.querySelector('tr.placeholder')?.remove();
    const activities = p.activities ?? [];
    recent.prepend(
      h(
        'tr',
        {
          class: 'fresh clickable',
          title: `Show ${p.aor}`,
          onclick: () => {
            input.value = p.aor;
            show(p.aor);
          },
        },
        h('td', { class: 'muted mono' }, clock(e.at)),
        h('td', { class: 'break' }, p.aor),
        h(
          'td',
          {},
          h('span', { class: 'nowrap' }, h('span', { class: `dot ${dotFor(p.basic, activities)}` }), p.basic),
          activities.length ? [' ', activities.map((a) => h('span', { class: 'pill' }, a))] : null,
          p.notes?.length ? h('div', { class: 'muted' }, p.notes.join(' · ')) : null,
        ),
        h('td', {}, p.cause, h('div', { class: 'muted' }, `${p.watchers ?? 0} watcher${p.watchers === 1 ? '' : 's'}`)),
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
      h('h2', {}, 'Presentity'),
      h(
        'form',
        {
          class: 'row',
          onsubmit: (e) => {
            e.preventDefault();
            show(input.value.trim());
          },
        },
        input,
        h('button', { class: 'btn primary', type: 'submit' }, 'Show'),
      ),
      error,
      result,
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Recent presence changes'),
      h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Presentity', 'State', 'Cause'].map((t) => h('th', {}, t)))), recent),
    ),
  );
}
