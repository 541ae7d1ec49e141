// Transports over real sockets: TCP framing (pipelined, split), RFC 5626 keepalive, size limits (513 on a
// stream, silent drop on UDP), idle timeout, IPv6, responses back over the request's connection, and client
// transactions (Timer E retransmission, Timer F timeout) for requests Switchboard sends.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseVia, SipRequest } from '../../src/sip/message/index.ts';
import { responseDestination } from '../../src/sip/transport/route.ts';
import { createLogger } from '../../src/log.ts';
import { SipEndpoint } from '../../src/sip/endpoint.ts';
import { TransportLayer } from '../../src/sip/transport/layer.ts';
import { buildRequest, parseResponse, SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

function options(client: { transport: 'UDP' | 'TCP'; localPort: number }, callId: string): string {
  return buildRequest(client as SipTestClient, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>', callId });
}

describe('TCP framing and limits', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ flags: { 'sip-max-message-size': '4096', 'sip-tcp-idle-timeout': '1' } });
  });
  after(() => server.close());

  it('answers every message of a pipelined burst, in order', async () => {
    const c = await SipTestClient.open('TCP', server.sipPort);
    try {
      const burst = Array.from({ length: 20 }, (_, i) => options(c, `pipe-${i}`)).join('');
      c.send(burst);
      for (let i = 0; i < 20; i++) {
        const r = parseResponse(await c.next());
        assert.equal(r.status, 200);
        assert.equal(r.header('Call-ID'), `pipe-${i}`);
      }
    } finally {
      c.close();
    }
  });

  it('reassembles a message delivered a few bytes at a time, body included', async () => {
    const c = await SipTestClient.open('TCP', server.sipPort);
    try {
      const body = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n';
      const msg = buildRequest(c, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>', callId: 'split', body, headers: [['Content-Type', 'application/sdp']] });
      const bytes = Buffer.from(msg, 'latin1');
      for (let i = 0; i < bytes.length; i += 7) {
        c.send(bytes.subarray(i, i + 7));
        await new Promise((r) => setTimeout(r, 1));
      }
      const r = parseResponse(await c.next());
      assert.equal(r.status, 200);
      assert.equal(r.header('Call-ID'), 'split');
    } finally {
      c.close();
    }
  });

  it('answers a CRLF CRLF keepalive ping with a CRLF pong (RFC 5626 §4.4.1)', async () => {
    const c = await SipTestClient.open('TCP', server.sipPort);
    try {
      c.send('\r\n\r\n');
      assert.equal(await c.next(), '\r\n');
      // The connection still carries SIP afterwards.
      const r = parseResponse(await (c.send(options(c, 'after-ping')), c.next()));
      assert.equal(r.status, 200);
    } finally {
      c.close();
    }
  });

  it('answers an oversized message 513 and closes the connection', async () => {
    const sock = net.connect(server.sipPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    const closed = new Promise((r) => sock.once('close', r));
    const big = 'x'.repeat(5000);
    const local = sock.localPort!;
    sock.write(buildRequest({ transport: 'TCP', localPort: local } as SipTestClient, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>', body: big }));
    await closed;
    assert.match(data, /^SIP\/2\.0 513 /);
  });

  it('drops an oversized datagram without answering, and keeps serving', async () => {
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      c.send(buildRequest(c, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>', body: 'y'.repeat(5000) }));
      assert.ok(await c.silent(300));
      assert.equal((await c.request(options(c, 'small'))).status, 200);
    } finally {
      c.close();
    }
  });

  it('closes an idle connection after the idle timeout', async () => {
    const sock = net.connect(server.sipPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const t0 = Date.now();
    await new Promise((r) => sock.once('close', r));
    const waited = Date.now() - t0;
    assert.ok(waited >= 900 && waited < 5000, `closed after ${waited} ms`);
  });
});

describe('IPv6', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ flags: { 'sip-host': ['::1'] } });
  });
  after(() => server.close());

  for (const transport of ['UDP', 'TCP'] as const) {
    it(`serves OPTIONS over ${transport} on ::1`, async () => {
      const c = await SipTestClient.open(transport, server.sipPort, '::1');
      try {
        const msg = buildRequest(c, { method: 'OPTIONS', uri: 'sip:[::1]', from: '<sip:p@example.test>', to: '<sip:[::1]>' })
          .replace(`127.0.0.1:${c.localPort}`, `[::1]:${c.localPort}`);
        const r = await c.request(msg);
        assert.equal(r.status, 200);
      } finally {
        c.close();
      }
    });
  }
});

