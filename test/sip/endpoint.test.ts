// Generic UAS behaviour over real sockets: OPTIONS, 501 with Allow (405 on an endpoint without handlers), 420 with Unsupported, CANCEL without a
// transaction, retransmissions absorbed and answered with the same response, received/rport on the Via.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { createLogger } from '../../src/log.ts';
import { SipEndpoint } from '../../src/sip/endpoint.ts';
import { Errors } from '../../src/errors.ts';
import { parseMessage, type SipRequest, type SipResponse } from '../../src/sip/message/index.ts';
import { createResponse, sipError } from '../../src/sip/message/response.ts';
import type { Source } from '../../src/sip/transport/types.ts';

describe('SIP endpoint', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  for (const transport of ['UDP', 'TCP'] as const) {
    describe(`over ${transport}`, () => {
      let c: SipTestClient;
      before(async () => {
        c = await SipTestClient.open(transport, server.sipPort);
      });
      after(() => c.close());
      const req = (method: string, headers: Array<[string, string]> = [], uri = 'sip:example.test') =>
        buildRequest(c, { method, uri, from: '<sip:probe@example.test>', to: '<sip:example.test>', headers });

      it('answers OPTIONS 200 with Allow, Accept and Supported', async () => {
        const r = await c.request(req('OPTIONS'));
        assert.equal(r.status, 200);
        assert.match(r.header('Allow')!, /\bREGISTER\b/);
        assert.match(r.header('Allow')!, /\bOPTIONS\b/);
        assert.match(r.header('Supported')!, /\bpath\b/);
        assert.ok(r.header('Accept'));
        assert.match(r.header('To')!, /;tag=/, 'a final response carries a To tag');
      });

      it('handles every method of the IANA registry (Allow lists them all)', async () => {
        const r = await c.request(req('OPTIONS'));
        for (const m of ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE']) {
          if (m !== 'ACK' && m !== 'CANCEL') assert.match(r.header('Allow')!, new RegExp(`\\b${m}\\b`), m);
        }
      });

      it('answers an unknown method 501 with Allow', async () => {
        const r = await c.request(req('FOOBAR'));
        assert.equal(r.status, 501);
        assert.match(r.header('Allow')!, /OPTIONS/);
      });

      it('answers a Require naming an unknown extension 420 with Unsupported listing it', async () => {
        const r = await c.request(req('OPTIONS', [['Require', 'path, 100rel, x-nonsense']]));
        assert.equal(r.status, 420);
        assert.deepEqual(r.header('Unsupported')!.split(/\s*,\s*/).sort(), ['100rel', 'x-nonsense']);
      });

      it('accepts a Require naming only what it supports', async () => {
        const r = await c.request(req('OPTIONS', [['Require', 'path']]));
        assert.equal(r.status, 200);
      });

      it('answers CANCEL with nothing to cancel 481', async () => {
        const r = await c.request(req('CANCEL'));
        assert.equal(r.status, 481);
      });

      it('sends no response to an ACK', async () => {
        c.send(req('ACK'));
        assert.ok(await c.silent(300));
      });

      it('answers a CSeq method mismatch 400 with the reason', async () => {
        const bad = req('OPTIONS').replace('CSeq: 1 OPTIONS', 'CSeq: 1 INVITE');
        const r = await c.request(bad);
        assert.equal(r.status, 400);
        assert.match(r.reason, /CSeq/);
      });

      it('answers a wrong SIP version 505', async () => {
        const r = await c.request(req('OPTIONS').replace('OPTIONS sip:example.test SIP/2.0', 'OPTIONS sip:example.test SIP/3.0'));
        assert.equal(r.status, 505);
      });
    });
  }

  it('stamps received and rport on the Via of its responses (RFC 3581)', async () => {
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      // The Via claims another host: the response still reaches us because rport asks for the source port.
      const msg = buildRequest(c, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>' })
        .replace(`Via: SIP/2.0/UDP 127.0.0.1:${c.localPort}`, 'Via: SIP/2.0/UDP 192.0.2.99:5999');
      const r = await c.request(msg);
      assert.equal(r.status, 200);
      const via = r.header('Via')!;
      assert.match(via, /;received=127\.0\.0\.1/);
      assert.match(via, new RegExp(`;rport=${c.localPort}\\b`));
    } finally {
      c.close();
    }
  });

  it('absorbs a retransmitted request and re-sends the same final response (RFC 3261 §17.2.2)', async () => {
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      const msg = buildRequest(c, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>' });
      const before = await server.metrics.registry.getSingleMetricAsString('switchboard_sip_requests_total');
      c.send(msg);
      const first = await c.next();
      c.send(msg);
      const second = await c.next();
      assert.equal(second, first, 'byte-identical response, including the To tag');
      const afterText = await server.metrics.registry.getSingleMetricAsString('switchboard_sip_requests_total');
      const count = (t: string) => Number(/method="OPTIONS"} (\d+)/.exec(t)?.[1] ?? 0);
      assert.equal(count(afterText) - count(before), 1, 'the retransmission did not reach the handler');
    } finally {
      c.close();
    }
  });
});

