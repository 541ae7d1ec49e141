// The IRC link's SASL and NickServ modes against a real network with services (InspIRCd 3 + Atheme, test/helpers/
// inspircd.ts): an account registered with NickServ by an independent client; SASL PLAIN with its password logs the
// link in (the other side's WHOIS shows the account, 330); a wrong SASL password is ERR_SASLFAIL 904 →
// bad_credentials and no second connection; NickServ IDENTIFY after registration logs it in too.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IncomingIm, LinkCredential, LinkState } from '../../src/bridge/protocol.ts';
import { ircLink } from '../../src/bridge/protocols/irc.ts';
import { inspircdMissing, startInspircdWithServices, type IrcNetwork } from '../helpers/inspircd.ts';
import { ircPeer, type IrcPeer } from '../helpers/irc-peer.ts';

const PASSWORD = 'carol-services-secret';

function events() {
  const states: LinkState[] = [];
  const messages: IncomingIm[] = [];
  return { states, messages, events: { state: (s: LinkState) => void states.push(s), message: (m: IncomingIm) => void messages.push(m) } };
}

/** WHOIS with its account line (RPL_WHOISACCOUNT 330): the account `nick` is logged in as, or null. */
function accountOf(peer: IrcPeer, nick: string): Promise<string | null> {
  return new Promise((resolve) => {
    (peer.client as unknown as { whois(n: string, cb: (e: { account?: string }) => void): void }).whois(nick, (e) => resolve(e.account ?? null));
  });
}

describe('IRC link with services (InspIRCd + Atheme): SASL PLAIN and NickServ', { skip: inspircdMissing(), timeout: 120_000 }, () => {
  let net: IrcNetwork;
  let dave: IrcPeer;
  const cred = (o: Partial<LinkCredential>): LinkCredential => ({ server: `127.0.0.1:${net.port}`, address: '127.0.0.1', username: 'carol', password: PASSWORD, options: {}, ...o });

  before(async () => {
    net = await startInspircdWithServices();
    // carol's account, registered with NickServ the way a user would.
    const reg = await ircPeer(net.port, 'carol', '');
    const registered = new Promise<void>((resolve) => reg.client.on('notice', (e: unknown) => /registered/.test((e as { message: string }).message) && resolve()));
    reg.client.say('NickServ', `REGISTER ${PASSWORD} carol@test.invalid`);
    await registered;
    reg.quit();
    dave = await ircPeer(net.port, 'dave', '');
  });
  after(async () => {
    dave?.quit();
    await net?.stop();
  });

  it('SASL PLAIN logs in: connected, and WHOIS shows the account', async () => {
    const r = events();
    const link = ircLink(cred({ options: { auth: 'sasl' } }), r.events);
    await link.connect();
    try {
      assert.deepEqual(r.states.map((s) => s.state), ['connecting', 'connected']);
      assert.equal(await accountOf(dave, 'carol'), 'carol');
    } finally {
      await link.close('done');
    }
  });

  it('a wrong SASL password → 904 → bad_credentials, and no second attempt', async () => {
    const r = events();
    const link = ircLink(cred({ password: 'not-carols-password', options: { auth: 'sasl' } }), r.events);
    await assert.rejects(link.connect(), /bad_credentials/);
    assert.deepEqual(r.states.map((s) => s.state), ['connecting', 'bad_credentials']);
    assert.match((r.states[1] as { reason: string }).reason, /^SASL fail/);
    await new Promise((res) => setTimeout(res, 3000));
    // A second attempt would start with 'connecting': nothing happens by itself after a refused credential.
    assert.equal(r.states.length, 2, JSON.stringify(r.states));
    assert.equal(await accountOf(dave, 'carol'), null, 'carol is not logged in (nor on the server)');
  });

  it('NickServ IDENTIFY after registration logs in', async () => {
    const r = events();
    const link = ircLink(cred({ options: { auth: 'nickserv' } }), r.events);
    await link.connect();
    try {
      let account: string | null = null;
      for (let i = 0; i < 50 && account === null; i++) {
        account = await accountOf(dave, 'carol');
        if (account === null) await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(account, 'carol');
    } finally {
      await link.close('done');
    }
  });
});
