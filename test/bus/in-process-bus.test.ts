// The in-process bus with the port's options: exchanges are separate namespaces, a group takes turns, and without
// options everything behaves as before (topic patterns, asynchronous delivery, failing subscribers isolated).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BusMessage } from '../../src/bus/event-bus.ts';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { createLogger } from '../../src/log.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('in-process bus', () => {
  it('delivers after the current turn, by topic pattern, and isolates a failing subscriber', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    const got: string[] = [];
    bus.subscribe('binding.*', (m) => void got.push(`a:${m.topic}`));
    bus.subscribe('binding.#', () => {
      throw new Error('subscriber bug');
    });
    bus.subscribe('#', (m) => void got.push(`b:${m.topic}`));
    bus.publish('binding.added', { x: 1 });
    bus.publish('presence.changed', {});
    assert.deepEqual(got, [], 'not inside the publisher');
    await tick();
    assert.deepEqual(got, ['a:binding.added', 'b:binding.added', 'b:presence.changed']);
  });

  it('keeps exchanges apart', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    const got: BusMessage[] = [];
    bus.subscribe('#', (m) => void got.push(m));
    bus.subscribe('registration.#', (m) => void got.push(m), { exchange: 'registrar' });
    bus.publish('registration.sync', { a: 1 }, { exchange: 'registrar' });
    bus.publish('registration.sync', { b: 1 });
    bus.publish('registration.sync', { c: 1 }, { exchange: 'callmgr' });
    await tick();
    assert.deepEqual(got.map((m) => [m.exchange, m.payload]), [[undefined, { b: 1 }], ['registrar', { a: 1 }]].reverse());
  });

  it('gives each message to one member of a group, in turn, and to every plain subscriber', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    const a: number[] = [];
    const b: number[] = [];
    const all: number[] = [];
    bus.subscribe('job', (m) => void a.push(m.payload.n as number), { group: 'g' });
    const off = bus.subscribe('job', (m) => void b.push(m.payload.n as number), { group: 'g' });
    bus.subscribe('job', (m) => void all.push(m.payload.n as number));
    for (let n = 0; n < 6; n++) bus.publish('job', { n });
    await tick();
    assert.deepEqual([a, b, all], [[0, 2, 4], [1, 3, 5], [0, 1, 2, 3, 4, 5]]);
    off();
    bus.publish('job', { n: 6 });
    await tick();
    assert.deepEqual(a, [0, 2, 4, 6]);
  });
});