describe('Via received claimed by the client', () => {
  it('does not send the response where a spoofed received parameter points', async () => {
    const server = await startTestServer();
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      const msg = buildRequest(c, { method: 'OPTIONS', uri: 'sip:example.test', from: '<sip:p@example.test>', to: '<sip:example.test>' })
        .replace(/(Via: SIP\/2\.0\/UDP 127\.0\.0\.1:\d+;branch=[^;\r]+)/, '$1;received=192.0.2.66');
      const r = await c.request(msg);
      assert.equal(r.status, 200, 'the answer reached the real source');
      assert.doesNotMatch(r.header('Via')!, /192\.0\.2\.66/);
    } finally {
      c.close();
      await server.close();
    }
  });
});

// With every known method handled by the server, 405 is the endpoint's answer where a deployment leaves one out: an
// endpoint with only REGISTER shows it (§8.2.1: a known method not implemented here gets 405 with Allow).
describe('SIP endpoint without handlers', () => {
  it('answers a known but unhandled method 405 with Allow, an unknown one 501', () => {
    const sent: string[] = [];
    const endpoint = new SipEndpoint({ logger: createLogger('silent'), supported: [], forceRport: false, serverHeader: null });
    endpoint.attach({ sendNow: (d) => void sent.push(d.toString('latin1')), send: async (d) => void sent.push(d.toString('latin1')), viaAddress: () => ({ host: '127.0.0.1', port: 5060 }) });
    endpoint.handle('REGISTER', (r) => createResponse(r, 200));
    const source: Source = { transport: 'UDP', address: '127.0.0.1', port: 40000, family: 4, connectionId: null, local: { address: '127.0.0.1', port: 5060 } };
    const request = (method: string) =>
      Buffer.from(
        [`${method} sip:example.test SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK${method}1`, 'Max-Forwards: 70', 'From: <sip:a@example.test>;tag=1', 'To: <sip:example.test>', `Call-ID: ${method}@t`, `CSeq: 1 ${method}`, 'Content-Length: 0', '', ''].join('\r\n'),
        'latin1',
      );
    endpoint.receive(request('MESSAGE'), source);
    endpoint.receive(request('FOOBAR'), source);
    endpoint.close();
    assert.match(sent[0], /^SIP\/2\.0 405 /);
    assert.match(sent[0], /\r\nAllow: OPTIONS, REGISTER\r\n/);
    assert.match(sent[1], /^SIP\/2\.0 501 /);
  });
});

