// XMPP (RFC 6120/6121) with @xmpp/client, the protocol's maintained Node library: one client per linked account,
// connected over TCP (STARTTLS when the server offers it; `options.tls: "require"` refuses a server that does not),
// SASL SCRAM-SHA-1 or PLAIN, a resource of our own, initial presence (so the account shows online), chat and normal
// messages with a body in, chat messages out. The library's own reconnect is off: the connector runtime owns
// backoff and must know a refused password (SASL not-authorized → bad_credentials, never retried) from a network
// failure (unreachable, retried).

import { isIP } from 'node:net';
import { client, jid as parseJid, xml, type Element, type XmppClient } from '@xmpp/client';
import { MAX_IM_BODY, type IncomingIm, type LinkCredential, type LinkEvents, type ProtocolFactory, type ProtocolLink } from '../protocol.ts';

/** SASL conditions that mean "this credential is refused" (RFC 6120 §6.5): do not retry. */
const REFUSED = new Set(['not-authorized', 'account-disabled', 'credentials-expired', 'invalid-mechanism', 'encryption-required']);
const CONNECT_TIMEOUT_MS = 10_000;

interface Target {
  service: string;
  domain: string;
  username: string;
}

/** `server` is the domain, or host:port; `username` the local part or a full JID (its domain wins then). */
export function xmppTarget(c: LinkCredential): Target {
  const at = c.username.indexOf('@');
  const local = at >= 0 ? c.username.slice(0, at) : c.username;
  const [host, port] = c.server.includes(':') ? c.server.split(':') : [c.server, '5222'];
  const domain = at >= 0 ? c.username.slice(at + 1).split('/')[0] : typeof c.options.domain === 'string' ? c.options.domain : host;
  if (!/^[^\s@/:"&'<>]{1,255}$/.test(local) || !/^[A-Za-z0-9.-]{1,255}$/.test(host) || !/^\d{1,5}$/.test(port) || !/^[A-Za-z0-9.-]{1,255}$/.test(domain)) {
    throw new Error('not an XMPP account (user@domain, server host[:port])');
  }
  // The address the connector's server policy checked, not the name: resolving it again here could give another.
  const address = isIP(c.address) === 6 ? `[${c.address}]` : isIP(c.address) === 4 ? c.address : null;
  if (address === null) throw new Error('no checked address to connect to');
  return { service: `xmpp://${address}:${port}`, domain, username: local };
}

export const xmppLink: ProtocolFactory = (credential: LinkCredential, events: LinkEvents): ProtocolLink => {
  let xmpp: XmppClient | null = null;
  let closing = false;
  let online = false;
  let reported: string | null = null;
  const report = (s: Parameters<LinkEvents['state']>[0]) => {
    if (reported === s.state) return;
    reported = s.state;
    events.state(s);
  };

  const onStanza = (stanza: Element) => {
    if (!stanza.is('message')) return;
    const type = stanza.attrs.type ?? 'normal';
    if (type !== 'chat' && type !== 'normal') return;
    const body = stanza.getChildText('body');
    const from = stanza.attrs.from;
    if (body === null || !from || Buffer.byteLength(body) > MAX_IM_BODY) return;
    const m: IncomingIm = { from: parseJid(from).bare().toString(), body };
    if (stanza.attrs.id) m.remoteId = stanza.attrs.id.slice(0, 64);
    events.message(m);
  };

  return {
    async connect() {
      let target: Target;
      try {
        target = xmppTarget(credential);
      } catch (err) {
        report({ state: 'bad_credentials', reason: (err as Error).message });
        throw err;
      }
      report({ state: 'connecting' });
      const c = client({ service: target.service, domain: target.domain, username: target.username, password: credential.password, resource: `switchboard-${Math.random().toString(36).slice(2, 8)}`, timeout: CONNECT_TIMEOUT_MS });
      xmpp = c;
      c.reconnect.stop();
      // @xmpp/connection takes the host from new URL(service), which keeps an IPv6 literal's brackets (it unwraps
      // only [::1]): net.connect would look "[2001:db8::1]" up as a name. Unwrap them for every literal.
      const socketParameters = c.socketParameters.bind(c);
      c.socketParameters = (service: string) => {
        const p = socketParameters(service) as { host?: string } | undefined;
        if (p?.host?.startsWith('[')) p.host = p.host.slice(1, -1);
        return p;
      };
      c.on('error', () => undefined); // reported through start()'s rejection or 'disconnect' below
      c.on('stanza', onStanza);
      c.on('disconnect', () => {
        if (closing || !online) return;
        online = false;
        report({ state: 'unreachable', reason: 'connection lost' });
      });
      try {
        await c.start();
        if (credential.options.tls === 'require' && !(c as unknown as { socket?: { encrypted?: boolean } }).socket?.encrypted) {
          throw Object.assign(new Error('the server did not offer TLS'), { condition: 'encryption-required' });
        }
        await c.send(xml('presence'));
        online = true;
        report({ state: 'connected' });
      } catch (err) {
        const condition = (err as { condition?: string }).condition;
        const refused = (err as Error).name === 'SASLError' || (condition !== undefined && REFUSED.has(condition));
        closing = true;
        await c.stop().catch(() => undefined);
        xmpp = null;
        closing = false;
        report(refused ? { state: 'bad_credentials', reason: condition ?? 'authentication failed' } : { state: 'unreachable', reason: (err as Error).message?.slice(0, 200) || 'cannot connect' });
        throw err;
      }
    },

    async send(to: string, body: string) {
      if (!xmpp || !online) throw new Error('not connected');
      if (Buffer.byteLength(body) > MAX_IM_BODY) throw new Error('body too large');
      let address: string;
      try {
        address = parseJid(to).toString();
      } catch {
        throw new Error('not a JID');
      }
      await xmpp.send(xml('message', { type: 'chat', to: address, id: `sb${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}` }, xml('body', {}, body)));
    },

    async close(reason: string) {
      if (closing) return;
      closing = true;
      const c = xmpp;
      xmpp = null;
      online = false;
      if (c) {
        await c.send(xml('presence', { type: 'unavailable' })).catch(() => undefined);
        await c.stop().catch(() => undefined);
      }
      report({ state: 'disconnected', reason });
    },
  };
};