describe('responses over TCP when the connection is gone (RFC 3261 §18.2.2)', () => {
  it('routes a TCP response to the received address and sent-by port, on its connection while open', () => {
    const via = parseVia('SIP/2.0/TCP client.example.test:5070;branch=z9hG4bKx;received=192.0.2.7')!;
    const d = responseDestination(via, { transport: 'TCP', address: '192.0.2.7', port: 40123, family: 4, connectionId: 17, local: { address: '127.0.0.1', port: 5060 } }, false);
    assert.deepEqual(d, { transport: 'TCP', connectionId: 17, address: '192.0.2.7', port: 5070 });
  });

  it('opens a new connection to that address when the connection id is no longer open', async () => {
    const log = createLogger('silent');
    const listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    const port = (listener.address() as net.AddressInfo).port;
    const got = new Promise<string>((resolve) => listener.on('connection', (s) => s.on('data', (x) => resolve(x.toString('latin1')))));
    const layer = new TransportLayer({
      hosts: ['127.0.0.1'], port: 0, transports: ['TCP'], maxMessageSize: 65535, tcpIdleTimeoutMs: 60000, tcpMaxConnections: 100,
      reusePort: false, advertisedHost: null, logger: log, onMessage: () => {}, onStreamError: () => null,
    });
    await layer.listen();
    try {
      layer.sendNow(Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), { transport: 'TCP', connectionId: 424242, address: '127.0.0.1', port });
      assert.match(await got, /^SIP\/2\.0 200 OK/);
    } finally {
      listener.close();
      await layer.close();
    }
  });
});

describe('client transactions (RFC 3261 §17.1.2)', () => {
  const log = createLogger('silent');
  let endpoint: SipEndpoint;
  let layer: TransportLayer;
  before(async () => {
    endpoint = new SipEndpoint({ logger: log, supported: [], forceRport: false, serverHeader: null });
    layer = new TransportLayer({
      hosts: ['127.0.0.1'], port: 0, transports: ['UDP', 'TCP'], maxMessageSize: 65535, tcpIdleTimeoutMs: 60000, tcpMaxConnections: 100,
      reusePort: false, advertisedHost: null, logger: log, onMessage: endpoint.receive, onStreamError: () => null,
    });
    endpoint.attach(layer);
    await layer.listen();
  });
  after(async () => {
    endpoint.close();
    await layer.close();
  });

  function notify(): SipRequest {
    const req = new SipRequest('NOTIFY', 'sip:watcher@127.0.0.1');
    req.append('From', '<sip:switchboard@example.test>;tag=abc');
    req.append('To', '<sip:watcher@example.test>;tag=def');
    req.append('Call-ID', 'ct-' + Math.random());
    req.append('CSeq', '1 NOTIFY');
    req.append('Event', 'presence');
    return req;
  }

  it('retransmits over UDP until answered (Timer E), then resolves with the final response', async () => {
    const uas = dgram.createSocket('udp4');
    await new Promise<void>((r) => uas.bind(0, '127.0.0.1', () => r()));
    const seen: number[] = [];
    uas.on('message', (m, rinfo) => {
      seen.push(Date.now());
      if (seen.length < 3) return; // ignore the first two transmissions
      const text = m.toString('latin1');
      const head = text.split('\r\n').filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
      uas.send(Buffer.from(['SIP/2.0 200 OK', ...head, 'Content-Length: 0', '', ''].join('\r\n')), rinfo.port, rinfo.address);
    });
    try {
      const res = await endpoint.request(notify(), { transport: 'UDP', address: '127.0.0.1', port: uas.address().port });
      assert.equal(res.status, 200);
      assert.equal(seen.length, 3);
      const gap1 = seen[1] - seen[0];
      const gap2 = seen[2] - seen[1];
      assert.ok(gap1 >= 400 && gap1 < 900, `first retransmission after ${gap1} ms (T1 = 500)`);
      assert.ok(gap2 >= 850 && gap2 < 1600, `second after ${gap2} ms (2*T1)`);
    } finally {
      uas.close();
    }
  });

  it('rejects with a transport error when a TCP destination refuses the connection', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await assert.rejects(endpoint.request(notify(), { transport: 'TCP', address: '127.0.0.1', port }), /transport error/);
  });

  it('tells a UDP send outcome to its completion hook, never from inside the send: null when sent, the error when refused', async () => {
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    const got = new Promise<Buffer>((r) => peer.once('message', r));
    const outcomes: Array<Error | null> = [];
    const tell = (err: Error | null) => void outcomes.push(err);
    const told = () => new Promise<void>((r) => setImmediate(r));
    layer.sendReporting(Buffer.from('ping'), { transport: 'UDP', address: '127.0.0.1', port: peer.address().port }, tell);
    assert.deepEqual(outcomes, [], 'not from inside the send');
    assert.equal((await got).toString(), 'ping');
    await told();
    assert.deepEqual(outcomes, [null]);
    peer.close();
    layer.sendReporting(Buffer.from('x'), { transport: 'UDP', address: '127.0.0.1', port: 0 }, tell);
    assert.equal(outcomes.length, 1, 'a bad port is not told from inside the send either');
    await told();
    assert.match(String(outcomes[1]), /port/i);
  });

  it('rejects with a transport error when a UDP send is refused (a request through the completion hook)', async () => {
    await assert.rejects(endpoint.request(notify(), { transport: 'UDP', address: '127.0.0.1', port: 0 }), /transport error sending NOTIFY/);
  });
});
