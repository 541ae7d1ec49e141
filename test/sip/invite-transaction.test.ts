// INVITE transaction state machines (RFC 3261 §17.1.1, §17.2.1, RFC 6026) with T1 = 20 ms: what is sent, when,
// and which state each event leads to. Counts are bounds, not exact numbers, so a loaded machine cannot fail them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseMessage, type SipRequest, type SipResponse } from '../../src/sip/message/index.ts';
import { InviteClientTransaction } from '../../src/sip/transaction/invite-client.ts';
import { InviteServerTransaction } from '../../src/sip/transaction/invite-server.ts';

const timers = { t1: 20, t2: 80, t4: 100 };

const INVITE = [
  'INVITE sip:bob@example.test SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKproxy1;rport',
  'Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKalice1;rport',
  'Max-Forwards: 69',
  'Route: <sip:edge.example.test;lr>',
  'From: <sip:alice@example.test>;tag=a1',
  'To: <sip:bob@example.test>',
  'Call-ID: call-1@test',
  'CSeq: 7 INVITE',
  'Contact: <sip:alice@127.0.0.1:5080>',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

function invite(): SipRequest {
  return parseMessage(Buffer.from(INVITE)) as SipRequest;
}

function response(status: number, toTag = 'b1'): SipResponse {
  const text = [
    `SIP/2.0 ${status} X`,
    'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKproxy1;rport',
    'Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKalice1;rport',
    'From: <sip:alice@example.test>;tag=a1',
    `To: <sip:bob@example.test>${status > 100 ? ';tag=' + toTag : ''}`,
    'Call-ID: call-1@test',
    'CSeq: 7 INVITE',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return parseMessage(Buffer.from(text)) as SipResponse;
}

function server(reliable: boolean) {
  const sent: string[] = [];
  const events: string[] = [];
  const txn = new InviteServerTransaction({
    reliable,
    timers,
    send: (d) => sent.push(d.toString()),
    onTerminated: () => events.push('terminated'),
    onAckTimeout: () => events.push('ack-timeout'),
  });
  return { txn, sent, events };
}

function client(reliable: boolean, failTransport = false) {
  const sent: string[] = [];
  const cancels: SipRequest[] = [];
  const seen: number[] = [];
  const events: string[] = [];
  const txn = new InviteClientTransaction(invite(), {
    reliable,
    timers,
    transmit: async (d) => {
      if (failTransport) throw new Error('unreachable');
      sent.push(d.toString());
    },
    sendCancel: (c) => cancels.push(c),
    onResponse: (r) => seen.push(r.status),
    onFailure: (reason) => events.push(reason),
    onTerminated: () => events.push('terminated'),
  });
  return { txn, sent, cancels, seen, events };
}

describe('INVITE server transaction', () => {
  it('re-sends the last provisional for a retransmitted INVITE in Proceeding', () => {
    const { txn, sent } = server(false);
    txn.retransmission();
    assert.equal(sent.length, 0, 'nothing to re-send before a response');
    txn.respond(180, Buffer.from('180'));
    txn.retransmission();
    assert.deepEqual(sent, ['180', '180']);
    txn.terminate();
  });

  it('retransmits a final non-2xx with Timer G until the ACK, then absorbs ACK copies and ends after Timer I', async () => {
    const { txn, sent, events } = server(false);
    txn.respond(486, Buffer.from('486'));
    assert.equal(txn.state, 'completed');
    await sleep(160); // G at 20, 60, 140 (doubling to T2 = 80)
    const before = sent.length;
    assert.ok(before >= 2, `Timer G retransmitted (${before})`);
    txn.retransmission();
    assert.equal(sent.length, before + 1, 'a retransmitted INVITE gets the final again');
    assert.equal(txn.ack(), true);
    assert.equal(txn.state, 'confirmed');
    const afterAck = sent.length;
    assert.equal(txn.ack(), true, 'an ACK copy is absorbed');
    await sleep(60);
    assert.equal(sent.length, afterAck, 'no retransmission after the ACK');
    await sleep(200);
    assert.deepEqual(events, ['terminated'], 'Timer I ended it');
  });

  it('ends with an ACK timeout after Timer H without an ACK', async () => {
    const { txn, events } = server(false);
    txn.respond(404, Buffer.from('404'));
    await sleep(64 * timers.t1 + 200);
    assert.deepEqual(events, ['terminated', 'ack-timeout']);
  });

  it('does not retransmit over a reliable transport and ends at once on the ACK (Timer I = 0)', async () => {
    const { txn, sent, events } = server(true);
    txn.respond(603, Buffer.from('603'));
    await sleep(100);
    assert.equal(sent.length, 1);
    txn.ack();
    assert.deepEqual(events, ['terminated']);
  });

  it('enters Accepted on a 2xx (RFC 6026): further 2xx go out, non-2xx and ACKs are not its business', async () => {
    const { txn, sent, events } = server(false);
    txn.respond(200, Buffer.from('200a'));
    assert.equal(txn.state, 'accepted');
    assert.equal(txn.respond(200, Buffer.from('200b')), true, 'a second 2xx (another fork) is sent');
    assert.equal(txn.respond(486, Buffer.from('486')), false);
    txn.retransmission();
    assert.deepEqual(sent, ['200a', '200b'], 'a retransmitted INVITE is absorbed');
    assert.equal(txn.ack(), false, 'an ACK in Accepted is for the TU');
    await sleep(64 * timers.t1 + 200);
    assert.deepEqual(events, ['terminated'], 'Timer L ended it');
  });

  it('refuses a second final non-2xx', () => {
    const { txn, sent } = server(false);
    txn.respond(486, Buffer.from('486'));
    assert.equal(txn.respond(500, Buffer.from('500')), false);
    assert.deepEqual(sent, ['486']);
    txn.terminate();
  });

  it('tells its TU of a CANCEL only while in Proceeding, once', () => {
    const { txn } = server(false);
    let told = 0;
    txn.onCancel(() => told++);
    assert.equal(txn.hasCancelListener, true);
    assert.equal(txn.cancel(), true);
    assert.equal(txn.cancel(), false);
    assert.equal(told, 1);
    assert.equal(txn.isCancelled, true);
    txn.respond(487, Buffer.from('487'));
    const other = server(false).txn;
    other.respond(200, Buffer.from('200'));
    assert.equal(other.cancel(), false, 'nothing to cancel after the final response');
    txn.terminate();
    other.terminate();
  });

  it('answers 408 through its TU when the TU never answers', async () => {
    const events: string[] = [];
    const txn = new InviteServerTransaction({
      reliable: true,
      timers,
      send: () => {},
      onTerminated: () => events.push('terminated'),
      proceedingLimitMs: 50,
      onProceedingTimeout: () => {
        events.push('stuck');
        txn.respond(408, Buffer.from('408'));
      },
    });
    await sleep(120);
    assert.deepEqual(events, ['stuck']);
    assert.equal(txn.finalStatus, 408);
    txn.terminate();
  });
});

describe('INVITE client transaction', () => {
  it('retransmits with Timer A (doubling) until a provisional, then stops; Timer B does not run in Proceeding', async () => {
    const { txn, sent, seen, events } = client(false);
    txn.start();
    await sleep(100); // A at 20, 60 (and 140)
    assert.ok(sent.length >= 2 && sent.length <= 4, `INVITE sent ${sent.length} times`);
    txn.receive(response(100));
    txn.receive(response(180));
    assert.deepEqual(seen, [180], '100 is absorbed, 180 goes to the TU');
    const n = sent.length;
    await sleep(64 * timers.t1 + 200);
    assert.equal(sent.length, n, 'no retransmission in Proceeding');
    assert.deepEqual(events, [], 'no Timer B in Proceeding');
    txn.terminate();
  });

  it('times out with Timer B when nothing answers', async () => {
    const { txn, events } = client(false);
    txn.start();
    await sleep(64 * timers.t1 + 200);
    assert.deepEqual(events, ['terminated', 'timeout']);
  });

  it('fails on a transport error', async () => {
    const { txn, events } = client(true, true);
    txn.start();
    await sleep(20);
    assert.deepEqual(events, ['terminated', 'transport']);
  });

  it('fails on a transport error its host reports (transportError), but not once a final response came', () => {
    const { txn, events } = client(false);
    txn.start();
    txn.transportError();
    assert.deepEqual(events, ['terminated', 'transport']);
    const answered = client(false);
    answered.txn.start();
    answered.txn.receive(response(200));
    answered.txn.transportError();
    assert.deepEqual(answered.events, [], 'Accepted: a late send error changes nothing');
    answered.txn.terminate();
  });

  it('ACKs a non-2xx itself (§17.1.1.3), again for each retransmitted final, and reports it once', async () => {
    const { txn, sent, seen, events } = client(false);
    txn.start();
    txn.receive(response(486));
    assert.deepEqual(seen, [486]);
    assert.equal(txn.state, 'completed');
    const ack = sent[sent.length - 1];
    assert.match(ack, /^ACK sip:bob@example\.test SIP\/2\.0\r\n/);
    assert.match(ack, /\r\nVia: SIP\/2\.0\/UDP 127\.0\.0\.1:5070;branch=z9hG4bKproxy1;rport\r\n/);
    assert.equal((ack.match(/\r\nVia:/g) ?? []).length, 1, 'only the top Via');
    assert.match(ack, /\r\nTo: <sip:bob@example\.test>;tag=b1\r\n/, 'the To of the response');
    assert.match(ack, /\r\nCSeq: 7 ACK\r\n/);
    assert.match(ack, /\r\nRoute: <sip:edge\.example\.test;lr>\r\n/);
    assert.match(ack, /\r\nFrom: <sip:alice@example\.test>;tag=a1\r\n/);
    txn.receive(response(486));
    assert.equal(sent[sent.length - 1], ack, 'the final again: the ACK again');
    assert.deepEqual(seen, [486], 'a retransmitted final is not reported');
    await sleep(64 * timers.t1 + 200);
    assert.deepEqual(events, ['terminated'], 'Timer D ended it');
  });

  it('passes every 2xx to the TU in Accepted (RFC 6026) and sends no ACK for them', () => {
    const { txn, sent, seen } = client(true);
    txn.start();
    txn.receive(response(200, 'x'));
    txn.receive(response(200, 'x'));
    txn.receive(response(200, 'y'));
    assert.deepEqual(seen, [200, 200, 200]);
    assert.equal(sent.length, 1, 'only the INVITE: the 2xx ACK is end to end');
    assert.equal(txn.state, 'accepted');
    txn.terminate();
  });

  it('holds a CANCEL until a provisional arrives (§9.1) and builds it from the INVITE', () => {
    const { txn, cancels } = client(false);
    txn.start();
    txn.cancel('SIP;cause=200;text="Call completed elsewhere"');
    assert.equal(cancels.length, 0, 'no CANCEL before a provisional');
    txn.receive(response(180));
    assert.equal(cancels.length, 1);
    const c = cancels[0];
    assert.equal(c.method, 'CANCEL');
    assert.equal(c.uri, 'sip:bob@example.test');
    assert.equal(c.vias().length, 1);
    assert.equal(c.topVia()!.params.get('branch'), 'z9hG4bKproxy1', 'the INVITE branch');
    assert.deepEqual(c.cseq(), { seq: 7, method: 'CANCEL' });
    assert.equal(c.get('To'), '<sip:bob@example.test>', 'the To of the INVITE, no tag');
    assert.equal(c.get('Reason'), 'SIP;cause=200;text="Call completed elsewhere"');
    txn.cancel();
    txn.receive(response(183));
    assert.equal(cancels.length, 1, 'one CANCEL');
    txn.terminate();
  });

  it('gives up 64*T1 after its CANCEL when the callee never answers', async () => {
    const { txn, cancels, events } = client(true);
    txn.start();
    txn.receive(response(180));
    txn.cancel();
    assert.equal(cancels.length, 1);
    await sleep(64 * timers.t1 + 200);
    assert.deepEqual(events, ['terminated', 'timeout']);
  });

  it('does not cancel after a final response', () => {
    const { txn, cancels } = client(true);
    txn.start();
    txn.receive(response(180));
    txn.receive(response(200));
    txn.cancel();
    assert.equal(cancels.length, 0);
    txn.terminate();
  });
});
