// The IRC link against a real ngircd (its own config, a kernel-chosen port, a server password), with an independent
// irc-framework client on the other side: queries and channel messages both ways, long bodies split, CR/LF in a
// body never becoming a command, a wrong password → bad_credentials without a reconnect, the server killed →
// unreachable, TLS with and without certificate verification.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { LinkCredential } from '../../src/bridge/protocol.ts';
import { ircLink, parseIrcCredential } from '../../src/bridge/protocols/irc.ts';
import { ircPeer as peer } from '../helpers/irc-peer.ts';
import { ngircdMissing, startNgircd, type Ngircd } from '../helpers/ngircd.ts';
import { linkRecorder } from './helpers.ts';

const skip = ngircdMissing();

function cred(server: Ngircd, over: Partial<LinkCredential> = {}): LinkCredential {
  return { server: `127.0.0.1:${server.port}`, address: '127.0.0.1', username: 'alice', password: server.password, options: {}, ...over };
}

describe('IRC link on ngircd', { skip, timeout: 120_000 }, () => {
  let server: Ngircd;
  before(async () => {
    server = await startNgircd({ tls: true });
  });
  after(async () => {
    await server?.stop();
  });

  it('query both ways, channel messages both ways, and "#channel/nick" replies', async () => {
    const rec = linkRecorder();
    const link = ircLink(cred(server, { options: { channels: '#switchboard' } }), rec.events);
    await link.connect();
    assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'connected']);
    const bob = await peer(server.port, 'bob', server.password);
    try {
      bob.client.say('alice', 'hello alice');
      assert.deepEqual(await rec.nextMessage(), { from: 'bob', body: 'hello alice' });

      await link.send('bob', 'hello bob, ünïcode ✓');
      const q = await bob.next();
      assert.equal(q.nick, 'alice');
      assert.equal(q.target, 'bob');
      assert.equal(q.message, 'hello bob, ünïcode ✓');

      // The link joined #switchboard on connect; bob joins and speaks there.
      const joined = new Promise<void>((r) => bob.client.on('join', (e: unknown) => (e as { nick: string }).nick === 'bob' && r()));
      bob.client.join('#switchboard');
      await joined;
      bob.client.say('#switchboard', '\x02bold\x02 and \x0304red\x03 news');
      assert.deepEqual(await rec.nextMessage(), { from: '#switchboard/bob', body: 'bold and red news' });

      await link.send('#switchboard', 'to the channel');
      const c = await bob.next((e) => e.target === '#switchboard');
      assert.equal(c.message, 'to the channel');
      await link.send('#switchboard/bob', 'addressed');
      assert.equal((await bob.next((e) => e.target === '#switchboard')).message, 'bob: addressed');
    } finally {
      bob.client.quit();
      await link.close('test over');
    }
    assert.deepEqual(rec.states.at(-1), { state: 'disconnected', reason: 'test over' });
    assert.equal(rec.states.filter((s) => s.state === 'disconnected').length, 1);
  });

  it('splits a long body on UTF-8 boundaries within 512-byte lines, and CR/LF in a body never starts a command', async () => {
    const rec = linkRecorder();
    const link = ircLink(cred(server, { username: 'carol', options: { send_interval_ms: 100 } }), rec.events);
    await link.connect();
    const dave = await peer(server.port, 'dave', server.password);
    try {
      const long = 'é'.repeat(700) + ' ' + '😀'.repeat(200); // 1400 + 1 + 800 bytes: four or five lines
      await link.send('dave', long);
      let got = '';
      let lines = 0;
      while (got.length < long.length) {
        const e = await dave.next();
        assert.ok(!e.message.includes('\uFFFD'), 'no code point cut in two');
        got += e.message;
        lines += 1;
      }
      assert.equal(got, long);
      assert.ok(lines >= 4, `${lines} lines`);

      // An injected JOIN/QUIT would make carol join a channel or leave; instead the text arrives as text.
      await link.send('dave', 'one\r\nJOIN #injected\r\nQUIT :bye\nthree\0four');
      assert.equal((await dave.next()).message, 'one');
      assert.equal((await dave.next()).message, 'JOIN #injected');
      assert.equal((await dave.next()).message, 'QUIT :bye');
      assert.equal((await dave.next()).message, 'threefour');
      await link.send('dave', 'still here');
      assert.equal((await dave.next()).message, 'still here');
      assert.equal(rec.states.at(-1)?.state, 'connected');
    } finally {
      dave.client.quit();
      await link.close('done');
    }
  });

  it('paces a burst: after send_burst lines, one per send_interval_ms', async () => {
    const rec = linkRecorder();
    const link = ircLink(cred(server, { username: 'erin', options: { send_burst: 2, send_interval_ms: 300 } }), rec.events);
    await link.connect();
    const frank = await peer(server.port, 'frank', server.password);
    try {
      const started = Date.now();
      await link.send('frank', 'l1\nl2\nl3\nl4\nl5');
      const elapsed = Date.now() - started;
      // Two at once, then three more 300 ms apart: at least 900 ms before the fifth is written (a lower bound only).
      assert.ok(elapsed >= 850, `5 lines written in ${elapsed} ms`);
      for (const want of ['l1', 'l2', 'l3', 'l4', 'l5']) assert.equal((await frank.next()).message, want);
    } finally {
      frank.client.quit();
      await link.close('done');
    }
  });

  it('refuses bad addresses and oversized bodies before anything is sent', async () => {
    const rec = linkRecorder();
    const link = ircLink(cred(server, { username: 'gina' }), rec.events);
    await link.connect();
    try {
      await assert.rejects(link.send('bob smith', 'x'), RangeError);
      await assert.rejects(link.send('#a,#b', 'x'), RangeError);
      await assert.rejects(link.send('bob', 'x'.repeat(16 * 1024 + 1)), RangeError);
    } finally {
      await link.close('done');
    }
    // An account the link cannot use is refused without a connection, and as bad_credentials (never retried).
    const wrongs: Partial<LinkCredential>[] = [{ username: 'not a nick' }, { options: { channels: '#ok,bad' } }, { options: { bogus: 1 } }, { server: 'host:99999' }];
    for (const wrong of wrongs) {
      const r = linkRecorder();
      await assert.rejects(ircLink(cred(server, wrong), r.events).connect(), /bad_credentials: invalid IRC account/);
      assert.deepEqual(r.states.map((s) => s.state), ['bad_credentials'], JSON.stringify(wrong));
      assert.throws(() => parseIrcCredential(cred(server, wrong)), RangeError);
    }
  });

  it('a wrong server password → bad_credentials, and no reconnect', async () => {
    const rec = linkRecorder();
    const link = ircLink(cred(server, { username: 'mallory', password: 'wrong' }), rec.events);
    await assert.rejects(link.connect(), /bad_credentials/);
    const bad = rec.states.find((s) => s.state === 'bad_credentials');
    assert.ok(bad, JSON.stringify(rec.states));
    // Nothing more happens by itself: no new connection attempt, no more states.
    const before = server.log().split('\n').filter((l) => /Accepted connection/.test(l)).length;
    await new Promise((r) => setTimeout(r, 3000));
    const afterCount = server.log().split('\n').filter((l) => /Accepted connection/.test(l)).length;
    assert.equal(afterCount, before, 'no new connection to the server');
    assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'bad_credentials']);
    await link.close('forget');
  });

  it('SASL asked of a server that offers none → bad_credentials, not a connection without it', async () => {
    const rec = linkRecorder();
    const link = ircLink(cred(server, { username: 'sasha', options: { auth: 'sasl' } }), rec.events);
    await assert.rejects(link.connect(), /bad_credentials/);
    assert.match((rec.states.at(-1) as { reason: string }).reason, /SASL/);
  });

  it('TLS: connects with verification off; a self-signed certificate is refused by default (unreachable)', async () => {
    const rec = linkRecorder();
    const tlsCred = cred(server, { server: `127.0.0.1:${server.tlsPort}`, username: 'tess', options: { tls: true, tls_verify: false } });
    const link = ircLink(tlsCred, rec.events);
    await link.connect();
    const uma = await peer(server.port, 'uma', server.password);
    try {
      await link.send('uma', 'over TLS');
      assert.equal((await uma.next()).message, 'over TLS');
    } finally {
      uma.client.quit();
      await link.close('done');
    }
    const rec2 = linkRecorder();
    const strict = ircLink({ ...tlsCred, username: 'tess2', options: { tls: true } }, rec2.events);
    await assert.rejects(strict.connect(), /unreachable/);
  });
});

