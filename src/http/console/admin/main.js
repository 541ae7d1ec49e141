// The admin console: sign in (admins only; the API refuses everyone else anyway), then tabs for registrations,
// live calls, accounts, presence, queued messages, the live event feed, metrics and the signed-in admin's own API keys.

import { bootPage, Session } from '/ui/shared/auth.js';
import { $, fill, h } from '/ui/shared/dom.js';
import { accountsView } from './accounts.js';
import { apiKeysPanel } from './apikeys.js';
import { callsView } from './calls.js';
import { createFeed, eventsView } from './events.js';
import { messagesView } from './messages.js';
import { MetricsSampler, metricsView } from './metrics.js';
import { presenceView } from './presence.js';
import { registrationsView } from './registrations.js';

const session = new Session('console');

function showLogin(message = '') {
  $('#app').classList.add('hidden');
  $('#login').classList.remove('hidden');
  $('#login-error').textContent = message;
}

async function start(config) {
  const claims = session.claims;
  if (!claims.roles?.includes('admin')) {
    const who = `${claims.username}@${claims.realm}`;
    await session.logout();
    return showLogin(`${who} is not an administrator: the console needs the admin role. The softphone is at /phone/.`);
  }
  $('#login').classList.add('hidden');
  $('#app').classList.remove('hidden');
  fill($('#who'), 'signed in as ', h('b', { 'data-testid': 'who' }, `${claims.username}@${claims.realm}`), ' ');

  const feed = createFeed(session);
  const sampler = new MetricsSampler(session);
  sampler.start();
  const views = {
    Registrations: registrationsView(session, config, { sampler, feed }).el,
    Calls: callsView(session, feed),
    Accounts: accountsView(session, feed),
    Presence: presenceView(session, feed),
    Messages: messagesView(session, feed),
    Events: eventsView(feed),
    Metrics: metricsView(sampler),
    'My API keys': h('section', { class: 'card' }, h('h2', {}, 'My API keys'), apiKeysPanel(session, claims.sub)),
  };
  const buttons = Object.keys(views).map((name) => h('button', { type: 'button', 'data-view': name, onclick: () => select(name) }, name));
  fill($('#nav'), buttons);
  fill($('#views'), Object.entries(views).map(([name, el]) => h('div', { 'data-view': name, class: 'view' }, el)));
  function select(name) {
    for (const b of buttons) b.setAttribute('aria-selected', String(b.dataset.view === name));
    for (const v of document.querySelectorAll('#views > .view')) v.classList.toggle('hidden', v.dataset.view !== name);
    history.replaceState(null, '', `#${encodeURIComponent(name)}`);
  }
  select(views[decodeURIComponent(location.hash.slice(1))] ? decodeURIComponent(location.hash.slice(1)) : 'Registrations');
  $('#logout').addEventListener('click', async () => {
    feed.stop();
    await session.logout();
    location.reload();
  });
}

bootPage(session, start, showLogin);
