// Non-INVITE client transactions (RFC 3261 §17.1.2) on a mocked clock: Timer E's retransmissions (T1 doubling to
// T2, T2 in Proceeding), Timer F's timeout at 64*T1, Timer K absorbing retransmitted responses for T4, and a
// transport error ending the transaction.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { SipResponse } from '../../src/sip/message/index.ts';
import { ClientTransactionTable } from '../../src/sip/transaction/client.ts';
import { T1, T2, T4 } from '../../src/sip/transaction/server.ts';
import type { Destination } from '../../src/sip/transport/types.ts';

const DEST: Destination = { transport: 'UDP', address: '192.0.2.7', port: 5060, connectionId: null };
/** Advances the mocked clock in steps of 10 ms, so timers see the time they fire at. */
const advance = (ms: number) => {
  for (let t = 0; t < ms; t += 10) mock.timers.tick(Math.min(10, ms - t));
};
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('non-INVITE client transactions', () => {
  let table: ClientTransactionTable;
  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    table = new ClientTransactionTable();
  });
  afterEach(() => {
    table.close();
    mock.timers.reset();
  });

  function start(reliable: boolean, transmit: () => Promise<void> = () => Promise.resolve(), branch = 'z9hG4bK1') {
    const sends: number[] = [];
    const outcome: { res?: SipResponse; err?: Error } = {};
    table
      .start(branch, 'NOTIFY', DEST, {
        reliable,
        transmit: () => {
          sends.push(Date.now() - 1_000_000);
          return transmit();
        },
      })
      .then(
        (res) => (outcome.res = res),
        (err: Error) => (outcome.err = err),
      );
    return { sends, outcome };
  }

  it('retransmits over UDP at T1, 2·T1, 4·T1, … capped at T2, and times out at 64·T1', async () => {
    const { sends, outcome } = start(false);
    advance(64 * T1 - 1);
    await flush();
    const expected = [0];
    for (let at = T1, gap = T1; at < 64 * T1; gap = Math.min(gap * 2, T2), at += gap) expected.push(at);
    assert.deepEqual(sends, expected);
    assert.equal(outcome.err, undefined);
    mock.timers.tick(1);
    await flush();
    assert.match(outcome.err!.message, /within 64\*T1/);
    assert.equal(table.size, 0);
  });

  it('keeps to T2 in Proceeding; a final response ends it and Timer K absorbs its retransmission', async () => {
    const { sends, outcome } = start(false);
    assert.equal(table.receive('z9hG4bK1', 'NOTIFY', new SipResponse(100, 'Trying')), true);
    advance(T1 + T2);
    assert.deepEqual(sends, [0, T1, T1 + T2]);
    assert.equal(table.receive('z9hG4bK1', 'NOTIFY', new SipResponse(200, 'OK')), true);
    await flush();
    assert.equal(outcome.res!.status, 200);
    advance(T4 - 10);
    assert.equal(sends.length, 3, 'no retransmission after the final response');
    assert.equal(table.receive('z9hG4bK1', 'NOTIFY', new SipResponse(200, 'OK')), true, 'absorbed in Timer K');
    advance(1010);
    assert.equal(table.receive('z9hG4bK1', 'NOTIFY', new SipResponse(200, 'OK')), false, 'gone after Timer K');
    assert.equal(table.size, 0);
  });

  it('over a reliable transport: no retransmissions, ended at once by the final response, or by Timer F', async () => {
    const first = start(true);
    advance(64 * T1 - 1);
    assert.deepEqual(first.sends, [0]);
    mock.timers.tick(1);
    await flush();
    assert.match(first.outcome.err!.message, /within 64\*T1/);
    const second = start(true);
    assert.equal(table.receive('z9hG4bK1', 'NOTIFY', new SipResponse(481, 'Gone')), true);
    await flush();
    assert.equal(second.outcome.res!.status, 481);
    assert.equal(table.size, 0);
  });

  it('each transaction started at its own time retransmits at its own T1; one answered and one failed never do', async () => {
    const a = start(false, undefined, 'z9hG4bKa');
    advance(100);
    const b = start(false, undefined, 'z9hG4bKb');
    const c = start(false, undefined, 'z9hG4bKc');
    advance(100);
    const d = start(false, undefined, 'z9hG4bKd');
    assert.equal(table.receive('z9hG4bKb', 'NOTIFY', new SipResponse(200, 'OK')), true);
    table.close(); // d and the others end with the table: nothing of theirs may fire after
    table = new ClientTransactionTable();
    const e = start(false, undefined, 'z9hG4bKe');
    advance(T1 + 10);
    assert.deepEqual([a.sends, b.sends, c.sends, d.sends], [[0], [100], [100], [200]]);
    assert.deepEqual(e.sends, [200, 200 + T1]);
    const f = start(false, undefined, 'z9hG4bKf');
    advance(100);
    const g = start(false, undefined, 'z9hG4bKg');
    assert.equal(table.receive('z9hG4bKf', 'NOTIFY', new SipResponse(200, 'OK')), true);
    advance(T1);
    assert.deepEqual(f.sends, [T1 + 210]);
    assert.deepEqual(g.sends, [T1 + 310, 2 * T1 + 310]);
  });

  it('fails the transaction on a transport error (§17.1.4)', async () => {
    const { outcome } = start(false, () => Promise.reject(new Error('EHOSTUNREACH')));
    await flush();
    assert.match(outcome.err!.message, /transport error sending NOTIFY: EHOSTUNREACH/);
    assert.equal(table.size, 0);
    mock.timers.tick(64 * T1);
  });
});
