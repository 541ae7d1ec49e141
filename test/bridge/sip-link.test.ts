// The SIP link against a real provider: a second Switchboard serving remote.test, with bob there as a raw SIP UA.
// The link registers alice (the remote's location service lists the binding), bob's MESSAGE reaches events.message
// and the link's MESSAGE reaches bob, over UDP, TCP and TLS; close() removes the binding. A wrong password is
// bad_credentials after one answered challenge and nothing more; a closed port (ICMP), a refused connection and a
// silent peer (UDP retransmissions from T1, then the timeout) are unreachable. The registration is refreshed at half
// the lifetime granted, answering the strongest Digest offered. A fake provider sends what a real one would not:
// garbage, other media types, oversized bodies, unknown methods, a retransmission.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MAX_IM_BODY, type LinkCredential } from '../../src/bridge/protocol.ts';
import { parseSipAddress, parseSipCredential } from '../../src/bridge/protocols/sip-account.ts';
import { sipLink } from '../../src/bridge/protocols/sip.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';
import { isRequest, parseMsg, reply, waitFor, type Msg } from '../helpers/sip-ua.ts';
import { linkRecorder } from './helpers.ts';

const R = 'remote.test';

/** Bob's MESSAGE to alice at the remote, answering its 407 as bob. */
async function bobSays(bob: SipTestClient, text: string, o: { contentType?: string } = {}): Promise<SipResponseView & { callId: string }> {
  const callId = `m-${Math.random().toString(36).slice(2)}@test`;
  const spec = { method: 'MESSAGE', uri: `sip:alice@${R}`, from: `<sip:bob@${R}>`, to: `<sip:alice@${R}>`, callId, headers: [['Content-Type', o.contentType ?? 'text/plain;charset=utf-8']] as Array<[string, string]>, body: Buffer.from(text).toString('latin1') };
  const first = await bob.request(buildRequest(bob, { ...spec, cseq: 1 }), 10_000);
  if (first.status !== 407) return Object.assign(first, { callId });
  const auth = digestAuthorization(parseChallenge(first.header('Proxy-Authenticate')!), { username: 'bob', password: 'pw', method: 'MESSAGE', uri: spec.uri });
  return Object.assign(await bob.request(buildRequest(bob, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }), 10_000), { callId });
}

/** A MESSAGE the link sends, as bob's UA receives it; bob answers `status`. */
async function bobReceives(bob: SipTestClient, status = 200): Promise<Msg & { body: string }> {
  const m = await waitFor(bob, isRequest('MESSAGE'), 10_000);
  bob.send(reply(m, status, { toTag: 'bobtag' }));
  const raw = Buffer.from(m.raw, 'latin1');
  return Object.assign(m, { body: raw.subarray(raw.indexOf('\r\n\r\n') + 4).toString('utf8') });
}

/** A UDP relay in front of the remote that keeps every request it passes on (what the link sent, as sent). */
async function relay(to: number) {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', () => r()));
  const seen: string[] = [];
  let peer: dgram.RemoteInfo | null = null;
  front.on('message', (m, rinfo) => {
    peer = rinfo;
    seen.push(m.toString('latin1'));
    back.send(m, to, '127.0.0.1');
  });
  back.on('message', (m) => peer && front.send(m, peer.port, peer.address));
  return {
    port: front.address().port,
    seen,
    /** Distinct REGISTER transactions (retransmissions repeat a CSeq). */
    registers: () => [...new Set(seen.filter((s) => s.startsWith('REGISTER ')).map((s) => parseMsg(s).header('CSeq')))],
    close: () => (front.close(), back.close()),
  };
}

