// The server's lifecycle (src/lifecycle.ts): subsystems start in the order they were added and stop in the reverse
// one; a failed start or composition stops what was opened; hooks run their listeners in order.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Hook, Lifecycle, type Subsystem } from '../../src/lifecycle.ts';
import { createLogger } from '../../src/log.ts';

const log = createLogger('silent');

function part(name: string, events: string[], o: { failStart?: boolean; failStop?: boolean; noStart?: boolean } = {}): Subsystem {
  return {
    name,
    ...(o.noStart
      ? {}
      : {
          async start() {
            await Promise.resolve();
            events.push(`start ${name}`);
            if (o.failStart) throw new Error(`${name} cannot start`);
          },
        }),
    stop() {
      events.push(`stop ${name}`);
      if (o.failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

describe('Lifecycle', () => {
  it('starts in the order added, stops in reverse, once', async () => {
    const events: string[] = [];
    const life = new Lifecycle(log);
    for (const n of ['storage', 'bus', 'sip', 'registrar', 'listeners']) life.add(part(n, events, { noStart: n === 'storage' }));
    await life.start();
    await Promise.all([life.stop(), life.stop()]);
    assert.deepEqual(events, ['start bus', 'start sip', 'start registrar', 'start listeners', 'stop listeners', 'stop registrar', 'stop sip', 'stop bus', 'stop storage']);
  });

  it('a start that fails stops what started (itself included) and rejects; the rest never start', async () => {
    const events: string[] = [];
    const life = new Lifecycle(log);
    life.add(part('storage', events, { noStart: true }));
    life.add(part('bus', events));
    life.add(part('sip', events, { failStart: true }));
    life.add(part('http', events));
    await assert.rejects(life.start(), /sip cannot start/);
    assert.deepEqual(events, ['start bus', 'start sip', 'stop sip', 'stop bus', 'stop storage']);
  });

  it('stopped before start (a composition that failed): only what was live when added stops', async () => {
    const events: string[] = [];
    const life = new Lifecycle(log);
    life.add(part('storage', events, { noStart: true }));
    life.add(part('bus', events));
    await life.stop();
    assert.deepEqual(events, ['stop storage']);
  });

  it('one that fails to stop does not keep the others running', async () => {
    const events: string[] = [];
    const life = new Lifecycle(log);
    life.add(part('a', events));
    life.add(part('b', events, { failStop: true }));
    life.add(part('c', events));
    await life.start();
    await life.stop();
    assert.deepEqual(events.filter((e) => e.startsWith('stop')), ['stop c', 'stop b', 'stop a']);
  });
});

describe('Hook', () => {
  it('runs listeners in order, awaiting each; emit calls them synchronously', async () => {
    const seen: string[] = [];
    const h = new Hook<string>();
    h.on(async (v) => {
      await new Promise((r) => setTimeout(r, 5));
      seen.push(`first ${v}`);
    });
    h.on((v) => {
      seen.push(`second ${v}`);
    });
    await h.run('x');
    assert.deepEqual(seen, ['first x', 'second x']);
    const sync = new Hook<number>();
    const got: number[] = [];
    sync.on((n) => {
      got.push(n);
    });
    sync.emit(7);
    assert.deepEqual(got, [7]);
  });

  it('run rejects with the first failure', async () => {
    const h = new Hook<void>();
    h.on(() => {
      throw new Error('no');
    });
    await assert.rejects(h.run(), /no/);
  });
});
