// Conversations on the softphone: one per remote address (a SIP address of record, or a bridged IM address, keyed
// "im:<linked account>/<remote>" as the server names its sender), each a thread of messages in and out with their
// delivery state. The composer's "via" picks SIP or a linked account; opening a conversation sets both fields. Everything a peer sent goes in as text (dom.js h()).
// The page keeps them in memory only: a reload starts empty, and what was queued is read again from the inbox.

import { $, fill, h } from '/ui/shared/dom.js';
import { clock } from '/ui/shared/format.js';

const MAX_PER_THREAD = 500;
const MAX_CONVERSATIONS = 200;
const MAX_SEEN = 2000;

export class Conversations {
  /**
   * @param {{ send: (peer: string, text: string) => Promise<string | { state: string, id: string }>, label?: (peer: string) => string }} o
   *   send resolves with the state to show ('delivered', 'stored', 'queued'), with the server's message id when a
   *   later frame may update it (update()), or rejects with why it failed; label names a conversation (default: its key)
   */
  constructor(o) {
    this.o = o;
    this.threads = new Map(); // peer → { li, items: [], unread }
    this.current = null;
    this.seen = new Set(); // inbox ids of incoming messages shown (MAX_SEEN newest)
    this.sent = new Map(); // server message id → the handle of its item, while a receipt or delivery may still come
    // A frame can overtake the send's own answer (a local IRC server: the delivery frame came in before the 202 was
    // read, so "queued" stayed): states for ids not known yet wait here until submit() learns the id.
    this.early = new Map();
    $('#message-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit(e.target);
    });
  }

  /** A peer's address as the conversation key: "sip:" dropped, so a SIP MESSAGE and an inbox message meet. */
  static key(address) {
    return String(address).trim().replace(/^sips?:/i, '');
  }

  /** "im:<linked account>/<remote>" → its parts, or null for a SIP address. */
  static bridged(peer) {
    const m = /^im:([^/]+)\/(.+)$/.exec(peer);
    return m ? { linkedAccount: m[1], remote: m[2] } : null;
  }

  label(peer) {
    return this.o.label?.(peer) ?? peer;
  }

  /** Linked accounts for the composer's "via" (value: id, text: what to show). */
  setVias(vias) {
    const select = $('#message-form').elements.via;
    const chosen = select.value;
    fill(select, h('option', { value: '' }, 'SIP / app'), vias.map((v) => h('option', { value: v.id }, v.text)));
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  thread(peer) {
    let t = this.threads.get(peer);
    if (!t) {
      if (this.threads.size >= MAX_CONVERSATIONS) {
        const [oldest] = this.threads.keys();
        this.threads.get(oldest).li.remove();
        this.threads.delete(oldest);
      }
      const li = h('li', { 'data-testid': 'conversation', 'data-peer': peer, tabindex: 0, onclick: () => this.open(peer) });
      t = { li, items: [], unread: 0 };
      this.threads.set(peer, t);
      $('#conversations').prepend(li);
      $('#conversations-empty')?.classList.add('hidden');
    }
    return t;
  }

  /** Adds a message to its conversation; returns a handle whose state can be updated (sending → delivered). */
  add(address, m) {
    // One message can arrive twice: as a SIP MESSAGE to this page's registration and from the inbox (an app's message
    // is sent to the account's SIP devices at once and stays queued until a 2xx). Its inbox id tells them apart.
    if (m.id) {
      if (this.seen.has(m.id)) return { set: () => {} };
      this.seen.add(m.id);
      if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.values().next().value);
    }
    const peer = Conversations.key(address);
    const t = this.thread(peer);
    const item = { dir: m.dir, body: m.body, at: m.at ?? Date.now(), via: m.via, state: m.state ?? '' };
    t.items.push(item);
    if (t.items.length > MAX_PER_THREAD) t.items.shift();
    if (m.dir === 'in' && this.current !== peer) t.unread += 1;
    $('#conversations').prepend(t.li); // the latest conversation first
    this.renderItem(peer);
    if (this.current === peer) this.renderThread();
    else if (this.current === null && m.dir === 'in') this.open(peer);
    return {
      set: (state) => {
        item.state = state;
        if (this.current === peer) this.renderThread();
      },
    };
  }

  renderItem(peer) {
    const t = this.threads.get(peer);
    const last = t.items.at(-1);
    fill(
      t.li,
      h('div', { class: 'status-line' }, h('span', { class: 'name' }, this.label(peer)), t.unread ? h('span', { class: 'pill info', 'data-testid': 'unread' }, String(t.unread)) : null),
      h('div', { class: 'detail' }, last ? `${last.dir === 'in' ? '' : 'you: '}${last.body.slice(0, 80)}` : ''),
    );
    t.li.classList.toggle('selected', this.current === peer);
  }

  open(peer) {
    const before = this.current;
    this.current = peer;
    const t = this.thread(peer);
    t.unread = 0;
    if (before && this.threads.has(before)) this.renderItem(before);
    this.renderItem(peer);
    const f = $('#message-form').elements;
    const b = Conversations.bridged(peer);
    if (b && ![...f.via.options].some((o) => o.value === b.linkedAccount)) f.via.append(h('option', { value: b.linkedAccount }, b.linkedAccount));
    f.via.value = b ? b.linkedAccount : '';
    f.to.value = b ? b.remote : peer;
    this.renderThread();
  }

  renderThread() {
    const t = this.threads.get(this.current);
    fill($('#thread-title'), this.current ? this.label(this.current) : 'No conversation');
    fill(
      $('#thread'),
      (t?.items ?? []).map((m) =>
        h(
          'li',
          { class: `msg ${m.dir}`, 'data-testid': 'message', 'data-dir': m.dir },
          h('div', { class: 'body', 'data-testid': 'message-body' }, m.body),
          h('div', { class: 'meta' }, clock(m.at), m.via ? ` · ${m.via}` : '', m.state ? h('span', { 'data-testid': 'message-state' }, ` · ${m.state}`) : null),
        ),
      ),
    );
    const list = $('#thread');
    list.scrollTop = list.scrollHeight;
  }

  async submit(form) {
    const via = form.elements.via.value;
    const address = form.elements.to.value.trim();
    const to = via ? `im:${via}/${address}` : Conversations.key(address);
    const text = form.elements.text.value;
    $('#message-error').textContent = '';
    if (!address || !text.trim()) return;
    form.elements.text.value = '';
    if (this.current !== to) this.open(to);
    const handle = this.add(to, { dir: 'out', body: text, state: 'sending…' });
    try {
      const r = await this.o.send(to, text);
      if (typeof r === 'string') return handle.set(r);
      const early = this.early.get(r.id);
      this.early.delete(r.id);
      handle.set(early ?? r.state);
      this.sent.set(r.id, handle);
      if (this.sent.size > 1000) this.sent.delete(this.sent.keys().next().value);
    } catch (err) {
      handle.set(`failed: ${err.message}`);
      $('#message-error').textContent = `not sent: ${err.message}`;
    }
  }

  /** A receipt or delivery frame for a message sent from this page: its state changes ('delivered', 'failed: …'). */
  update(id, state) {
    const handle = this.sent.get(id);
    if (handle) return handle.set(state);
    this.early.set(id, state);
    if (this.early.size > 100) this.early.delete(this.early.keys().next().value);
  }
}
