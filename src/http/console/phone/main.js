// The web softphone: sign in over HTTP, register over WSS with the access token, watch buddies' presence, set
// our own status with PUBLISH, call and answer (audio over WebRTC, signalling through the proxy), and hold
// conversations: SIP MESSAGE over the same WebSocket, and the app inbox (POST /v1/messages, read and acked over HTTP),
// bridged IM included; and manage linked IM accounts (/v1/linked-accounts).

import { bootPage, Session } from '/ui/shared/auth.js';
import { $, fill, h } from '/ui/shared/dom.js';
import { clock } from '/ui/shared/format.js';
import { Conversations } from './conversations.js';
import { AppInbox } from './inbox.js';
import { LinkedAccounts } from './linked.js';
import { describe, dotClass } from './pidf.js';
import { Phone } from './sip.js';

const session = new Session('phone');
const STATUSES = {
  available: { basic: 'open' },
  busy: { basic: 'open', activity: 'busy' },
  away: { basic: 'open', activity: 'away' },
  'on-the-phone': { basic: 'open', activity: 'on-the-phone' },
  meeting: { basic: 'open', activity: 'meeting' },
  offline: { basic: 'closed' },
};
const ADDRESS = /^[^@\s<>"]+@[A-Za-z0-9.-]+$/;

// The password of a sign-in on this page, kept from the form's submit (this listener runs before bootPage's) until
// the first app session is started with it (it opens the bridge's vault); null after that and after a reload.
let signInCredentials = null;
$('#login-form').addEventListener('submit', (e) => {
  const f = new FormData(e.target);
  signInCredentials = { username: String(f.get('username')), password: String(f.get('password')) };
});

function showLogin(message = '') {
  $('#app').classList.add('hidden');
  $('#login').classList.remove('hidden');
  $('#login-error').textContent = message;
}

function pill(el, text, kind) {
  el.textContent = text;
  el.className = `pill ${kind}`;
}

async function start(config) {
  const { username, realm } = session.claims;
  const aor = `${username}@${realm}`;
  if (!config.wssPort) return showLogin('This server has no SIP WSS listener (--sip-transports must include WSS).');
  $('#login').classList.add('hidden');
  $('#app').classList.remove('hidden');
  fill($('#who'), 'signed in as ', h('b', {}, aor), ' ');
  fill($('#aor'), `sip:${aor}`);

  const storeKey = `switchboard.phone.buddies.${aor}`;
  const buddies = new Map(); // aor → { li, state }
  const saved = () => JSON.parse(localStorage.getItem(storeKey) ?? '[]');
  const save = () => localStorage.setItem(storeKey, JSON.stringify([...buddies.keys()]));

  const log = (text) => {
    const list = $('#log');
    list.prepend(h('li', {}, h('span', { class: 't' }, clock(Date.now())), text));
    while (list.children.length > 100) list.lastChild.remove();
  };

  const phone = new Phone({
    aor,
    server: `wss://${location.hostname}:${config.wssPort}`,
    token: () => session.token,
    onRegistration: (s) => {
      registered = s === 'registered';
      pill($('#reg-state'), s === 'registered' ? 'registered (WSS)' : s, s === 'registered' ? 'ok' : s.startsWith('refused') || s.startsWith('failed') ? 'bad' : 'warn');
    },
    onPublish: (s) => pill($('#pub-state'), s, s === 'published' ? 'ok' : 'warn'),
    onPresence: (buddy, state, phase) => {
      const b = buddies.get(buddy);
      if (!b) return;
      const before = b.text;
      b.text = phase === 'pending' ? 'pending authorisation' : phase === 'active' || state ? describe(state) : phase;
      b.state = state;
      renderBuddy(buddy);
      if (b.text !== before) log(`${buddy} is ${b.text}${state?.notes?.length ? ` (${state.notes.join(' · ')})` : ''}`);
    },
    onCall: (c) => showCall(c),
    onMessage: (m) => conversations.add(m.from, { dir: 'in', body: m.body, via: 'SIP', id: m.inboxId }),
  });

  // A SIP address goes as a SIP MESSAGE while registered (a phone of the peer takes it, or the server stores it:
  // 202), else through the app inbox API.
  let registered = false;
  const credentials = signInCredentials;
  signInCredentials = null;
  const inbox = new AppInbox(session, {
    onMessage: (m) => conversations.add(m.from, { dir: 'in', body: m.body, via: m.linkedAccount ? 'IM' : 'inbox', at: m.timestamp, id: m.id }),
    onState: (s) => pill($('#inbox-state'), `inbox: ${s}`, s === 'live' || s === 'connected' ? 'ok' : 'warn'),
    onVault: (v) => showVault(v),
    onFrame: (f) => {
      if (f.type === 'receipt') conversations.update(f.id, f.status);
      else if (f.type === 'delivery') conversations.update(f.id, f.status === 'failed' ? `failed: ${f.reason ?? ''}` : f.status);
      else if (f.type === 'link-state') linked.applyState(f.linkedAccount, f.state, f.reason);
    },
  }, credentials);
  const linked = new LinkedAccounts({
    call: (method, path, body) => inbox.call(method, path, body),
    live: () => inbox.live,
    onChange: (list) => {
      conversations.setVias(list.map((a) => ({ id: a.id, text: `${a.type.toUpperCase()} ${a.username}` })));
      for (const peer of conversations.threads.keys()) if (peer.startsWith('im:')) conversations.renderItem(peer);
    },
  });
  const conversations = new Conversations({
    send: async (peer, text) => {
      const b = Conversations.bridged(peer);
      if (b) {
        const r = await inbox.send(b.remote, text, { linkedAccount: b.linkedAccount });
        return { state: r.status, id: r.id };
      }
      if (!ADDRESS.test(peer)) throw new Error(`${peer} is not an address (user@domain)`);
      if (registered) return phone.message(peer.toLowerCase(), text);
      const r = await inbox.send(peer.toLowerCase(), text);
      return r.delivered ? 'delivered' : { state: 'stored', id: r.id };
    },
    label: (peer) => {
      const b = Conversations.bridged(peer);
      const a = b && linked.byId(b.linkedAccount);
      return b ? `${b.remote} (${a ? `${a.type.toUpperCase()} ${a.username}` : 'linked account'})` : peer;
    },
  });

  /** What the session's vault said: a new one's recovery key is shown this once. */
  function showVault(v) {
    const box = $('#vault-notice');
    if (v.state === 'open') return box.classList.add('hidden');
    box.classList.remove('hidden');
    const said = {
      created: 'A vault for your linked accounts\u2019 passwords was created.',
      locked: 'Linked accounts are locked: sign in with your password to use them.',
    };
    fill(
      box,
      v.message ?? said[v.state] ?? `vault: ${v.state}`,
      v.recoveryKey ? [h('br', {}), 'Recovery key (shown once, keep it safe): ', h('code', { 'data-testid': 'recovery-key' }, v.recoveryKey)] : null,
    );
  }

  let lastCallState = 'idle';
  function showCall(c) {
    const live = c.state === 'calling' || c.state === 'ringing' || c.state === 'in call';
    pill($('#call-state'), c.state, c.state === 'in call' ? 'ok' : c.state.startsWith('refused') ? 'bad' : 'warn');
    $('#call-peer').textContent = c.peer && live ? `${c.direction === 'incoming' ? 'from' : 'to'} ${c.peer}` : '';
    $('#call-answer').classList.toggle('hidden', !(c.state === 'ringing' && c.direction === 'incoming'));
    $('#call-hangup').classList.toggle('hidden', !live);
    $('#media-state').classList.toggle('hidden', !c.media);
    if (c.media) pill($('#media-state'), `media ${c.media}`, c.media === 'connected' ? 'ok' : c.media === 'failed' ? 'bad' : 'warn');
    const audio = $('#remote-audio');
    if (audio.srcObject !== c.stream) audio.srcObject = c.stream;
    if (c.state !== lastCallState && c.peer) log(`call ${c.direction === 'incoming' ? 'from' : 'to'} ${c.peer}: ${c.state}`);
    lastCallState = c.state;
  }

  $('#call-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = e.target.elements.target;
    const value = input.value.trim().replace(/^sips?:/i, '');
    $('#call-error').textContent = '';
    if (!ADDRESS.test(value)) {
      $('#call-error').textContent = `${value} is not a SIP address (user@domain)`;
      return;
    }
    try {
      await phone.dial(value.toLowerCase());
    } catch (err) {
      $('#call-error').textContent = `call failed: ${err.message}`;
    }
  });
  $('#call-answer').addEventListener('click', () => phone.answer().catch((err) => ($('#call-error').textContent = `answer failed: ${err.message}`)));
  $('#call-hangup').addEventListener('click', () => phone.hangUp().catch((err) => ($('#call-error').textContent = `hang-up failed: ${err.message}`)));

  function renderBuddy(buddy) {
    const b = buddies.get(buddy);
    fill(
      b.li,
      h(
        'div',
        {},
        h('div', { class: 'status-line' }, h('span', { class: `dot ${dotClass(b.state)}` }), h('span', { class: 'name' }, buddy)),
        h('div', { class: 'detail' }, h('span', { 'data-testid': 'buddy-status' }, b.text), b.state?.notes?.length ? ` — ${b.state.notes.join(' · ')}` : ''),
      ),
      h('button', { class: 'btn', type: 'button', title: `Remove ${buddy}`, onclick: () => remove(buddy) }, 'Remove'),
    );
  }

  function add(buddy) {
    if (buddies.has(buddy)) return;
    const li = h('li', { 'data-testid': 'buddy', 'data-aor': buddy });
    buddies.set(buddy, { li, state: null, text: 'subscribing…' });
    $('#buddies').append(li);
    renderBuddy(buddy);
    save();
    phone.watch(buddy);
  }

  function remove(buddy) {
    const b = buddies.get(buddy);
    if (!b) return;
    phone.unwatch(buddy);
    b.li.remove();
    buddies.delete(buddy);
    save();
  }

  $('#buddy-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = e.target.elements.buddy;
    const value = input.value.trim().replace(/^sips?:/i, '');
    if (!ADDRESS.test(value)) {
      $('#buddy-error').textContent = `${value} is not a SIP address (user@domain)`;
      return;
    }
    $('#buddy-error').textContent = '';
    add(value.toLowerCase());
    input.value = '';
  });

  $('#status-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const status = STATUSES[String(f.get('status'))];
    pill($('#pub-state'), 'publishing…', 'warn');
    try {
      await phone.setStatus({ ...status, note: String(f.get('note') ?? '').trim() });
      log(`you set ${String(f.get('status'))}`);
    } catch (err) {
      pill($('#pub-state'), `failed: ${err.message}`, 'bad');
    }
  });

  $('#logout').addEventListener('click', async () => {
    await phone.stop();
    linked.stop();
    await inbox.stop();
    await session.logout();
    location.reload();
  });
  window.addEventListener('pagehide', () => {
    void phone.stop();
    linked.stop();
    void inbox.stop();
  });
  session.onChange((claims) => {
    if (claims === null) Promise.all([phone.stop(), linked.stop(), inbox.stop()]).then(() => showLogin('Your session ended; sign in again.'));
  });

  for (const b of saved()) add(b);
  inbox.start().then(() => linked.start(), (err) => pill($('#inbox-state'), `inbox: ${err.message}`, 'bad'));
  await phone.start();
}

bootPage(session, start, showLogin);
