// Generic UAS behaviour over real sockets: OPTIONS, 405/501 with Allow, 420 with Unsupported, CANCEL without a
// transaction, retransmissions absorbed and answered with the same response, received/rport on the Via.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

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

      it('answers a known but unhandled method 405 with Allow', async () => {
        const r = await c.request(req('MESSAGE'));
        assert.equal(r.status, 405);
        assert.match(r.header('Allow')!, /REGISTER/);
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
