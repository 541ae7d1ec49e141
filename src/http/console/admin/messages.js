// Queued messages per account (GET /v1/admin/messages/queued): stored and not yet delivered, fullest first; counts
// and addresses of record only (the route returns no content). Refreshed when the live feed says a message was
// stored, delivered or expired (one reload per burst), and with the button.

import { h, fill } from '/ui/shared/dom.js';

/** Feed events that change a queued count. */
const CHANGES = new Set(['message.stored', 'message.delivered', 'message.expired']);
/** One reload per burst of events (a dump delivers up to 50 at once). */
const SETTLE_MS = 300;

export function messagesView(session, feed) {
  const body = h('tbody');
  const total = h('span', { class: 'muted', 'data-testid': 'queued-total' });
  const error = h('p', { class: 'error' });
  let timer = null;
  let loading = null;

  async function load() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const { accounts } = await session.api('GET', '/v1/admin/messages/queued?limit=200');
        error.textContent = '';
        const n = accounts.reduce((s, a) => s + a.queued, 0);
        total.textContent = `${n} queued for ${accounts.length} account${accounts.length === 1 ? '' : 's'}`;
        fill(
          body,
          accounts.length
            ? accounts.map((a) =>
                h(
                  'tr',
                  { 'data-testid': 'queued-row', 'data-aor': a.aor ?? '' },
                  h('td', { class: 'break' }, a.aor ?? h('span', { class: 'muted' }, `(account ${a.accountId})`)),
                  h('td', { class: 'nowrap', 'data-testid': 'queued-count' }, String(a.queued)),
                ),
              )
            : h('tr', {}, h('td', { colspan: 2, class: 'empty' }, 'No queued messages.')),
        );
      } catch (e) {
        error.textContent = e.message;
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  feed.on((topic) => {
    if (!CHANGES.has(topic) || timer) return;
    timer = setTimeout(() => {
      timer = null;
      load();
    }, SETTLE_MS);
  });
  load();
  return h(
    'section',
    { class: 'card', 'data-testid': 'queued-messages' },
    h('h2', {}, 'Queued messages'),
    h('p', { class: 'muted' }, 'Messages stored for accounts whose devices and apps have not taken them yet: counts only, never content. ', total, ' ', h('button', { class: 'btn', type: 'button', onclick: () => load() }, 'Refresh')),
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Address of record'), h('th', {}, 'Queued'))), body)),
    error,
  );
}
