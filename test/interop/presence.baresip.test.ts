// Presence with baresip 1.0 (its presence module) as real clients on both ends: a watcher subscribing to a contact
// marked ;presence=p2p through the server, and a presentity that registers and publishes (pubint). What the
// watcher's user would see is read from baresip itself (its `contacts` command through ctrl_tcp: Online, Offline,
// Busy); what the server holds from its watchers and publications.
//
// The server grants at most 5 s (--presence-max-expires), so baresip refreshes its SUBSCRIBE (libre: at 90 % of
// the granted Expires) and, with pubint=5, its PUBLISH (SIP-If-Match, no body) several times within the test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, startBaresip, type Baresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('presence with baresip', { skip: missingPeer('baresip') }, () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    const users: Record<string, string> = {};
    for (const t of ['udp', 'tcp']) {
      users[`watcher-${t}@${D}`] = `pw-watcher-${t}`;
      users[`target-${t}@${D}`] = `pw-target-${t}`;
    }
    server = await startTestServer({ users, flags: { 'presence-min-expires': '1', 'presence-max-expires': '5' } });
    token = await adminToken(server);
  });
  after(() => server.close());

  for (const transport of ['udp', 'tcp'] as const) {
    it(`over ${transport.toUpperCase()}: subscribe → NOTIFY (Offline); registration and PUBLISH → Online; PUBLISH closed → Offline; busy set over HTTP → Busy; refreshes; quitting ends both`, { timeout: 120_000 }, async () => {
      const target = `target-${transport}`;
      const aor = `${target}@${D}`;
      const watcherAor = `watcher-${transport}@${D}`;
      let watcher: Baresip | null = null;
      let presentity: Baresip | null = null;
      /** What the watcher's address book says of the target. */
      const seen = async () => ((await watcher!.command('contacts')).replace(/\u001b\[[0-9;]*m/g, '').match(/(\w+) +\S* *<sip:target/) ?? [])[1];
      try {
        watcher = startBaresip({
          port: server.sipPort, user: `watcher-${transport}`, password: `pw-watcher-${transport}`, domain: D, transport,
          modules: ['contact.so', 'presence.so'], contacts: [`"Target" <sip:${aor}>;presence=p2p`], ctrlPort: await freePort(),
        });
        // SUBSCRIBE (challenged, answered with Digest) → 200 → NOTIFY with the current state: nothing registered.
        await until(() => server.presence.watchers(aor).some((w) => w.watcher === watcherAor && w.state === 'active'), `the watcher's subscription\n${watcher.output().slice(-3000)}`);
        const sub = server.presence.watchers(aor).find((w) => w.watcher === watcherAor)!;
        assert.equal(sub.transport, transport.toUpperCase());
        await until(async () => (await seen()) === 'Offline', 'the watcher to show Offline');
        assert.match(watcher.output(), /Subscription-State: active;expires=[1-5]/);
        assert.match(watcher.output(), /<basic>closed<\/basic>/);

        // The target comes up: it registers and publishes open (baresip's PIDF) → the watcher sees Online.
        presentity = startBaresip({
          port: server.sipPort, user: target, password: `pw-${target}`, domain: D, transport: 'udp',
          modules: ['presence.so'], accountParams: ';pubint=5', ctrlPort: await freePort(),
        });
        await until(() => server.presence.state(aor).publications.length > 0, `a publication\n${presentity!.output().slice(-3000)}`);
        await until(async () => (await seen()) === 'Online', 'the watcher to show Online');
        assert.equal(server.presence.state(aor).basic, 'open');

        // The target goes offline (baresip modifies its publication: SIP-If-Match with a closed PIDF).
        await presentity.command('presence_offline');
        await until(() => server.presence.state(aor).basic === 'closed', 'the composed state to be closed');
        await until(async () => (await seen()) === 'Offline', 'the watcher to show Offline again');
        await presentity.command('presence_online');
        await until(async () => (await seen()) === 'Online', 'Online again');

        // Busy, set over HTTP (RPID <rpid:busy/>, which baresip reads).
        const put = await fetch(`${server.httpUrl}/users/${(await server.accounts.findByName(target, D))!.id}/presence`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ basic: 'open', activities: ['busy'] }),
        });
        assert.equal(put.status, 200);
        await until(async () => (await seen()) === 'Busy', 'the watcher to show Busy');

        // Refreshes: the SUBSCRIBE within its dialog, the PUBLISH with SIP-If-Match and no body; both answered 200.
        const firstUpdate = sub.updatedAt;
        await until(() => server.presence.watchers(aor).find((w) => w.watcher === watcherAor)?.updatedAt !== firstUpdate, 'a SUBSCRIBE refresh', 10_000);
        // Within the dialog: to our Contact (the remote target), with our tag in To.
        assert.match(watcher.output(), /SUBSCRIBE sip:127\.0\.0\.1:\d+[^\r\n]* SIP\/2\.0\r?\n(?:[^\r\n]+\r?\n)*?To: <sip:target[^\r\n]*;tag=/, 'the refresh is sent within the dialog');
        await presentity.waitFor(/SIP-If-Match: /, 10_000);
        assert.doesNotMatch(presentity.output(), /412 Conditional Request Failed[\s\S]*412 Conditional Request Failed[\s\S]*412 Conditional Request Failed/, 'refreshes are not refused over and over');

        // The target quits: its publication is removed (Expires: 0) and it unregisters → the watcher sees it go.
        await fetch(`${server.httpUrl}/users/${(await server.accounts.findByName(target, D))!.id}/presence`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
        await presentity.stop();
        presentity = null;
        await until(async () => server.presence.state(aor).publications.length === 0 && (await server.location.lookup(aor)).length === 0, 'the target gone');
        await until(async () => (await seen()) === 'Offline', 'the watcher to show Offline at the end');

        // The watcher quits: its subscription ends (SUBSCRIBE Expires: 0 → 200 → NOTIFY terminated).
        const out = watcher;
        await watcher.stop();
        watcher = null;
        await until(() => !server.presence.watchers(aor).some((w) => w.watcher === watcherAor), 'the subscription to end');
        assert.match(out.output(), /Expires: 0/);
      } finally {
        await presentity?.stop();
        await watcher?.stop();
      }
    });
  }
});
