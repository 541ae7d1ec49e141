// INVITE transactions through the endpoint over real UDP and TCP sockets (RFC 3261 §17, RFC 6026): 100 Trying,
// the final non-2xx retransmitted until its ACK and the ACK absorbed hop by hop, the 2xx ACK handed to the TU,
// CANCEL matched to its INVITE (200 + 487) or 481, and the client side (Timer A, CANCEL after a provisional, the
// ACK for a non-2xx) against a raw socket playing the callee. T1 = 50 ms so Timer G and A show quickly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { SipEndpoint } from '../../src/sip/endpoint.ts';
import { parseMessage, type SipRequest, type SipResponse } from '../../src/sip/message/index.ts';
import { createResponse } from '../../src/sip/message/response.ts';
import { TransportLayer } from '../../src/sip/transport/layer.ts';
import { buildRequest, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';

const timers = { t1: 50, t2: 400, t4: 500 };

describe('INVITE transactions over real sockets', () => {
  let endpoint: SipEndpoint;
  let transports: TransportLayer;
  let port = 0;
  const acks: SipRequest[] = [];
  const cancelled: string[] = [];

  before(async () => {
    const log = pino({ level: process.env.SWITCHBOARD_TEST_LOG ?? 'warn' });
    endpoint = new SipEndpoint({ logger: log, supported: ['path'], forceRport: true, serverHeader: 'test', timers });
    transports = new TransportLayer({
      hosts: ['127.0.0.1'],
      port: 0,
      transports: ['UDP', 'TCP'],
      maxMessageSize: 65535,
      tcpIdleTimeoutMs: 60_000,
      tcpMaxConnections: 100,
      reusePort: false,
      advertisedHost: null,
      logger: log,
      onMessage: endpoint.receive,
      onStreamError: endpoint.streamError,
    });
    endpoint.attach(transports);
    port = (await transports.listen()).find((l) => l.transport === 'UDP')!.port;
    // A callee whose behaviour the Request-URI's user picks.
    endpoint.handleInvite((req, _ctx, txn) => {
      const user = /^sip:([^@]+)@/.exec(req.uri)?.[1];
      if (user === 'gone') {
        const res = createResponse(req, 480);
        res.stateless = true;
        txn.respond(res);
        return;
      }
      if (user === 'reject') {
        txn.respond(createResponse(req, 603));
        return;
      }
      setTimeout(() => {
        txn.respond(createResponse(req, 180));
        if (user === 'slow') txn.respond(createResponse(req, 486));
        if (user === 'busy') txn.respond(createResponse(req, 486));
        if (user === 'answer') {
          const ok = createResponse(req, 200);
          ok.append('Contact', '<sip:callee@127.0.0.1>');
          txn.respond(ok);
        }
        if (user === 'listener') {
          txn.onCancel(() => {
            cancelled.push(req.callId()!);
            txn.respond(createResponse(req, 487));
          });
        }
      }, user === 'slow' ? 400 : 20);
    });
    endpoint.handleAck((req) => acks.push(req));
  });
  after(async () => {
    endpoint.close();
    await transports.close();
  });

  const invite = (c: SipTestClient, user: string, callId?: string, branch?: string) =>
    buildRequest(c, { method: 'INVITE', uri: `sip:${user}@example.test`, from: '<sip:alice@example.test>', to: `<sip:${user}@example.test>`, callId, branch, contact: '<sip:alice@127.0.0.1>' });

  /** The ACK or CANCEL for an INVITE we sent: same branch (ACK for non-2xx, CANCEL) or a new one (2xx ACK). */
  function follow(inv: string, method: 'ACK' | 'CANCEL', toTag: string | null, branch?: string): string {
    let out = inv.replace(/^INVITE /, `${method} `).replace(/CSeq: (\d+) INVITE/, `CSeq: $1 ${method}`);
    if (toTag) out = out.replace(/\r\nTo: ([^\r]*)/, `\r\nTo: $1;tag=${toTag}`);
    if (branch) out = out.replace(/branch=[^;\r]+/, `branch=${branch}`);
    return out;
  }

  const tagOf = (r: SipResponseView) => /;tag=([^;>\s]+)/.exec(r.header('To')!)![1];

  for (const transport of ['UDP', 'TCP'] as const) {
    describe(`over ${transport}`, () => {
      let c: SipTestClient;
      before(async () => {
        c = await SipTestClient.open(transport, port);
      });
      after(() => c.close());

      it('sends 100 Trying when the handler has not answered within 200 ms (§17.2.1)', async () => {
        const inv = invite(c, 'slow');
        c.send(inv);
        assert.equal((await c.response()).status, 100);
        assert.equal((await c.response()).status, 180);
        const busy = await c.response();
        assert.equal(busy.status, 486);
        c.send(follow(inv, 'ACK', tagOf(busy)));
      });

      it('sends the callee\'s 180 and 486 (no 100 when it answers quickly); the ACK for the 486 is absorbed', async () => {
        const inv = invite(c, 'busy');
        c.send(inv);
        assert.equal((await c.response()).status, 180);
        const busy = await c.response();
        assert.equal(busy.status, 486);
        if (transport === 'UDP') {
          // No ACK yet: Timer G re-sends the 486 (T1 = 50 ms); a retransmitted INVITE gets it too.
          assert.equal((await c.response(1000)).status, 486, 'Timer G retransmission');
          c.send(inv);
          assert.equal((await c.response(1000)).status, 486);
        }
        c.send(follow(inv, 'ACK', tagOf(busy)));
        await sleep(transport === 'UDP' ? 150 : 0);
        while (!(await c.silent(50))); // drain retransmissions already in flight
        assert.ok(await c.silent(600), 'no retransmission after the ACK');
        assert.equal(acks.length, 0, 'a non-2xx ACK never reaches the TU');
      });

      it('passes the 2xx ACK (new branch, end to end) to the ACK handler', async () => {
        const inv = invite(c, 'answer');
        c.send(inv);
        let r: SipResponseView;
        do r = await c.response();
        while (r.status < 200);
        assert.equal(r.status, 200);
        c.send(follow(inv, 'ACK', tagOf(r), 'z9hG4bKack' + transport));
        for (let i = 0; i < 50 && acks.length === 0; i++) await sleep(20);
        assert.equal(acks.length, 1);
        assert.equal(acks.pop()!.callId(), /Call-ID: (\S+)/.exec(inv)![1]);
      });

      it('answers a synchronous rejection without 100 Trying', async () => {
        const inv = invite(c, 'reject');
        c.send(inv);
        const r = await c.response();
        assert.equal(r.status, 603);
        c.send(follow(inv, 'ACK', tagOf(r)));
      });

      it('sends a stateless rejection once, holds no transaction and absorbs its ACK by our To tag', async () => {
        const inv = invite(c, 'gone');
        const held = endpoint.stats.serverTransactions;
        c.send(inv);
        const r = await c.response();
        assert.equal(r.status, 480);
        assert.ok(endpoint.stats.serverTransactions <= held, 'no transaction held');
        assert.ok(await c.silent(400), 'no Timer G retransmission');
        c.send(inv);
        assert.equal((await c.response()).status, 480, 'a retransmitted INVITE is answered again');
        c.send(follow(inv, 'ACK', tagOf(r)));
        await sleep(100);
        assert.equal(acks.length, 0, 'the ACK is not passed on as a 2xx ACK');
      });

      it('answers CANCEL 200 and the INVITE 487 when the handler does not listen; an unknown CANCEL 481', async () => {
        const inv = invite(c, 'ring');
        c.send(inv);
        assert.equal((await c.response()).status, 180);
        c.send(follow(inv, 'CANCEL', null));
        const got = [await c.response(), await c.response()];
        const cancelOk = got.find((x) => /CANCEL/.test(x.header('CSeq')!));
        const terminated = got.find((x) => /INVITE/.test(x.header('CSeq')!));
        assert.equal(cancelOk?.status, 200);
        assert.equal(terminated?.status, 487);
        c.send(follow(inv, 'ACK', tagOf(terminated!)));
        const stray = buildRequest(c, { method: 'CANCEL', uri: 'sip:ring@example.test', from: '<sip:alice@example.test>', to: '<sip:ring@example.test>' });
        assert.equal((await c.request(stray)).status, 481);
      });

      it('tells a listening handler of the CANCEL, which answers 487 itself', async () => {
        const callId = `listener-${transport}@test`;
        const inv = invite(c, 'listener', callId);
        c.send(inv);
        assert.equal((await c.response()).status, 180);
        c.send(follow(inv, 'CANCEL', null));
        const got = [await c.response(), await c.response()];
        assert.deepEqual(got.map((x) => x.status).sort(), [200, 487]);
        assert.deepEqual(cancelled.splice(0), [callId]);
        c.send(follow(inv, 'ACK', tagOf(got.find((x) => x.status === 487)!)));
      });
    });
  }

  it('client side: retransmits with Timer A, sends CANCEL after the 180, and ACKs the 487 itself', async () => {
    const callee = await SipTestClient.open('UDP', port); // a raw socket playing the callee
    try {
      const req = parseMessage(Buffer.from(
        ['INVITE sip:bob@127.0.0.1 SIP/2.0', 'From: <sip:alice@example.test>;tag=x1', 'To: <sip:bob@example.test>', 'Call-ID: client-1@test', 'CSeq: 1 INVITE', 'Content-Length: 0', '', ''].join('\r\n'),
      )) as SipRequest;
      const seen: number[] = [];
      const failures: string[] = [];
      const handle = endpoint.invite(req, { transport: 'UDP', address: '127.0.0.1', port: callee.localPort }, {
        onResponse: (r: SipResponse) => seen.push(r.status),
        onFailure: (f) => failures.push(f),
      });
      const first = (await callee.next()).toString();
      assert.match(first, /^INVITE /);
      assert.match(first, new RegExp(`branch=${handle.branch}`));
      assert.match(await callee.next(1000), /^INVITE /, 'Timer A retransmission');
      handle.cancel('SIP;cause=200;text="Call completed elsewhere"');
      const answer = (status: number, inviteText: string) => {
        const head = inviteText.split('\r\n\r\n')[0].split('\r\n');
        const keep = head.filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l)).map((l) => (/^To:/i.test(l) && status > 100 ? l + ';tag=callee1' : l));
        return [`SIP/2.0 ${status} X`, ...keep, 'Content-Length: 0', '', ''].join('\r\n');
      };
      callee.send(answer(180, first));
      // INVITE retransmissions already on their way are skipped (timing on a shared machine).
      const nextOther = async (): Promise<string> => {
        for (;;) {
          const m = await callee.next(1000);
          if (!m.startsWith('INVITE ')) return m;
        }
      };
      const cancel = await nextOther();
      assert.match(cancel, /^CANCEL sip:bob@127\.0\.0\.1 SIP\/2\.0/);
      assert.match(cancel, new RegExp(`branch=${handle.branch}`));
      assert.match(cancel, /\r\nReason: SIP;cause=200;text="Call completed elsewhere"\r\n/);
      callee.send(answer(200, cancel));
      callee.send(answer(487, first));
      const ack = await nextOther();
      assert.match(ack, /^ACK sip:bob@127\.0\.0\.1 SIP\/2\.0/);
      assert.match(ack, /\r\nTo: <sip:bob@example\.test>;tag=callee1\r\n/);
      assert.match(ack, new RegExp(`branch=${handle.branch}`), 'the ACK for a non-2xx is in the INVITE transaction');
      assert.deepEqual(seen, [180, 487]);
      assert.deepEqual(failures, []);
      callee.send(answer(487, first));
      assert.match(await nextOther(), /^ACK /, 'a retransmitted 487 is ACKed again');
      assert.deepEqual(seen, [180, 487], 'and not reported again');
    } finally {
      callee.close();
    }
  });
});
