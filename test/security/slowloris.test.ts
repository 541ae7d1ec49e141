// Slow and idle connections (issue 15): per-address connection caps shared by TCP, TLS and WS; a deadline for a
// TCP message once its first byte arrived; a deadline for a connection's first message (keepalive pings are not
// one); WebSockets that carry nothing but pongs are closed while a registered flow stays; HTTP requests that
// trickle their head or body are cut. Every attack runs against a running server over real sockets, with the
// deadlines shortened to seconds (the defaults are 10-30 s).
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { register } from '../helpers/register.ts';
import { digestAuthorization, parseChallenge, parseResponse, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';
const CAP = 5;
/** Well past every shortened deadline below plus a sweep; an attack that is not stopped holds on past it. */
const PATIENCE = 9000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the ms until the socket closed, or null if it is still open after `ms`. */
function closedWithin(sock: net.Socket | WebSocket, ms: number): Promise<number | null> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const done = (v: number | null) => {
      clearTimeout(t);
      resolve(v);
    };
    const t = setTimeout(() => done(null), ms);
    sock.once('close', () => done(Date.now() - t0));
  });
}

async function tcp(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  s.on('error', () => {});
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  return s;
}

function ws(port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const w = new WebSocket(`ws://127.0.0.1:${port}`, 'sip');
    w.once('open', () => resolve(w));
    w.once('error', reject);
  });
}

/** Keeps writing `bytes` one at a time every `every` ms until the socket closes (the slowloris drip). */
function drip(sock: net.Socket, bytes: string, every = 400): void {
  let i = 0;
  const t = setInterval(() => {
    if (sock.destroyed) return clearInterval(t);
    sock.write(bytes[i++ % bytes.length]);
  }, every);
  sock.once('close', () => clearInterval(t));
}

function wsRequest(method: string, o: { cseq: number; callId: string; extra?: string[] }): string {
  return [
    `${method} sip:${D} SIP/2.0`,
    `Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK${Math.random().toString(36).slice(2)}`,
    'Max-Forwards: 70',
    `From: <sip:alice@${D}>;tag=${Math.random().toString(36).slice(2)}`,
    `To: <sip:alice@${D}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${method}`,
    `Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>;expires=600`,
    ...(o.extra ?? []),
    '',
    '',
  ].join('\r\n');
}

function wsAsk(w: WebSocket, msg: string): Promise<SipResponseView> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no answer')), 3000);
    w.once('message', (d) => {
      clearTimeout(t);
      resolve(parseResponse(d.toString()));
    });
    w.send(msg);
  });
}