describe('IRC link: the server goes away', { skip, timeout: 60_000 }, () => {
  it('server killed → unreachable, once, and sends fail', async () => {
    const server = await startNgircd();
    try {
      const rec = linkRecorder();
      const link = ircLink(cred(server), rec.events);
      await link.connect();
      await server.kill();
      const s = await rec.nextState('unreachable');
      assert.equal(s.state, 'unreachable');
      await assert.rejects(link.send('bob', 'anyone?'), /not connected/);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(rec.states.map((x) => x.state), ['connecting', 'connected', 'unreachable']);
      await link.close('gone');
    } finally {
      await server.stop();
    }
  });

  it('nothing listening → unreachable', async () => {
    const server = await startNgircd();
    const port = server.port;
    await server.stop();
    const rec = linkRecorder();
    const link = ircLink({ server: `127.0.0.1:${port}`, address: '127.0.0.1', username: 'alice', password: 'x', options: {} }, rec.events);
    await assert.rejects(link.connect(), /unreachable/);
    assert.deepEqual(rec.states.map((x) => x.state), ['connecting', 'unreachable']);
  });

  it('a server that sends a line without end is cut off (irc-framework would buffer it without bound)', async () => {
    // Not an IRC server: a hostile peer on a real socket, writing 64 KiB with no LF.
    const hostile = createServer((sock) => {
      sock.on('error', () => {});
      sock.write(Buffer.alloc(64 * 1024, 0x41));
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (hostile.address() as { port: number }).port;
      const rec = linkRecorder();
      const link = ircLink({ server: `127.0.0.1:${port}`, address: '127.0.0.1', username: 'alice', password: 'x', options: {} }, rec.events);
      await assert.rejects(link.connect(), /unreachable/);
      assert.match((rec.states.at(-1) as { reason: string }).reason, /without a line end/);
    } finally {
      hostile.close();
    }
  });
});
