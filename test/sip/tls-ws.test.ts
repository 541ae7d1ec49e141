// SIP over TLS (self-signed certificate generated for local use) and over WebSocket / secure WebSocket
// (RFC 7118, `sip` subprotocol): requests answered on their connection, REGISTER with .invalid contacts, and
// bindings that die with their connection (WebSocket, RFC 5626 flows) removed when it closes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { collectEvents, type EventLog } from '../helpers/events.ts';
import { digestAuthorization, parseChallenge, parseResponse, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

/** A SIP peer over a WebSocket: one SIP message per WebSocket message. */
class WsPeer {
  private queue: string[] = [];
  private waiting: Array<(s: string) => void> = [];
  readonly ws: WebSocket;
  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (d) => {
      const s = d.toString();
      const w = this.waiting.shift();
      if (w) w(s);
      else this.queue.push(s);
    });
  }
  static open(url: string, o: { ca?: string; protocol?: string | null } = {}): Promise<WsPeer> {
    return new Promise((resolve, reject) => {
      const ws = o.protocol === null ? new WebSocket(url, { ca: o.ca }) : new WebSocket(url, o.protocol ?? 'sip', { ca: o.ca });
      ws.once('open', () => resolve(new WsPeer(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    });
  }
  next(ms = 3000): Promise<string> {
    const q = this.queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no message')), ms);
      this.waiting.push((s) => {
        clearTimeout(t);
        resolve(s);
      });
    });
  }
  async request(msg: string): Promise<SipResponseView> {
    this.ws.send(msg);
    return parseResponse(await this.next());
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** A browser-style request: Via and Contact with an .invalid host, no Content-Length needed over WebSocket. */
function wsRequest(method: string, o: { user: string; cseq: number; callId: string; transport: 'WS' | 'WSS'; extra?: string[] }): string {
  return [
    `${method} sip:${D} SIP/2.0`,
    `Via: SIP/2.0/${o.transport} df7jal23ls0d.invalid;branch=z9hG4bK${Math.random().toString(36).slice(2)}`,
    'Max-Forwards: 70',
    `From: <sip:${o.user}@${D}>;tag=${Math.random().toString(36).slice(2)}`,
    `To: <sip:${o.user}@${D}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${method}`,
    `Contact: <sip:${o.user}@df7jal23ls0d.invalid;transport=ws>;expires=600`,
    ...(o.extra ?? []),
    '',
    '',
  ].join('\r\n');
}

async function registerOverWs(peer: WsPeer, user: string, password: string, transport: 'WS' | 'WSS'): Promise<SipResponseView> {
  const callId = `ws-${Math.random()}`;
  const first = await peer.request(wsRequest('REGISTER', { user, cseq: 1, callId, transport }));
  assert.equal(first.status, 401);
  const auth = digestAuthorization(parseChallenge(first.header('WWW-Authenticate')!), { username: user, password, method: 'REGISTER', uri: `sip:${D}` });
  return peer.request(wsRequest('REGISTER', { user, cseq: 2, callId, transport, extra: [`Authorization: ${auth}`] }));
}

describe('SIP over TLS, WS and WSS', () => {
  let s: TestServer;
  let ca: string;
  let log: EventLog;
  before(async () => {
    s = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw' } });
    ca = readFileSync(path.join(s.dataDir, 'tls', 'self-signed-cert.pem'), 'utf8');
    log = await collectEvents(s.bus, 'binding.#');
  });
  after(() => s.close());

  it('answers OPTIONS over TLS with the self-signed certificate for localhost', async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: s.portOf('TLS'), ca, servername: 'localhost' });
    await new Promise((r, j) => {
      sock.once('secureConnect', r);
      sock.once('error', j);
    });
    assert.equal(sock.authorized, true);
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    const port = sock.localPort!;
    sock.write([
      'OPTIONS sip:example.test SIP/2.0',
      `Via: SIP/2.0/TLS 127.0.0.1:${port};branch=z9hG4bKtls1`,
      'From: <sip:p@example.test>;tag=1',
      'To: <sip:example.test>',
      'Call-ID: tls-options',
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'));
    for (let i = 0; i < 100 && !data.includes('\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
    sock.destroy();
    assert.match(data, /^SIP\/2\.0 200 OK/);
  });

  it('refuses a WebSocket handshake without the sip subprotocol', async () => {
    await assert.rejects(WsPeer.open(`ws://127.0.0.1:${s.portOf('WS')}`, { protocol: null }), /handshake refused: 400/);
    await assert.rejects(WsPeer.open(`ws://127.0.0.1:${s.portOf('WS')}`, { protocol: 'chat' }), /handshake refused: 400/);
  });

  for (const transport of ['WS', 'WSS'] as const) {
    it(`registers a browser-style client over ${transport} and removes its binding when the socket closes`, async () => {
      const url = `${transport === 'WS' ? 'ws' : 'wss'}://localhost:${s.portOf(transport)}`;
      const peer = await WsPeer.open(url, { ca });
      const user = transport === 'WS' ? 'alice' : 'bob';
      const r = await registerOverWs(peer, user, `${user}-pw`, transport);
      assert.equal(r.status, 200, r.raw);
      const [b] = (await s.location.lookup(`${user}@${D}`));
      assert.equal(b.transport, transport);
      assert.equal(b.contact, `sip:${user}@df7jal23ls0d.invalid;transport=ws`);
      assert.ok(b.connectionId !== null);
      // The CRLF keepalive some clients send as a text message gets its pong.
      peer.ws.send('\r\n\r\n');
      assert.equal(await peer.next(), '\r\n');
      await log.settle();
      log.events.length = 0;
      await peer.close();
      for (let i = 0; i < 500 && (await s.location.lookup(`${user}@${D}`)).length; i++) await new Promise((res) => setTimeout(res, 10));
      assert.deepEqual((await s.location.lookup(`${user}@${D}`)), [], 'the binding went with its connection');
      // Announced once durable (after the memory change the loop above waited for).
      await log.waitFor((events) => events.some((e) => e.topic.startsWith('binding.removed.') && e.payload.aor === `${user}@${D}`), `binding.removed of ${user}@${D}`, 5000);
    });
  }

  it('removes an RFC 5626 flow binding when its TCP connection closes, and keeps a plain TCP binding', async () => {
    const c = await SipTestClient.open('TCP', s.sipPort);
    const inst = '"<urn:uuid:00000000-0000-1000-8000-00000000cafe>"';
    const withFlow = await register(c, { user: 'carol', password: 'carol-pw', domain: D, contact: [`<sip:carol@127.0.0.1:${c.localPort};transport=tcp>;+sip.instance=${inst};reg-id=1`, `<sip:carol-plain@127.0.0.1:${c.localPort};transport=tcp>`] });
    assert.equal(withFlow.status, 200, withFlow.raw);
    assert.equal((await s.location.lookup(`carol@${D}`)).length, 2);
    c.close();
    for (let i = 0; i < 500 && (await s.location.lookup(`carol@${D}`)).length > 1; i++) await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual((await s.location.lookup(`carol@${D}`)).map((b) => b.contact), [`sip:carol-plain@127.0.0.1:${c.localPort};transport=tcp`]);
  });
});