describe('slow and idle connections', () => {
  let s: TestServer;
  /** Whatever a test opened, closed after it whatever happened (an attack that was not stopped would hold on). */
  const opened: Array<net.Socket | WebSocket> = [];
  const track = <T extends net.Socket | WebSocket>(x: T): T => (opened.push(x), x);
  afterEach(() => {
    for (const x of opened.splice(0)) {
      if (x instanceof WebSocket) x.terminate();
      else x.destroy();
    }
  });
  before(async () => {
    s = await startTestServer({
      users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' },
      flags: {
        'sip-transports': ['UDP', 'TCP', 'TLS', 'WS'],
        'sip-max-connections-per-address': String(CAP),
        'sip-tcp-message-timeout': '2',
        'sip-first-message-timeout': '2',
        'sip-tcp-idle-timeout': '3',
        'http-request-timeout': '3',
        'http-headers-timeout': '2',
      },
    });
  });
  after(() => s.close());

  it('refuses connections beyond the per-address cap on TCP, TLS and WS, while another phone registers', async () => {
    // Its own server, with a first-message deadline long enough that the held connections outlive the test.
    const s = await startTestServer({
      users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' },
      flags: { 'sip-transports': ['UDP', 'TCP', 'TLS', 'WS'], 'sip-max-connections-per-address': String(CAP), 'sip-first-message-timeout': '60' },
    });
    try {
      const held: net.Socket[] = [];
      for (let i = 0; i < CAP; i++) held.push(track(await tcp(s.sipPort)));
      // One more from the same address, on each stream transport: closed at once, without a byte.
      const extra = track(await tcp(s.sipPort));
      assert.notEqual(await closedWithin(extra, 3000), null, 'a TCP connection over the cap is closed');
      const t = track(tls.connect({ host: '127.0.0.1', port: s.portOf('TLS'), rejectUnauthorized: false }));
      t.on('error', () => {});
      assert.notEqual(await closedWithin(t, 3000), null, 'a TLS connection over the cap is closed');
      await assert.rejects(ws(s.portOf('WS')).then(track), 'a WebSocket over the cap is refused');
      // Another phone (another address) registers over TCP meanwhile.
      const phone = await SipTestClient.open('TCP', s.sipPort, '127.0.0.1', '127.0.0.2');
      try {
        assert.equal((await register(phone, { user: 'bob', password: 'bob-pw', domain: D })).status, 200);
      } finally {
        phone.close();
      }
      for (const h of held) h.destroy();
      await sleep(300);
      // The held ones are gone: the address may connect again.
      const again = await SipTestClient.open('TCP', s.sipPort);
      try {
        assert.equal((await register(again, { user: 'alice', password: 'alice-pw', domain: D })).status, 200);
      } finally {
        again.close();
      }
    } finally {
      for (const x of opened.splice(0)) {
        if (x instanceof WebSocket) x.terminate();
        else x.destroy();
      }
      await s.close();
    }
  });

  it('closes a TCP connection whose message header is trickled past the message deadline', async () => {
    const sock = track(await tcp(s.sipPort));
    sock.write(`REGISTER sip:${D} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKslow\r\nMax-Forwards: 70\r\n`);
    drip(sock, 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n');
    const ms = await closedWithin(sock, PATIENCE);
    assert.notEqual(ms, null, 'the half-sent message was cut');
    assert.ok(ms! >= 1500, `not before its deadline (${ms} ms)`);
  });

  it('closes a connection that never sends a message, keepalive pings or not', async () => {
    const sock = track(await tcp(s.sipPort));
    const pinger = setInterval(() => sock.write('\r\n\r\n'), 400);
    try {
      assert.notEqual(await closedWithin(sock, PATIENCE), null, 'pings alone do not keep it');
    } finally {
      clearInterval(pinger);
    }
  });

  it('closes a WebSocket that sends no SIP message (its pongs do not count)', async () => {
    const w = track(await ws(s.portOf('WS')));
    assert.notEqual(await closedWithin(w, PATIENCE), null);
  });

  it('closes a WebSocket idle after one message, keeps one whose binding rides on it', async () => {
    const idle = track(await ws(s.portOf('WS')));
    const opts = await wsAsk(idle, wsRequest('OPTIONS', { cseq: 1, callId: `o-${Date.now()}` }));
    assert.equal(opts.status, 200);
    const registered = track(await ws(s.portOf('WS')));
    const callId = `r-${Date.now()}`;
    const first = await wsAsk(registered, wsRequest('REGISTER', { cseq: 1, callId }));
    assert.equal(first.status, 401);
    const auth = digestAuthorization(parseChallenge(first.header('WWW-Authenticate')!), { username: 'alice', password: 'alice-pw', method: 'REGISTER', uri: `sip:${D}` });
    assert.equal((await wsAsk(registered, wsRequest('REGISTER', { cseq: 2, callId, extra: [`Authorization: ${auth}`] }))).status, 200);
    const t0 = Date.now();
    assert.notEqual(await closedWithin(idle, PATIENCE), null, 'the idle one is closed');
    // Past the idle limit (3 s) and a sweep for the registered one too: it is still open and still answers.
    await sleep(Math.max(0, 4500 - (Date.now() - t0)));
    assert.equal(registered.readyState, WebSocket.OPEN, 'the registered flow stays open');
    assert.equal((await wsAsk(registered, wsRequest('OPTIONS', { cseq: 3, callId }))).status, 200);
    registered.close();
  });

  it('cuts an HTTP request whose head is trickled, and one whose body is', async () => {
    const port = Number(new URL(s.httpUrl).port);
    const head = track(await tcp(port));
    let headAnswer = '';
    head.on('data', (d) => (headAnswer += d.toString()));
    head.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    drip(head, 'X-Slow: a\r\n');
    assert.notEqual(await closedWithin(head, PATIENCE), null, 'trickled head cut');
    assert.match(headAnswer, /^HTTP\/1\.1 408|^$/);

    const body = track(await tcp(port));
    body.write('POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"login":"');
    drip(body, 'a');
    assert.notEqual(await closedWithin(body, PATIENCE), null, 'trickled body cut');

    // A normal request still works.
    assert.equal((await fetch(`${s.httpUrl}/healthz`)).status, 200);
  });
});
