// The live event feed: every bus event from GET /v1/events (read with fetch, so the token stays in the
// Authorization header), newest first, filtered by kind and by text (an AOR, a user agent, …), with pause.

import { h, fill } from '/ui/shared/dom.js';
import { clock } from '/ui/shared/format.js';
import { followEvents } from '/ui/shared/sse.js';

const KEEP = 300;

/** One stream for the whole console; views register handlers with on(fn(topic, event)). */
export function createFeed(session) {
  const handlers = new Set();
  const stateHandlers = new Set();
  let state = 'connecting';
  const stop = followEvents(session, '/v1/events', {
    onEvent: (topic, event) => {
      for (const fn of handlers) fn(topic, event);
    },
    onState: (s) => {
      state = s;
      for (const fn of stateHandlers) fn(s);
    },
  });
  return {
    on: (fn) => handlers.add(fn),
    onState: (fn) => (stateHandlers.add(fn), fn(state)),
    stop,
  };
}

/** A short description of an event's payload for the feed. */
function summary(topic, p) {
  if (topic.startsWith('binding.')) return `${p.aor} ${p.contact} ${p.transport}${p.userAgent ? ` (${p.userAgent})` : ''}${p.expires ? ` ${p.expires}s` : ''}`;
  if (topic === 'presence.changed') return `${p.aor} ${p.basic}${p.activities?.length ? ` [${p.activities.join(', ')}]` : ''} (${p.cause})`;
  if (topic.startsWith('presence.subscription.')) return `${p.watcher} → ${p.presentity} ${p.state ?? ''}${p.reason ? ` ${p.reason}` : ''}`;
  if (topic.startsWith('presence.publication.')) return `${p.aor} ${p.origin ?? ''} ${p.expires ?? ''}s`;
  if (topic.startsWith('call.')) return `${p.caller} → ${p.callee}${p.status ? ` ${p.status}` : ''}${p.duration_seconds !== undefined ? ` ${p.duration_seconds}s` : ''}`;
  return JSON.stringify(p);
}

export function eventsView(feed) {
  const list = h('ol', { class: 'feed', 'data-testid': 'event-feed' });
  const status = h('span', { class: 'pill', 'data-testid': 'feed-state' });
  const kinds = { binding: true, presence: true, other: true };
  let paused = false;
  const pause = h('button', { class: 'btn', type: 'button', onclick: () => ((paused = !paused), (pause.textContent = paused ? 'Resume' : 'Pause')) }, 'Pause');
  const toggles = Object.keys(kinds).map((k) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: true, onchange: (e) => (kinds[k] = e.target.checked) }), ` ${k}`),
  );
  // The text filter hides the events already listed that do not match, and applies to those that follow.
  const text = h('input', { type: 'search', placeholder: 'contains…', size: 22, 'data-testid': 'feed-filter' });
  const matches = (li) => !text.value.trim() || li.textContent.toLowerCase().includes(text.value.trim().toLowerCase());
  text.addEventListener('input', () => {
    for (const li of list.children) li.classList.toggle('hidden', !matches(li));
  });
  feed.onState((s) => {
    status.textContent = s;
    status.className = `pill ${s === 'live' ? 'ok' : 'warn'}`;
  });
  feed.on((topic, e) => {
    const kind = topic.startsWith('binding.') ? 'binding' : topic.startsWith('presence.') ? 'presence' : 'other';
    if (paused || !kinds[kind]) return;
    // binding.<event>.<domain>.<user>: the address is in the summary, so the feed names just the event.
    const name = kind === 'binding' ? topic.split('.', 2).join('.') : topic;
    const li = h('li', { 'data-topic': topic }, h('span', { class: 't' }, clock(e.at)), h('span', {}, name), h('span', { class: 'd' }, summary(topic, e.payload)));
    if (!matches(li)) li.classList.add('hidden');
    list.prepend(li);
    while (list.children.length > KEEP) list.lastChild.remove();
  });
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, 'Live events ', status),
    h('div', { class: 'row center' }, toggles, h('label', { class: 'check' }, 'Filter ', text), pause, h('button', { class: 'btn', type: 'button', onclick: () => fill(list) }, 'Clear')),
    list,
  );
}
