// 3xx from a device (RFC 3261 §16.5), raw UDP devices registered with Digest. --call-follow-redirects on: bob's
// phone answers 302 to carol and carol's phone rings and takes the call; a redirect back to a target already tried
// (carol → bob) or to another domain without an outbound proxy is not followed, and the 302 reaches the caller. Off
// (the default): the caller gets the 302 with its Contact, and carol's phone never rings.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, reply, waitFor } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw' };

for (const follow of [true, false]) {
  describe(`a device answering 302, --call-follow-redirects ${follow ? 'on' : 'off'}`, () => {
    let server: TestServer;
    let bob: SipTestClient;
    let carol: SipTestClient;
    const open: SipTestClient[] = [];
    const device = async (user: string) => {
      const c = await SipTestClient.open('UDP', server.sipPort);
      open.push(c);
      const r = await register(c, { user, password: users[`${user}@${D}`], domain: D, expires: 300 });
      assert.equal(r.status, 200);
      return c;
    };
    const call = async () => {
      const c = await SipTestClient.open('UDP', server.sipPort);
      open.push(c);
      const k = new Call(c, { from: `<sip:alice@${D}>`, to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'alice', password: users[`alice@${D}`] });
      await k.start();
      return k;
    };
    const redirect = (to: string) => ({ toTag: `r${Math.random().toString(36).slice(2, 8)}`, headers: [['Contact', to]] as Array<[string, string]> });

    before(async () => {
      server = await startTestServer({ users, flags: follow ? { 'call-follow-redirects': 'on' } : {} });
      bob = await device('bob');
      carol = await device('carol');
    });
    after(async () => {
      for (const c of open) c.close();
      await server.close();
    });

    it(follow ? "rings the redirect's target (carol's phone), which takes the call" : 'returns the 302 to the caller; the target is not rung', async () => {
      const k = await call();
      const inv = await waitFor(bob, isRequest('INVITE'));
      bob.send(reply(inv, 302, redirect(`<sip:carol@${D}>`)));
      await waitFor(bob, isRequest('ACK'));
      if (!follow) {
        const r = await k.response((s) => s >= 200);
        assert.equal(r.status, 302);
        assert.equal(r.header('Contact'), `<sip:carol@${D}>`);
        k.c.send(k.ackFor(r));
        assert.ok(await carol.silent(500), "carol's phone does not ring");
        return;
      }
      const second = await waitFor(carol, isRequest('INVITE'));
      assert.equal(second.header('Call-ID'), k.callId);
      assert.equal(second.startLine, `INVITE sip:carol@127.0.0.1:${carol.localPort};transport=udp SIP/2.0`);
      carol.send(reply(second, 200, { toTag: 'carol', headers: [['Contact', `<sip:carol@127.0.0.1:${carol.localPort}>`]] }));
      const ok = await k.response((s) => s >= 200);
      assert.equal(ok.status, 200);
      assert.match(ok.header('To')!, /tag=carol/);
    });

    it('does not follow a redirect back to a target already tried, nor to another domain without an outbound proxy: the 302 goes to the caller', { skip: !follow }, async () => {
      const k = await call();
      const inv = await waitFor(bob, isRequest('INVITE'));
      bob.send(reply(inv, 302, redirect(`<sip:carol@${D}>`)));
      await waitFor(bob, isRequest('ACK'));
      const second = await waitFor(carol, isRequest('INVITE'));
      // carol's phone sends the call back to bob (a loop) and elsewhere (no outbound proxy here: not ours to reach).
      carol.send(reply(second, 302, redirect(`<sip:bob@${D}>, <sip:someone@elsewhere.example>`)));
      await waitFor(carol, isRequest('ACK'));
      const r = await k.response((s) => s >= 200);
      assert.equal(r.status, 302);
      assert.ok(await bob.silent(500), 'bob is not rung again');
      k.c.send(k.ackFor(r));
    });
  });
}