// A handler that answers at once: no transaction is held for its request (nothing can arrive meanwhile), yet a
// retransmission after the answer gets the same bytes (a 2xx) or a fresh answer (a rejection, sent statelessly);
// one that answers later holds a transaction that absorbs retransmissions until then.
describe('SIP endpoint answers given at once and later', () => {
  it('re-sends a 2xx given at once for a retransmission, answers a rejection anew, absorbs while a handler works', async () => {
    const sent: string[] = [];
    const endpoint = new SipEndpoint({ logger: createLogger('silent'), supported: [], forceRport: false, serverHeader: null });
    endpoint.attach({ sendNow: (d) => void sent.push(d.toString('latin1')), send: async (d) => void sent.push(d.toString('latin1')), viaAddress: () => ({ host: '127.0.0.1', port: 5060 }) });
    let calls = 0;
    let later: (() => void) | null = null;
    endpoint.handle('REGISTER', (r) => (++calls, createResponse(r, 200)));
    endpoint.handle('MESSAGE', (r) => (++calls, sipError(r, Errors.AUTH_ERR_FORBIDDEN)));
    endpoint.handle('OPTIONS', (r) => (++calls, new Promise<SipResponse>((resolve) => (later = () => resolve(createResponse(r, 200))))));
    const source: Source = { transport: 'UDP', address: '127.0.0.1', port: 40000, family: 4, connectionId: null, local: { address: '127.0.0.1', port: 5060 } };
    const request = (method: string) =>
      Buffer.from(
        [`${method} sip:example.test SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK${method}1`, 'Max-Forwards: 70', 'From: <sip:a@example.test>;tag=1', 'To: <sip:example.test>', `Call-ID: ${method}@t`, `CSeq: 1 ${method}`, 'Content-Length: 0', '', ''].join('\r\n'),
        'latin1',
      );
    endpoint.receive(request('REGISTER'), source);
    assert.equal(endpoint.stats.serverTransactions, 1, 'only the 200 kept for retransmissions');
    endpoint.receive(request('REGISTER'), source);
    assert.deepEqual([calls, sent.length, sent[1]], [1, 2, sent[0]], 'the same 200, the handler not asked again');
    endpoint.receive(request('MESSAGE'), source);
    endpoint.receive(request('MESSAGE'), source);
    assert.equal(calls, 3, 'a rejection is not kept: the retransmission is answered anew');
    assert.match(sent[3], /^SIP\/2\.0 403 /);
    endpoint.receive(request('OPTIONS'), source);
    endpoint.receive(request('OPTIONS'), source);
    assert.deepEqual([calls, sent.length], [4, 4], 'absorbed while the handler works');
    later!();
    await new Promise((r) => setImmediate(r));
    assert.match(sent[4], /^SIP\/2\.0 200 /);
    endpoint.close();
  });
});

// requestWire (a NOTIFY fan-out's path): the caller's text with our Via first, Max-Forwards and Content-Length added,
// in a client transaction that the response's branch ends, its outcome told without a promise.
describe('SIP endpoint requestWire', () => {
  it('sends the text with Via, Max-Forwards and Content-Length, and tells the outcome the final response', () => {
    const sent: Buffer[] = [];
    const endpoint = new SipEndpoint({ logger: createLogger('silent'), supported: [], forceRport: false, serverHeader: null });
    endpoint.attach({ sendNow: () => {}, send: async (d) => void sent.push(d), viaAddress: () => ({ host: '192.0.2.1', port: 5060 }) });
    const body = Buffer.from('<presence/>');
    const outcomes: string[] = [];
    const dest = { transport: 'UDP' as const, address: '192.0.2.7', port: 5070, connectionId: null };
    const headers = 'From: <sip:alice@example.test>;tag=a\r\nTo: <sip:bob@example.test>;tag=b\r\nCall-ID: c1\r\nCSeq: 4 NOTIFY\r\nContent-Type: application/pidf+xml\r\n';
    endpoint.requestWire('NOTIFY', 'NOTIFY sip:bob@192.0.2.7:5070 SIP/2.0', headers, body, dest, {
      final: (res) => outcomes.push(`final ${res.status}`),
      failed: (err) => outcomes.push(`failed ${err.message}`),
    });
    const req = parseMessage(sent[0]) as SipRequest;
    assert.equal(req.method, 'NOTIFY');
    assert.equal(req.uri, 'sip:bob@192.0.2.7:5070');
    assert.equal(req.headers[0].name, 'Via');
    assert.match(req.get('Via')!, /^SIP\/2\.0\/UDP 192\.0\.2\.1:5060;branch=z9hG4bK[^;]+;rport$/);
    assert.equal(req.get('Max-Forwards'), '70');
    assert.equal(req.get('CSeq'), '4 NOTIFY');
    assert.equal(req.get('Content-Length'), String(body.length));
    assert.deepEqual(req.body, body);
    const branch = req.topVia()!.params.get('branch')!;
    const answer = (status: number) =>
      Buffer.from(`SIP/2.0 ${status} X\r\nVia: ${req.get('Via')}\r\nFrom: <sip:alice@example.test>;tag=a\r\nTo: <sip:bob@example.test>;tag=b\r\nCall-ID: c1\r\nCSeq: 4 NOTIFY\r\nContent-Length: 0\r\n\r\n`);
    const source: Source = { transport: 'UDP', address: '192.0.2.7', port: 5070, family: 4, connectionId: null, local: { address: '192.0.2.1', port: 5060 } };
    endpoint.receive(answer(481), source);
    endpoint.receive(answer(481), source); // a retransmission, absorbed
    endpoint.close();
    assert.ok(branch.length > 7);
    assert.deepEqual(outcomes, ['final 481']);
  });
});
