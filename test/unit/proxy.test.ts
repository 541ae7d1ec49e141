// Pure logic of the proxy: the signed Record-Route and route preprocessing (§16.4), q groups, configured URIs as
// destinations, and the fork's response context (§16.7): best response, merged challenges, 6xx, serial groups.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { EventBus } from '../../src/bus/event-bus.ts';
import { CallAccounting } from '../../src/proxy/accounting.ts';
import { Fork, type Target } from '../../src/proxy/fork.ts';
import { groupByQ, uriDestination } from '../../src/proxy/proxy.ts';
import { decodeFlow, encodeFlow, preprocessRoutes, RecordRouter, type Flow } from '../../src/proxy/record-route.ts';
import { parseMessage, SipResponse, type SipRequest } from '../../src/sip/message/index.ts';
import type { InviteClientCallbacks } from '../../src/sip/transaction/invite-table.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';

const caller: Flow = { transport: 'UDP', address: '192.0.2.1', port: 5060, connectionId: null, node: 'n1' };
const callee: Flow = { transport: 'WSS', address: '198.51.100.7', port: 40123, connectionId: 123456789, node: 'n1' };

function request(extra: string[] = [], uri = 'sip:bob@example.test'): SipRequest {
  const text = [`INVITE ${uri} SIP/2.0`, 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa', 'From: <sip:alice@example.test>;tag=f1', 'To: <sip:bob@example.test>', 'Call-ID: c1@test', 'CSeq: 1 INVITE', 'Max-Forwards: 70', ...extra, 'Content-Length: 0', '', ''].join('\r\n');
  return parseMessage(Buffer.from(text)) as SipRequest;
}

const isUs = (u: { host: string; port: number | null }) => u.host === '203.0.113.5' && (u.port ?? 5060) === 5060;

describe('signed Record-Route', () => {
  const router = new RecordRouter(randomBytes(32));

  it('round-trips both flows and refuses a changed flow, Call-ID or key', () => {
    const uri = router.uri('203.0.113.5', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const req = request([`Route: <${uri}>`]);
    const r = preprocessRoutes(req, router, isUs);
    assert.equal(r.kind, 'ours');
    assert.deepEqual(r.kind === 'ours' && r.route.callee, callee);
    assert.equal(req.get('Route'), undefined, 'our Route popped');
    const other = request([`Route: <${uri}>`]);
    other.set('Call-ID', 'c2@test');
    assert.equal(preprocessRoutes(other, router, isUs).kind, 'forged');
    const tampered = request([`Route: <${uri.replace(/fe=[^;]+/, `fe=${encodeFlow({ ...callee, address: '127.0.0.2' })}`)}>`]);
    assert.equal(preprocessRoutes(tampered, router, isUs).kind, 'forged');
    assert.equal(preprocessRoutes(request([`Route: <${uri}>`]), new RecordRouter(randomBytes(32)), isUs).kind, 'forged');
  });

  it('a route this router signed verifies as one another router with the key decodes it (remembered, not decoded)', () => {
    const key = randomBytes(32);
    const signer = new RecordRouter(key);
    const uri = signer.uri('203.0.113.5', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const mine = preprocessRoutes(request([`Route: <${uri}>`]), signer, isUs);
    const theirs = preprocessRoutes(request([`Route: <${uri}>`]), new RecordRouter(key), isUs);
    assert.ok(mine.kind === 'ours' && theirs.kind === 'ours');
    assert.deepEqual({ ...mine.route, tag: undefined }, { ...theirs.route, tag: undefined });
    assert.equal(mine.route.tag, 'f1');
    const forged = request([`Route: <${uri.replace(/sb=[^;>]+/, 'sb=AAAAAAAAAAAAAAAAAAAAAA')}>`]);
    assert.equal(preprocessRoutes(forged, signer, isUs).kind, 'forged');
  });

  it('pops a double Record-Route and a pre-loaded Route to us, and leaves the next hop', () => {
    const a = router.uri('203.0.113.5', 5060, 'WSS', 'c1@test', 'f1', caller, callee);
    const b = router.uri('203.0.113.5', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const req = request([`Route: <${a}>, <${b}>`, 'Route: <sip:edge.example.net;lr>']);
    assert.equal(preprocessRoutes(req, router, isUs).kind, 'ours');
    assert.deepEqual(req.values('Route'), ['<sip:edge.example.net;lr>']);
    const preloaded = request(['Route: <sip:203.0.113.5;lr>']);
    assert.equal(preprocessRoutes(preloaded, router, isUs).kind, 'none');
    assert.equal(preloaded.get('Route'), undefined);
  });

  it('fixes up after a strict router: our URI in the Request-URI, the last Route becomes it (§16.4)', () => {
    const ours = router.uri('203.0.113.5', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const req = request(['Route: <sip:bob@198.51.100.7:40123>'], ours);
    assert.equal(preprocessRoutes(req, router, isUs).kind, 'ours');
    assert.equal(req.uri, 'sip:bob@198.51.100.7:40123');
    assert.equal(req.get('Route'), undefined);
  });

  it('refuses more than 16 Route values', () => {
    const req = request([`Route: ${Array.from({ length: 17 }, (_, i) => `<sip:10.0.0.${i};lr>`).join(', ')}`]);
    assert.equal(preprocessRoutes(req, router, isUs).kind, 'too-many');
  });

  it('decodes only well-formed flow tokens', () => {
    assert.deepEqual(decodeFlow(encodeFlow(callee)), callee);
    assert.equal(decodeFlow(Buffer.from('SCTP|1.2.3.4|5060||n').toString('base64url')), null);
    assert.equal(decodeFlow(Buffer.from('UDP|1.2.3.4|70000||n').toString('base64url')), null);
    assert.equal(decodeFlow('x'.repeat(500)), null);
  });

  it("a fellow node's signed Record-Route on top is followed, not popped; ours on top of another is popped and verified once parsed", () => {
    const key = randomBytes(32);
    const fellow = router.uri('203.0.113.9', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const signed = new RecordRouter(key).uri('203.0.113.9', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const req = request([`Route: <${signed}>, <sip:edge.example.net;lr>`]);
    const r = preprocessRoutes(req, new RecordRouter(key), isUs);
    assert.equal(r.kind, 'fellow');
    assert.equal(r.kind === 'fellow' && r.next.host, '203.0.113.9');
    assert.deepEqual(req.values('Route'), [`<${signed}>`, '<sip:edge.example.net;lr>'], 'nothing removed for the fellow');
    // Not signed under our key: neither fellow nor ours, and left alone.
    const foreign = request([`Route: <${fellow}>`]);
    assert.equal(preprocessRoutes(foreign, new RecordRouter(key), isUs).kind, 'none');
    assert.deepEqual(foreign.values('Route'), [`<${fellow}>`]);
    // Ours on top, then another: ours popped (the top entry's one parse serves the pop), the next one stays.
    const ours = router.uri('203.0.113.5', 5060, 'UDP', 'c1@test', 'f1', caller, callee);
    const both = request([`Route: <${ours}>, <${fellow}>`]);
    const rb = preprocessRoutes(both, router, isUs);
    assert.equal(rb.kind, 'ours');
    assert.deepEqual(both.values('Route'), [`<${fellow}>`]);
  });
});

describe('call accounting topics', () => {
  it("encode the callee's domain and user as topic words, the same for every call of a domain", () => {
    const topics: string[] = [];
    const bus = { publish: (topic: string) => void topics.push(topic) } as unknown as EventBus;
    const acc = new CallAccounting(bus, null);
    for (const callee of ['bob@example.test', 'carol@example.test', 'dave@*', 'eve@other.test']) {
      const info = { callId: `c-${callee}`, caller: 'alice@example.test', callee };
      acc.started(info, 1);
      acc.final(info, 200, performance.now());
    }
    assert.deepEqual(topics, [
      'call.started.example%2Etest.bob', 'call.answered.example%2Etest.bob',
      'call.started.example%2Etest.carol', 'call.answered.example%2Etest.carol',
      'call.started.%2A.dave', 'call.answered.%2A.dave',
      'call.started.other%2Etest.eve', 'call.answered.other%2Etest.eve',
    ]);
  });
});

describe('targets', () => {
  const b = (q: number | null, updatedAt: number) => ({ q, updatedAt }) as BindingRecord;

  it('groups bindings by q, highest first, no q counting as 1.0, newest first within a group', () => {
    const groups = groupByQ([b(0.5, 1), b(null, 1), b(1, 2), b(0.1, 1)]);
    assert.deepEqual(groups.map((g) => g.map((x) => [x.q, x.updatedAt])), [[[1, 2], [null, 1]], [[0.5, 1]], [[0.1, 1]]]);
  });

  it('takes configured URIs with IP addresses only (no DNS on the call path)', () => {
    assert.deepEqual(uriDestination('sip:192.0.2.10:5070;transport=tcp'), { transport: 'TCP', address: '192.0.2.10', port: 5070 });
    assert.deepEqual(uriDestination('sip:vm@[2001:db8::1]'), { transport: 'UDP', address: '2001:db8::1', port: 5060 });
    assert.equal(uriDestination('sip:trunk.example.net'), null);
  });
});

describe('the response context (§16.7)', () => {
  /** A fork over fake branches: each invite is recorded, and the test answers it. */
  function setup(groups: number[], serialMs = 0) {
    const req = request();
    const sent: SipResponse[] = [];
    const branches: Array<{ cb: InviteClientCallbacks; cancelled: string | null | undefined }> = [];
    const target = (): Target => ({ uri: 'sip:d@192.0.2.9', dest: { transport: 'UDP', address: '192.0.2.9', port: 5060 }, routes: [], recordRoute: [] });
    const fork = new Fork({
      request: req,
      groups: groups.map((n) => Array.from({ length: n }, target)),
      invite: (_r, _d, cb, branch) => {
        const entry = { cb, cancelled: undefined as string | null | undefined };
        branches.push(entry);
        return { branch, state: 'calling', cancel: (reason?: string) => void (entry.cancelled = reason ?? null), handOver: (relay: InviteClientCallbacks) => void (entry.cb = relay) };
      },
      branchId: (i) => `z9hG4bKt${i}`,
      respond: (res) => (sent.push(res), true),
      timerCMs: 60_000,
      groupTimeoutMs: serialMs,
    });
    fork.start();
    const answer = (i: number, status: number, headers: Array<[string, string]> = []) => {
      const res = new SipResponse(status, 'X');
      res.append('Via', 'SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKt' + i);
      res.append('Via', 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa');
      for (const [k, v] of headers) res.append(k, v);
      branches[i].cb.onResponse(res);
    };
    return { fork, sent, branches, answer };
  }

  it('answers the lowest class, preferring a telling 4xx over a timeout, once every branch ended', () => {
    const { sent, answer, branches } = setup([3]);
    answer(0, 486);
    branches[1].cb.onFailure('timeout');
    assert.equal(sent.length, 0, 'a branch is still out');
    answer(2, 603 - 100); // 503
    assert.equal(sent.length, 1);
    assert.equal(sent[0].status, 486);
    assert.equal(sent[0].values('Via').length, 1, 'our Via removed');
  });

  it('merges the challenges of every 401/407', () => {
    const { sent, answer } = setup([2]);
    answer(0, 407, [['Proxy-Authenticate', 'Digest realm="a"']]);
    answer(1, 401, [['WWW-Authenticate', 'Digest realm="b"']]);
    assert.equal(sent[0].status, 407);
    assert.deepEqual(sent[0].getAll('Proxy-Authenticate'), ['Digest realm="a"']);
    assert.deepEqual(sent[0].getAll('WWW-Authenticate'), ['Digest realm="b"']);
  });

  it('turns a lone 503 into 500', () => {
    const { sent, answer } = setup([1]);
    answer(0, 503);
    assert.equal(sent[0].status, 500);
  });

  it('stops at a 6xx: the others are cancelled and the 6xx is the answer, with no next group', () => {
    const { sent, answer, branches } = setup([2, 1]);
    answer(0, 180);
    answer(1, 180);
    answer(0, 603);
    assert.match(String(branches[1].cancelled), /cause=600/);
    assert.equal(branches.length, 2, 'the next group never starts');
    assert.deepEqual(sent.map((r) => r.status), [180, 180, 603]);
  });

  it('forwards every 2xx and cancels the others with cause=200', () => {
    const { sent, answer, branches } = setup([2]);
    answer(1, 180);
    answer(0, 200);
    answer(1, 200); // answered too, before its CANCEL arrived: forwarded as well (RFC 6026)
    assert.match(String(branches[1].cancelled), /cause=200/);
    assert.deepEqual(sent.map((r) => r.status), [180, 200, 200]);
  });

  it('once answered, hands its branches to a relay that passes only 2xx upstream, our Via removed', () => {
    const { sent, answer, branches } = setup([3]);
    answer(0, 180);
    answer(1, 200);
    assert.equal(sent.length, 2);
    answer(2, 183); // a provisional from a cancelled branch: not upstream after the answer
    answer(2, 487); // its CANCEL's answer: not upstream either
    answer(1, 200); // a retransmitted 2xx (Accepted, RFC 6026)
    answer(0, 200); // another branch answered before its CANCEL arrived
    assert.deepEqual(sent.map((r) => r.status), [180, 200, 200, 200]);
    for (const r of sent) assert.deepEqual(r.values('Via'), ['SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa'], 'our Via popped');
    assert.ok(branches.every((b) => b.cb === branches[0].cb), 'every branch handed to the one relay');
  });

  it('rings the next q group when one has declined, and after the serial timeout', async () => {
    const a = setup([1, 1]);
    a.answer(0, 486);
    assert.equal(a.branches.length, 2, 'group 2 started when group 1 declined');
    a.answer(1, 200);
    assert.equal(a.sent.at(-1)!.status, 200);
    const b = setup([1, 1], 50);
    b.answer(0, 180);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(b.branches.length, 2, 'group 2 started after the timeout');
    assert.equal(b.branches[0].cancelled, null, 'group 1 cancelled');
  });

  it('answers 487 at once when the caller cancels, cancelling every branch', () => {
    const { fork, sent, answer, branches } = setup([2]);
    answer(0, 180);
    fork.cancel();
    assert.equal(branches[0].cancelled, null);
    assert.equal(branches[1].cancelled, null, 'a branch without a provisional gets its CANCEL when one comes (§9.1)');
    assert.equal(sent.at(-1)!.status, 487);
  });
});