describe('SIP link on a second Switchboard', { timeout: 120_000 }, () => {
  let remote: TestServer;
  let bob: SipTestClient;
  const cred = (over: Partial<LinkCredential> = {}): LinkCredential => ({ server: `127.0.0.1:${remote.sipPort}`, address: '127.0.0.1', username: 'alice', password: 'pw', options: { domain: R }, ...over });
  const bindings = async () => remote.location.lookup(`alice@${R}`);

  before(async () => {
    remote = await startTestServer({ users: { [`alice@${R}`]: 'pw', [`bob@${R}`]: 'pw' }, flags: { realm: [R] } });
    bob = await SipTestClient.open('UDP', remote.sipPort);
    assert.equal((await register(bob, { user: 'bob', password: 'pw', domain: R, expires: 600 })).status, 200);
  });
  after(async () => {
    bob?.close();
    await remote?.close();
  });

  it('UDP: registers (the remote lists the binding), MESSAGEs both ways, and close() removes the binding', async () => {
    const rec = linkRecorder();
    const link = sipLink(cred(), rec.events);
    await link.connect();
    assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'connected']);
    const [b, ...more] = await bindings();
    assert.equal(more.length, 0);
    assert.match(b.contact, /^sip:sb-[0-9a-f]{16}@127\.0\.0\.1:\d+$/);
    assert.equal(b.transport, 'UDP');
    assert.ok(b.expiresAt - Date.now() > 590_000, 'Expires: 600 by default');
    try {
      const sent = await bobSays(bob, 'hello alice ✓');
      assert.equal(sent.status, 200, 'delivered to the link, which answered 200');
      const m = await rec.nextMessage();
      assert.deepEqual({ ...m, remoteId: undefined }, { from: `bob@${R}`, body: 'hello alice ✓', remoteId: undefined });
      assert.match(m.remoteId!, /^\S{1,128}$/, 'the Call-ID of the MESSAGE the link got (the remote delivers under one of its own)');

      const out = link.send(`bob@${R}`, 'hello bob, ünïcode ✓');
      const got = await bobReceives(bob);
      await out;
      assert.equal(got.body, 'hello bob, ünïcode ✓');
      assert.match(got.header('From')!, /^<sip:alice@remote\.test>;tag=/);
      assert.match(got.header('Content-Type')!, /^text\/plain;charset=utf-8$/i);
      assert.equal(got.header('Contact'), undefined, 'RFC 3428: no Contact');

      const again = link.send(`sip:bob@${R}`, 'second');
      assert.equal((await bobReceives(bob)).body, 'second');
      await again;

      // A final non-2xx fails the send with its status.
      await assert.rejects(link.send(`nobody@${R}`, 'third'), /^Error: 404/);

      for (const bad of ['bob', 'bob@', `sip:bob@${R};transport=tcp`, `sip:bob@${R}:5070`, `bob@${R}\r\nX: y`, `sips:bob@${R}`, `<sip:bob@${R}>`, `bob:pw@${R}`]) {
        await assert.rejects(link.send(bad, 'x'), RangeError, bad);
      }
      await assert.rejects(link.send(`bob@${R}`, 'x'.repeat(1400)), /RFC 3428/, 'over UDP a MESSAGE stays within 1300 bytes');
      assert.ok(await bob.silent(300), 'nothing refused went out');
    } finally {
      await link.close('test over');
    }
    assert.deepEqual(await bindings(), [], 'REGISTER Expires: 0 on close');
    assert.deepEqual(rec.states.at(-1), { state: 'disconnected', reason: 'test over' });
    await link.close('again');
    assert.equal(rec.states.filter((s) => s.state === 'disconnected').length, 1);
    await assert.rejects(link.send(`bob@${R}`, 'late'), /not connected/);
  });

  it('TCP: registers over its connection, MESSAGEs both ways over it, close() removes the binding', async () => {
    const rec = linkRecorder();
    const link = sipLink(cred({ options: { domain: R, transport: 'tcp' } }), rec.events);
    await link.connect();
    const [b] = await bindings();
    assert.equal(b.transport, 'TCP');
    assert.match(b.contact, /;transport=tcp$/);
    try {
      const sent = await bobSays(bob, 'over tcp');
      assert.equal(sent.status, 200);
      assert.equal((await rec.nextMessage()).body, 'over tcp');
      const out = link.send(`bob@${R}`, 'a long one: ' + 'é'.repeat(4000));
      assert.equal((await bobReceives(bob)).body, 'a long one: ' + 'é'.repeat(4000));
      await out;
    } finally {
      await link.close('done');
    }
    assert.deepEqual(await bindings(), []);
    assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'connected', 'disconnected']);
  });

  it('TLS: connects with tls_verify false; a self-signed certificate is unreachable when verified', async () => {
    const rec = linkRecorder();
    const link = sipLink(cred({ server: `127.0.0.1:${remote.portOf('TLS')}`, options: { domain: R, transport: 'tls', tls_verify: false } }), rec.events);
    await link.connect();
    const [b] = await bindings();
    assert.equal(b.transport, 'TLS');
    const sent = await bobSays(bob, 'over tls');
    assert.equal(sent.status, 200);
    assert.equal((await rec.nextMessage()).body, 'over tls');
    await link.close('done');
    assert.deepEqual(await bindings(), []);

    const strict = linkRecorder();
    const verified = sipLink(cred({ server: `localhost:${remote.portOf('TLS')}`, options: { domain: R, transport: 'tls' } }), strict.events);
    await assert.rejects(verified.connect(), /unreachable/);
    assert.match((strict.states.at(-1) as { reason: string }).reason, /certificate/i);
  });

  it('a wrong password: bad_credentials once, after one answered challenge, and no further REGISTER', async () => {
    const r = await relay(remote.sipPort);
    try {
      const rec = linkRecorder();
      const link = sipLink(cred({ server: `127.0.0.1:${r.port}`, password: 'wrong' }), rec.events);
      await assert.rejects(link.connect(), /bad_credentials/);
      assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'bad_credentials']);
      assert.match((rec.states[1] as { reason: string }).reason, /401/);
      await new Promise((res) => setTimeout(res, 2500)); // past T1 and 2×T1: no retransmission, no new attempt
      assert.deepEqual(r.registers(), ['1 REGISTER', '2 REGISTER'], 'one without credentials, one with');
      assert.deepEqual(await bindings(), []);
      await link.close('bye');
      assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'bad_credentials', 'disconnected']);
    } finally {
      r.close();
    }
  });

  it('an invalid account is bad_credentials without a packet', async () => {
    for (const [over, why] of [
      [{ username: 'alice@remote.test' }, /username/],
      [{ options: { transport: 'sctp' } }, /transport/],
      [{ options: { expires: 30 } }, /expires/],
      [{ options: { colour: 'red' } }, /unknown SIP option/],
      [{ server: 'a b' }, /server/],
      [{ password: 'a\r\nb' }, /password/],
    ] as Array<[Partial<LinkCredential>, RegExp]>) {
      assert.throws(() => parseSipCredential(cred(over)), why);
      const rec = linkRecorder();
      await assert.rejects(sipLink(cred(over), rec.events).connect(), /bad_credentials/);
      assert.deepEqual(rec.states.map((s) => s.state), ['bad_credentials']);
    }
    assert.equal(parseSipAddress('BOB@Remote.Test'), 'sip:BOB@remote.test');
    assert.equal(parseSipAddress('sip:+4930123@[::1]'), 'sip:+4930123@[::1]');
  });

  it('nothing listening: a closed UDP port (ICMP) and a refused TCP connection are unreachable at once', async () => {
    const closed = dgram.createSocket('udp4');
    await new Promise<void>((r) => closed.bind(0, '127.0.0.1', () => r()));
    const udpPort = closed.address().port;
    closed.close();
    const rec = linkRecorder();
    const started = Date.now();
    await assert.rejects(sipLink(cred({ server: `127.0.0.1:${udpPort}` }), rec.events).connect(), /unreachable/);
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
    assert.deepEqual(rec.states.map((s) => s.state), ['connecting', 'unreachable']);
    assert.match((rec.states[1] as { reason: string }).reason, /ICMP/);

    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const tcpPort = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const tcp = linkRecorder();
    await assert.rejects(sipLink(cred({ server: `127.0.0.1:${tcpPort}`, options: { transport: 'tcp' } }), tcp.events).connect(), /unreachable/);
    assert.match((tcp.states.at(-1) as { reason: string }).reason, /ECONNREFUSED/);
  });

  it('a silent UDP peer: REGISTER retransmitted from T1 doubling (RFC 3261 §17.1.2.2), unreachable after ~8 s', async () => {
    const silent = dgram.createSocket('udp4');
    const at: number[] = [];
    silent.on('message', () => at.push(Date.now()));
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    try {
      const rec = linkRecorder();
      const started = Date.now();
      await assert.rejects(sipLink(cred({ server: `127.0.0.1:${silent.address().port}` }), rec.events).connect(), /unreachable/);
      const took = Date.now() - started;
      assert.ok(took >= 7900 && took < 10_000, `${took} ms`);
      assert.match((rec.states.at(-1) as { reason: string }).reason, /no answer to REGISTER/);
      // Sent at 0, 0.5, 1.5, 3.5 and 7.5 s: gaps of T1, 2×T1, 4×T1, then T2 (a loaded machine's timers run late).
      const gaps = at.slice(1).map((t, i) => t - at[i]);
      assert.equal(gaps.length, 4, JSON.stringify(gaps));
      for (const [i, want] of [500, 1000, 2000, 4000].entries()) assert.ok(Math.abs(gaps[i] - want) < want * 0.4, JSON.stringify(gaps));
    } finally {
      silent.close();
    }
  });
});

