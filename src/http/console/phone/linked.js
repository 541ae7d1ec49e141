// Linked accounts on the softphone (issue 19): add an XMPP, IRC or SIP account (its password goes to the server once,
// over this page's HTTPS, and is kept there only encrypted under the account's vault), list them with their live
// state, and delete them. State changes (connecting → connected, bad credentials, unreachable) come as link-state
// frames on the inbox stream (applyState); the list is read again now and then (every REFRESH_MS without it).

import { $, fill, h } from '/ui/shared/dom.js';

/** The list again every REFRESH_MS, or every LIVE_REFRESH_MS while the inbox stream brings link-state frames. */
const REFRESH_MS = 2000;
const LIVE_REFRESH_MS = 15_000;

const STATE_KIND = { connected: 'ok', connecting: 'warn', bad_credentials: 'bad', unreachable: 'bad', disconnected: 'warn' };

export class LinkedAccounts {
  /**
   * @param {{ call: (method: string, path: string, body?: object) => Promise<any>, onChange?: (list: object[]) => void, live?: () => boolean }} o
   *   call: the authenticated API call the linked-account routes take
   */
  constructor(o) {
    this.o = o;
    this.list = [];
    this.timer = null;
    this.stopped = false;
    $('#link-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.add(e.target);
    });
    $('#link-form').elements.type.addEventListener('change', () => this.showOptions());
    this.showOptions();
  }

  showOptions() {
    const type = $('#link-form').elements.type.value;
    $('#link-channels').classList.toggle('hidden', type !== 'irc');
    $('#link-sip-domain').classList.toggle('hidden', type !== 'sip');
    $('#link-sip-transport').classList.toggle('hidden', type !== 'sip');
  }

  start() {
    this.refresh();
  }

  refresh() {
    if (this.stopped) return;
    this.load().then(
      () => ($('#link-error').textContent = ''),
      (err) => {
        if (err.status === 404) {
          // A server without the IM bridge: nothing to manage here.
          this.stopped = true;
          $('#link-form').classList.add('hidden');
          $('#linked-empty').textContent = 'This server has no IM bridge.';
          return;
        }
        $('#link-error').textContent = `linked accounts: ${err.message}`;
      },
    ).finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => this.refresh(), this.o.live?.() ? LIVE_REFRESH_MS : REFRESH_MS);
    });
  }

  async load() {
    const r = await this.o.call('GET', '/v1/linked-accounts');
    this.list = Array.isArray(r) ? r : r.linkedAccounts;
    this.render();
    this.o.onChange?.(this.list);
  }

  /** The linked account a bridged address belongs to, by its type and id as the server names them. */
  byId(id) {
    return this.list.find((a) => a.id === id) ?? null;
  }

  /** A link-state frame: that account's state now. */
  applyState(id, state, reason) {
    const a = this.byId(id);
    if (!a) return void this.load().catch(() => {}); // linked from elsewhere: read the list
    a.state = state;
    a.reason = reason;
    this.render();
  }

  render() {
    fill(
      $('#linked'),
      this.list.map((a) =>
        h(
          'li',
          { 'data-testid': 'linked-account', 'data-id': a.id, 'data-type': a.type },
          h(
            'div',
            {},
            h('div', { class: 'status-line' }, h('span', { class: 'name' }, `${a.type.toUpperCase()} ${a.username} @ ${a.server}`)),
            h(
              'div',
              { class: 'detail' },
              h('span', { class: `pill ${STATE_KIND[a.state] ?? ''}`, 'data-testid': 'link-state' }, a.state.replace('_', ' ')),
              a.reason ? h('span', { 'data-testid': 'link-reason' }, ` ${a.reason}`) : null,
            ),
          ),
          h('button', { class: 'btn danger', type: 'button', 'data-testid': 'link-delete', onclick: () => this.remove(a.id) }, 'Delete'),
        ),
      ),
    );
    $('#linked-empty').classList.toggle('hidden', this.list.length > 0);
  }

  async add(form) {
    const f = form.elements;
    $('#link-error').textContent = '';
    const options = {};
    if (f.type.value === 'irc' && f.channels.value.trim()) options.channels = f.channels.value.trim();
    if (f.type.value === 'sip') {
      if (f.domain.value.trim()) options.domain = f.domain.value.trim();
      options.transport = f.transport.value;
    }
    try {
      await this.o.call('POST', '/v1/linked-accounts', {
        type: f.type.value,
        server: f.server.value.trim(),
        username: f.username.value.trim(),
        password: f.password.value,
        options,
        stayConnected: f.stay.checked,
      });
      f.password.value = '';
      await this.load();
    } catch (err) {
      $('#link-error').textContent = `not linked: ${err.message}`;
    }
  }

  async remove(id) {
    try {
      await this.o.call('DELETE', `/v1/linked-accounts/${encodeURIComponent(id)}`);
      await this.load();
    } catch (err) {
      $('#link-error').textContent = `not deleted: ${err.message}`;
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
