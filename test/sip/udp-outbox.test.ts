// UDP sends leave together at the turn's end (src/sip/transport/udp.ts, enqueue): order kept across every kind of
// send, the queue bounded, a turn's stragglers sent before the next datagram is handled, errors still told.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { UdpTransport } from '../../src/sip/transport/udp.ts';
import type { Destination, Source } from '../../src/sip/transport/types.ts';

describe('UDP outbox', () => {
  let transport: UdpTransport;
  let peer: dgram.Socket;
  let to: Destination;
  let port: number;
  const received: string[] = [];
  let onMessage: (data: Buffer, source: Source) => void = () => {};
  const errors: Error[] = [];
  const turn = () => new Promise<void>((r) => setImmediate(r));
  const arrived = async (n: number) => {
    for (let i = 0; i < 200 && received.length < n; i++) await new Promise((r) => setTimeout(r, 5));
    return received.splice(0);
  };

  before(async () => {
    transport = new UdpTransport({ hosts: ['127.0.0.1'], port: 0, maxMessageSize: 65535, onMessage: (d, s) => onMessage(d, s), onError: (e) => void errors.push(e) });
    [{ port }] = await transport.listen();
    peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    peer.on('message', (m) => received.push(m.toString()));
    to = { transport: 'UDP', address: '127.0.0.1', port: peer.address().port };
  });
  after(async () => {
    await transport.close();
    peer.close();
  });

  it('holds a turn\u2019s sends until its end, then sends them in order, whatever the kind of send', async () => {
    transport.sendNow(Buffer.from('a'), to);
    const outcome: Array<Error | null> = [];
    transport.sendReporting(Buffer.from('b'), to, (err) => void outcome.push(err));
    const sent = transport.send(Buffer.from('c'), to);
    transport.sendNow(Buffer.from('d'), to);
    assert.equal(transport.queued, 4, 'nothing handed to the kernel inside the turn');
    await turn();
    assert.equal(transport.queued, 0, 'all of them at the turn\u2019s end');
    await sent;
    assert.deepEqual(await arrived(4), ['a', 'b', 'c', 'd']);
    assert.deepEqual(outcome, [null]);
  });

  it('sends at once when a turn queues 64, so the queue stays bounded', async () => {
    for (let i = 0; i < 63; i++) transport.sendNow(Buffer.from(`n${i}`), to);
    assert.equal(transport.queued, 63);
    transport.sendNow(Buffer.from('n63'), to);
    assert.equal(transport.queued, 0, 'the 64th sent the lot');
    transport.sendNow(Buffer.from('n64'), to);
    assert.equal(transport.queued, 1);
    await turn();
    const got = await arrived(65);
    assert.deepEqual(got, Array.from({ length: 65 }, (_, i) => `n${i}`));
  });

  it('sends what was queued after the turn\u2019s flush (a group commit\u2019s 200 OKs) before the next datagram is handled', async () => {
    await turn();
    // The transport's immediate ran in an earlier check phase; this immediate is queued after it, like the
    // location store's group commit, whose waiters answer after the outbox was flushed.
    transport.sendNow(Buffer.from('warm'), to);
    await new Promise<void>((r) => setImmediate(() => setImmediate(r)));
    await arrived(1);
    const seen = new Promise<number>((resolve) => {
      onMessage = () => resolve(transport.queued);
    });
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        // After the transport's flush of this check phase (there was nothing to flush: a straggler now).
        setImmediate(() => {
          transport.sendNow(Buffer.from('straggler'), to);
          peer.send('request', port, '127.0.0.1');
          resolve();
        });
      }),
    );
    assert.equal(await seen, 0, 'the straggler left before the request was handled');
    assert.deepEqual(await arrived(1), ['straggler']);
    onMessage = () => {};
  });

  it('tells a bad destination to the send\u2019s hook or to onError, never throws', async () => {
    const outcome: Array<Error | null> = [];
    const bad: Destination = { ...to, port: 0 };
    transport.sendReporting(Buffer.from('x'), bad, (err) => void outcome.push(err));
    transport.sendNow(Buffer.from('y'), bad);
    await assert.rejects(transport.send(Buffer.from('z'), bad), /port/i);
    assert.match(String(outcome[0]), /port/i);
    assert.match(String(errors.at(-1)), /port/i);
  });

  it('close sends what is queued first', async () => {
    const t = new UdpTransport({ hosts: ['127.0.0.1'], port: 0, maxMessageSize: 65535, onMessage: () => {} });
    await t.listen();
    t.sendNow(Buffer.from('last words'), to);
    await t.close();
    assert.deepEqual(await arrived(1), ['last words']);
  });
});