describe('SIP link: refresh and Digest algorithms', { timeout: 60_000 }, () => {
  let remote: TestServer;
  before(async () => {
    remote = await startTestServer({
      users: { [`alice@${R}`]: 'pw' },
      flags: { realm: [R], 'min-expires': '1', 'max-expires': '4', 'default-expires': '4', 'digest-algorithms': ['SHA-512-256', 'SHA-256', 'MD5'] },
    });
  });
  after(async () => {
    await remote?.close();
  });

  it('re-registers at half the lifetime granted, with the same Call-ID, reusing the nonce with a higher nc', async () => {
    const r = await relay(remote.sipPort);
    const rec = linkRecorder();
    const link = sipLink({ server: `127.0.0.1:${r.port}`, address: '127.0.0.1', username: 'alice', password: 'pw', options: { domain: R, expires: 60 } }, rec.events);
    try {
      await link.connect();
      await new Promise((res) => setTimeout(res, 5000)); // granted 4 s: refreshed at about 2 s and 4 s
      assert.equal(rec.states.at(-1)?.state, 'connected');
      const [b] = await remote.location.lookup(`alice@${R}`);
      assert.ok(b, 'still registered after the first lifetime');
      const regs = r.seen.filter((s) => s.startsWith('REGISTER ')).map(parseMsg);
      assert.equal(new Set(regs.map((m) => m.header('Call-ID'))).size, 1, 'one Call-ID (RFC 3261 §10.2.4)');
      assert.ok(r.registers().length >= 4, JSON.stringify(r.registers()));
      const auths = regs.map((m) => m.header('Authorization')).filter((a): a is string => a !== undefined);
      assert.match(auths[0], /algorithm=SHA-512-256/, 'the topmost challenge offered');
      assert.match(auths[0], /qop=auth, nc=00000001/);
      assert.match(auths[1], /nc=00000002/, 'the refresh reuses the nonce, one higher');
      assert.match(regs[0].header('To')!, /^<sip:alice@remote\.test>$/);
      assert.match(regs[0].startLine, /^REGISTER sip:remote\.test SIP\/2\.0$/);
      assert.equal(regs[0].header('Expires'), '60');
    } finally {
      await link.close('done');
      r.close();
    }
    assert.deepEqual(await remote.location.lookup(`alice@${R}`), []);
  });
});

