// The presence service hears of registration changes only for the presentities it follows, and lets go of one
// nobody watches once its grace period has passed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { createLogger } from '../../src/log.ts';
import { RegistrationFeed } from '../../src/presence/registration-feed.ts';
import { bindingTopic } from '../../src/registrar/location-service.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('RegistrationFeed', () => {
  it('delivers the binding events of followed presentities only', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    const heard: string[] = [];
    const feed = new RegistrationFeed(bus, (aor) => heard.push(aor));
    feed.follow('alice@example.test');
    feed.follow('alice@example.test');
    await feed.ready();
    bus.publish(bindingTopic('added', 'alice@example.test'), { aor: 'alice@example.test' });
    bus.publish(bindingTopic('expired', 'alice@example.test'), { aor: 'alice@example.test' });
    bus.publish(bindingTopic('added', 'bob@example.test'), { aor: 'bob@example.test' });
    bus.publish(bindingTopic('added', 'alice@other.test'), { aor: 'alice@other.test' });
    await tick();
    assert.deepEqual(heard, ['alice@example.test', 'alice@example.test'], 'once per event, however often followed');
  });

  it('needs no wait for a presentity whose follow is known to be in effect, and waits once for a new one', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    let waits = 0;
    const subscribed = bus.subscribed.bind(bus);
    bus.subscribed = () => {
      waits++;
      return subscribed();
    };
    const feed = new RegistrationFeed(bus, () => {});
    feed.follow('alice@example.test');
    const first = feed.readyFor('alice@example.test');
    assert.ok(first instanceof Promise, 'a new follow is waited for');
    feed.follow('alice@example.test');
    assert.ok(feed.readyFor('alice@example.test') instanceof Promise, 'still waited for until the bus said so');
    await first;
    assert.equal(feed.readyFor('alice@example.test'), undefined);
    assert.ok(feed.readyFor('bob@example.test') instanceof Promise, 'one not followed is not in effect');
    assert.equal(waits, 3);
  });

  it('keeps addresses with dots, spaces and wildcard characters apart', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    const heard: string[] = [];
    const feed = new RegistrationFeed(bus, (aor) => heard.push(aor));
    feed.follow('*@example.test');
    feed.follow('a.b@example.test');
    await feed.ready();
    for (const aor of ['carol@example.test', 'a@b.example.test', 'a.b@example.test', '*@example.test']) bus.publish(bindingTopic('added', aor), { aor });
    await tick();
    assert.deepEqual(heard.sort(), ['*@example.test', 'a.b@example.test']);
  });

  it('lets go of presentities nobody wants after the grace period, not before', async () => {
    const bus = new InProcessBus(createLogger('silent'));
    let now = 1_000_000;
    const heard: string[] = [];
    const feed = new RegistrationFeed(bus, (aor) => heard.push(aor), () => now);
    feed.follow('alice@d.test');
    feed.follow('bob@d.test');
    now += 30_000;
    assert.equal(feed.prune((aor) => aor === 'bob@d.test'), 0, 'alice is within her grace period');
    now += 31_000;
    assert.equal(feed.prune((aor) => aor === 'bob@d.test'), 1);
    assert.equal(feed.size, 1);
    bus.publish(bindingTopic('added', 'alice@d.test'), {});
    bus.publish(bindingTopic('added', 'bob@d.test'), {});
    await tick();
    assert.deepEqual(heard, ['bob@d.test']);
    feed.close();
    assert.equal(feed.size, 0);
  });
});
