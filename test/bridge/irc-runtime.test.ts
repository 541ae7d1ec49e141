// IRC through the whole bridge: an app logs in with its password (the vault opens), links an IRC account on a real
// ngircd over HTTP; the in-process connector (--bridge-connectors irc) connects it within 5 s (seen by an
// independent irc-framework client's WHOIS), again within 5 s of the next session start after a logout; a query and a channel message from that client reach the app's
// WebSocket with the linked account and remote address; the app's replies (to the nick, and to "#channel/nick")
// reach the client; the stream reports the link's state and each send's delivery. A wrong server password ends as
// bad_credentials over HTTP, with one connection attempt only.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { ircPeer } from '../helpers/irc-peer.ts';
import { ngircdMissing, startNgircd, type Ngircd } from '../helpers/ngircd.ts';
import { http, openStream, queueEmpty, sessionOf, type Json, type Session, type Stream } from '../messaging/helpers.ts';
import { linkRefused } from './helpers.ts';

const D = 'example.test';
const skip = ngircdMissing();

const frameText = (f: Json) => Buffer.from(f.body as string, 'base64').toString();

describe('IRC through the bridge runtime', { skip, timeout: 120_000 }, () => {
  let irc: Ngircd;
  let server: TestServer;
  let app: Session;
  let stream: Stream;

  before(async () => {
    irc = await startNgircd();
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-password' }, flags: { 'bridge-connectors': ['irc'], 'bridge-allow-servers': ['127.0.0.1'] } });
    const s = await http(server.httpUrl, 'POST', '/v1/sessions', { body: { username: `alice@${D}`, password: 'alice-password' } });
    assert.equal(s.status, 200, JSON.stringify(s.json));
    assert.equal((s.json.vault as Json).state, 'created');
    app = sessionOf(s.json);
    stream = await openStream(server.httpUrl, app);
    await stream.waitFor(queueEmpty, 'the empty backlog');
  });
  after(async () => {
    await stream?.close();
    await server?.close();
    await irc?.stop();
  });

  it('links over HTTP, is on ngircd within 5 s, and messages flow both ways (query and channel)', async (t) => {
    const bob = await ircPeer(irc.port, 'bob', irc.password);
    try {
      const started = Date.now();
      const linked = await http(server.httpUrl, 'POST', '/v1/linked-accounts', {
        auth: app.auth,
        body: { type: 'irc', server: `127.0.0.1:${irc.port}`, username: 'alicebridge', password: irc.password, options: { channels: '#switchboard' } },
      });
      assert.equal(linked.status, 201, JSON.stringify(linked.json));
      const id = linked.json.id as string;
      assert.equal(JSON.stringify(linked.json).includes(irc.password), false, 'no password in the reply');

      await stream.waitFor((f) => f.some((x) => x.type === 'link-state' && x.linkedAccount === id && x.state === 'connected'), 'link-state connected');
      const connectedMs = Date.now() - started;
      assert.ok(await bob.online('alicebridge'), 'WHOIS alicebridge on ngircd');
      t.diagnostic(`linked → connected on ngircd: ${connectedMs} ms`);
      assert.ok(connectedMs < 5000, `connected after ${connectedMs} ms`);
      const list = await http(server.httpUrl, 'GET', '/v1/linked-accounts', { auth: app.auth });
      assert.equal(((list.json.linkedAccounts as Json[])[0]).state, 'connected');

      // A query from bob reaches the app's socket, naming the linked account and bob.
      bob.client.say('alicebridge', 'hello over IRC ✓');
      await stream.waitFor((f) => f.some((x) => x.type === 'message' && frameText(x) === 'hello over IRC ✓'), 'the query on the stream');
      const q = stream.frames.find((x) => x.type === 'message' && frameText(x) === 'hello over IRC ✓')!;
      assert.equal(q.linkedAccount, id);
      assert.equal(q.remote, 'bob');
      stream.ack(q.id as string);

      // The app answers through the linked account: bob gets it from alicebridge.
      const sent = await http(server.httpUrl, 'POST', '/v1/messages', { auth: app.auth, body: { linkedAccount: id, to: 'bob', body: Buffer.from('hi bob, from the app').toString('base64') } });
      assert.equal(sent.status, 202, JSON.stringify(sent.json));
      const got = await bob.next((e) => e.message === 'hi bob, from the app');
      assert.equal(got.nick, 'alicebridge');
      await stream.waitFor((f) => f.some((x) => x.type === 'delivery' && x.id === sent.json.id && x.status === 'sent'), 'the delivery frame');

      // The channel: bob joins the channel the link joined on connect and speaks; the app replies to "#channel/bob".
      const joined = new Promise<void>((r) => bob.client.on('join', (e: unknown) => (e as { nick: string }).nick === 'bob' && r()));
      bob.client.join('#switchboard');
      await joined;
      bob.client.say('#switchboard', 'channel news');
      await stream.waitFor((f) => f.some((x) => x.type === 'message' && frameText(x) === 'channel news'), 'the channel message');
      const c = stream.frames.find((x) => x.type === 'message' && frameText(x) === 'channel news')!;
      assert.equal(c.remote, '#switchboard/bob');
      stream.ack(c.id as string);
      const reply = await http(server.httpUrl, 'POST', '/v1/messages', { auth: app.auth, body: { linkedAccount: id, to: c.remote, body: Buffer.from('noted').toString('base64') } });
      assert.equal(reply.status, 202, JSON.stringify(reply.json));
      const inChannel = await bob.next((e) => e.target === '#switchboard' && e.nick === 'alicebridge');
      assert.equal(inChannel.message, 'bob: noted');

      // Logout: without "stay connected" the link goes with the session; the next password session brings it back.
      await stream.close();
      assert.equal((await http(server.httpUrl, 'DELETE', '/v1/sessions/current', { auth: app.auth })).status, 204);
      for (let i = 0; (await bob.online('alicebridge')) && i < 100; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(await bob.online('alicebridge'), false, 'gone from ngircd after logout');
      const login = Date.now();
      const again = await http(server.httpUrl, 'POST', '/v1/sessions', { body: { username: `alice@${D}`, password: 'alice-password' } });
      assert.equal((again.json.vault as Json).state, 'open');
      app = sessionOf(again.json);
      stream = await openStream(server.httpUrl, app);
      // The runtime's state over HTTP (a WHOIS loop would be slowed by ngircd's per-command penalty), then WHOIS once.
      const stateOf = async () => ((await http(server.httpUrl, 'GET', '/v1/linked-accounts', { auth: app.auth })).json.linkedAccounts as Json[])[0].state;
      while ((await stateOf()) !== 'connected') {
        assert.ok(Date.now() - login < 5000, 'connected within 5 s of the session start');
        await new Promise((r) => setTimeout(r, 50));
      }
      t.diagnostic(`session start → connected: ${Date.now() - login} ms`);
      assert.ok(await bob.online('alicebridge'), 'WHOIS alicebridge on ngircd after the new session');

      // DELETE disconnects: alicebridge leaves the server.
      const del = await http(server.httpUrl, 'DELETE', `/v1/linked-accounts/${id}`, { auth: app.auth });
      assert.equal(del.status, 204);
      for (let i = 0; (await bob.online('alicebridge')) && i < 50; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(await bob.online('alicebridge'), false, 'gone from ngircd after DELETE');
    } finally {
      bob.client.quit();
    }
  });

  it('a wrong server password → bad_credentials over HTTP, after one connection attempt', async () => {
    const accepted = () => irc.log().split('\n').filter((l) => /Accepted connection/.test(l)).length;
    const before = accepted();
    const rec = await linkRefused(server.httpUrl, app, stream, { type: 'irc', server: `127.0.0.1:${irc.port}`, username: 'mallory', password: 'not-the-password' });
    assert.equal(rec.state, 'bad_credentials');
    // The runtime's first backoff is seconds: wait past it and count the server's connections.
    await new Promise((r) => setTimeout(r, 6000));
    assert.equal(accepted() - before, 1, 'one connection attempt, no retry');
  });
});