describe('SIP link: what a provider may send', { timeout: 60_000 }, () => {
  /** A fake provider over TCP: answers the REGISTER 200, then sends what the test says and collects the answers. */
  let srv: net.Server;
  let conn: net.Socket;
  let buf = '';
  const inbox: string[] = [];
  let contact = '';
  const next = async (ms = 3000): Promise<Msg> => {
    const until = Date.now() + ms;
    while (inbox.length === 0) {
      if (Date.now() > until) throw new Error('nothing from the link');
      await new Promise((r) => setTimeout(r, 10));
    }
    return parseMsg(inbox.shift()!);
  };
  const request = (method: string, o: { uri?: string; body?: Buffer; type?: string; branch?: string; from?: string; callId?: string } = {}) => {
    const body = o.body ?? Buffer.alloc(0);
    const head = [
      `${method} ${o.uri ?? contact} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:5060;branch=${o.branch ?? 'z9hG4bK' + Math.random().toString(36).slice(2)}`,
      `From: ${o.from ?? '<sip:bob@remote.test>'};tag=x1`,
      `To: <sip:alice@remote.test>`,
      `Call-ID: ${o.callId ?? `c-${method}-${Math.random()}`}`,
      `CSeq: 1 ${method}`,
      'Max-Forwards: 70',
      ...(o.type ? [`Content-Type: ${o.type}`] : []),
      `Content-Length: ${body.length}`,
    ].join('\r\n');
    conn.write(Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), body]));
  };

  before(async () => {
    srv = net.createServer((c) => {
      conn = c;
      buf = '';
      c.on('data', (d) => {
        buf += d.toString('latin1');
        for (;;) {
          buf = buf.replace(/^(?:\r\n)+(?=[^\r])/, ''); // pongs (RFC 5626 §4.4.1)
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/\r\nContent-Length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          const raw = buf.slice(0, end + 4 + len);
          buf = buf.slice(end + 4 + len);
          const m = parseMsg(raw);
          if (m.method === 'REGISTER') {
            contact = /<([^>]+)>/.exec(m.header('Contact')!)![1];
            c.write(reply(m, 200, { toTag: 'reg', headers: [['Contact', `<${contact}>;expires=600`]] }));
          } else inbox.push(raw);
        }
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  });
  after(() => new Promise((r) => srv.close(r)));

  it('answers 400, 404, 405, 413, 415, 501 and OPTIONS 200; a retransmission is answered again, not delivered twice; garbage is dropped', async () => {
    const rec = linkRecorder();
    const link = sipLink({ server: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, address: '127.0.0.1', username: 'alice', password: 'pw', options: { domain: R, transport: 'tcp' } }, rec.events);
    await link.connect();
    try {
      assert.match(contact, /^sip:sb-[0-9a-f]{16}@127\.0\.0\.1:\d+;transport=tcp$/);
      conn.write('hello there\r\n\r\n'); // no SIP at all: dropped
      conn.write('\r\n\r\n'); // an RFC 5626 ping: answered with a pong
      request('MESSAGE', { type: 'application/json', body: Buffer.from('{}') });
      const json = await next();
      assert.equal(json.status, 415);
      assert.equal(json.header('Accept'), 'text/plain');
      request('MESSAGE', { type: 'text/plain', body: Buffer.alloc(MAX_IM_BODY + 1, 0x61) });
      assert.equal((await next()).status, 413);
      request('MESSAGE', { type: 'text/plain; charset=ISO-8859-1', body: Buffer.from('x') });
      assert.equal((await next()).status, 415);
      request('MESSAGE', { type: 'text/plain' });
      assert.equal((await next()).status, 400, 'no body');
      request('MESSAGE', { uri: 'sip:someone-else@127.0.0.1', type: 'text/plain', body: Buffer.from('x') });
      assert.equal((await next()).status, 404);
      request('MESSAGE', { type: 'text/plain', body: Buffer.from([0x61, 0xff, 0x62]) });
      assert.match((await next()).startLine, /^SIP\/2\.0 415 .*not UTF-8/);
      request('MESSAGE', { type: 'text/plain', body: Buffer.from('x'), from: '<tel:+4930123>' });
      assert.equal((await next()).status, 400);
      request('INVITE');
      const inv = await next();
      assert.equal(inv.status, 405);
      assert.equal(inv.header('Allow'), 'MESSAGE, OPTIONS');
      request('FROBNICATE');
      assert.equal((await next()).status, 501);
      request('OPTIONS');
      assert.equal((await next()).status, 200);
      conn.write('MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKbad\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n');
      assert.equal((await next()).status, 400, 'no From, To or Call-ID');
      assert.equal(rec.messages.length, 0);

      const once = { type: 'text/plain', body: Buffer.from('once'), branch: 'z9hG4bKsame', callId: 'c-once' };
      request('MESSAGE', once);
      const first = await next();
      assert.equal(first.status, 200);
      assert.match(first.header('To')!, /;tag=/);
      // The same transaction again (its 200 "lost"): the same answer, and no second message.
      request('MESSAGE', once);
      assert.equal((await next()).raw, first.raw);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(rec.messages.map((m) => m.body), ['once']);
      assert.equal(rec.states.at(-1)?.state, 'connected', 'still up after all that');

      // The provider drops the connection: unreachable (the runtime reconnects).
      conn.destroy();
      await rec.nextState('unreachable');
    } finally {
      await link.close('done');
    }
  });

  it('send(): answers the provider\u2019s 407 for the registration\u2019s realm only, never another realm\u2019s', async () => {
    const rec = linkRecorder();
    const link = sipLink({ server: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, address: '127.0.0.1', username: 'alice', password: 'pw', options: { domain: R, transport: 'tcp' } }, rec.events);
    await link.connect(); // the fake registrar asked for no credentials: the realm is the domain
    try {
      const challenge = (m: Msg, realm: string) => reply(m, 407, { headers: [['Proxy-Authenticate', `Digest realm="${realm}", nonce="n0nce", qop="auth", algorithm=MD5`]] });
      const elsewhere = link.send(`bob@${R}`, 'to bob');
      const m1 = await next();
      assert.equal(m1.method, 'MESSAGE');
      assert.equal(m1.header('Proxy-Authorization'), undefined);
      conn.write(challenge(m1, 'elsewhere.example'));
      await assert.rejects(elsewhere, /407 .*no Digest challenge for realm "remote\.test"/);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(inbox.length, 0, 'no answer to another realm');

      const ours = link.send(`bob@${R}`, 'to bob again');
      const m2 = await next();
      conn.write(challenge(m2, R));
      const m3 = await next();
      assert.equal(m3.header('Call-ID'), m2.header('Call-ID'));
      assert.equal(m3.header('CSeq'), '2 MESSAGE');
      const auth = m3.header('Proxy-Authorization')!;
      const want = digestAuthorization({ realm: R, nonce: 'n0nce', qop: 'auth', algorithm: 'MD5' }, { username: 'alice', password: 'pw', method: 'MESSAGE', uri: `sip:bob@${R}`, cnonce: /cnonce="([^"]+)"/.exec(auth)![1] });
      assert.equal(/response="([0-9a-f]+)"/.exec(auth)![1], /response="([0-9a-f]+)"/.exec(want)![1], 'the Digest response an independent implementation computes');
      conn.write(reply(m3, 202, { toTag: 'p' }));
      await ours;
    } finally {
      await link.close('done');
    }
  });
});
