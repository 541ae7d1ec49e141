// The notifier's bookkeeping: the expiry wheel, the subscription and publication tables, the Event header.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptsPackage, isPackageType, parseEvent, PRESENCE_PACKAGE } from '../../src/presence/event-packages.ts';
import { ExpiryWheel } from '../../src/presence/expiry-wheel.ts';
import { newEntityTag, PublicationTable } from '../../src/presence/publications.ts';
import { Subscription, SubscriptionTable } from '../../src/presence/subscriptions.ts';
import type { PublicationRecord, SubscriptionRecord } from '../../src/storage/ports.ts';

describe('expiry wheel', () => {
  it('hands out an item once when due, not before, and follows refreshes', () => {
    const items = new Map<string, number>([['a', 10_500], ['b', 12_000]]);
    const held = new Set(['a', 'b']);
    const wheel = new ExpiryWheel<string>(10_000, (k) => items.get(k)!, (k) => held.has(k));
    wheel.add('a');
    wheel.add('b');
    assert.deepEqual(wheel.due(10_400), []);
    items.set('a', 13_000); // refreshed: the old entry finds nothing due
    wheel.add('a');
    assert.deepEqual(wheel.due(11_000), []);
    assert.deepEqual(wheel.due(12_000), ['b']);
    held.delete('b');
    assert.deepEqual(wheel.due(12_500), []);
    assert.deepEqual(wheel.due(13_200), ['a']);
    assert.deepEqual(wheel.due(20_000), []);
  });
  it('an item already due when added comes out at the next sweep', () => {
    const wheel = new ExpiryWheel<string>(5_000, () => 1_000, () => true);
    wheel.add('x');
    assert.deepEqual(wheel.due(5_100), ['x']);
  });
});

function record(id: string, presentity: string): SubscriptionRecord {
  return {
    id, event: 'presence', eventId: null, presentity, watcher: 'bob@example.test', watcherAccountId: null, state: 'active', callId: `c-${id}`,
    localTag: id, remoteTag: `r-${id}`, localUri: `sip:${presentity}`, remoteNameAddr: '<sip:bob@example.test>', remoteTarget: 'sip:bob@192.0.2.1',
    routeSet: [], localCseq: 0, remoteCseq: 1, accept: [], flow: { transport: 'UDP', address: '192.0.2.1', port: 5060, connectionId: null, node: 'n' },
    expiresAt: 0, createdAt: 0, updatedAt: 0,
  };
}

describe('subscription table', () => {
  it('finds a subscription by id, by dialog (Call-ID and both tags) and by presentity, and forgets it everywhere', () => {
    const t = new SubscriptionTable();
    const a = new Subscription(record('a', 'alice@example.test'));
    const b = new Subscription(record('b', 'alice@example.test'));
    t.add(a);
    t.add(b);
    assert.equal(t.get('a'), a);
    assert.equal(t.findDialog('c-a', 'a', 'r-a'), a);
    assert.equal(t.findDialog('c-a', 'a', 'r-b'), undefined);
    assert.deepEqual([...t.of('alice@example.test')], [a, b]);
    t.remove(a);
    assert.equal(a.gone, true);
    assert.equal(t.get('a'), undefined);
    assert.equal(t.findDialog('c-a', 'a', 'r-a'), undefined);
    assert.deepEqual([...t.of('alice@example.test')], [b]);
    t.remove(b);
    assert.equal(t.of('alice@example.test').size, 0);
    assert.equal(t.size, 0);
  });
  it('finds a dialog by its local tag only when Call-ID and remote tag match too, whatever the record id', () => {
    const t = new SubscriptionTable();
    const a = new Subscription(record('a', 'alice@example.test'));
    const old = new Subscription({ ...record('row-7', 'alice@example.test'), localTag: 'lt7', callId: 'c7', remoteTag: 'r7' });
    t.add(a);
    t.add(old);
    assert.equal(t.findDialog('c-a', 'a', 'r-a'), a);
    assert.equal(t.findDialog('c-b', 'a', 'r-a'), undefined, 'another Call-ID');
    assert.equal(t.findDialog('c-a', 'b', 'r-a'), undefined, 'another local tag');
    assert.equal(t.findDialog('c7', 'lt7', 'r7'), old, 'a record whose id is not its tag');
    assert.equal(t.findDialog('c7', 'row-7', 'r7'), undefined, 'the id is no tag');
    t.remove(old);
    assert.equal(t.findDialog('c7', 'lt7', 'r7'), undefined);
    assert.equal(t.findDialog('c-a', 'a', 'r-a'), a);
  });
  it('builds From, To and Event of its NOTIFYs once', () => {
    const r = { ...record('x', 'alice@example.test'), eventId: '7' };
    const s = new Subscription(r);
    assert.equal(s.fromValue, '<sip:alice@example.test>;tag=x');
    assert.equal(s.toValue, '<sip:bob@example.test>;tag=r-x');
    assert.equal(s.eventValue, 'presence;id=7');
  });
});

describe('publication table', () => {
  it('retags a publication in place and finds it only by its current entity tag', () => {
    const t = new PublicationTable();
    const p = { etag: newEntityTag(), aor: 'alice@example.test' } as PublicationRecord;
    t.add(p);
    const old = p.etag;
    t.retag(p, newEntityTag());
    assert.equal(t.get(old), undefined);
    assert.equal(t.get(p.etag), p);
    assert.deepEqual(t.of('alice@example.test'), [p]);
    t.remove(p);
    assert.equal(t.has(p), false);
    assert.deepEqual(t.of('alice@example.test'), []);
  });
  it('entity tags are long and distinct', () => {
    const tags = new Set(Array.from({ length: 1000 }, newEntityTag));
    assert.equal(tags.size, 1000);
    for (const t of tags) assert.ok(t.length >= 16);
  });
});

describe('Event header and package types', () => {
  it('parses the event type (case-insensitively) and its id parameter', () => {
    assert.deepEqual(parseEvent('presence'), { event: 'presence', id: null });
    assert.deepEqual(parseEvent(' Presence ;id=42'), { event: 'presence', id: '42' });
    assert.deepEqual(parseEvent('presence.winfo'), { event: 'presence.winfo', id: null });
    assert.equal(parseEvent(undefined), null);
    assert.equal(parseEvent(''), null);
    assert.equal(parseEvent('pre sence'), null);
    assert.equal(parseEvent('presence;=x'), null);
  });
  it('answers a value met again (the last one is kept) as the first time, and a malformed one again as null', () => {
    for (const v of ['presence', 'presence', 'Presence;id=7', 'Presence;id=7', 'presence', 'pre sence', 'pre sence', 'presence']) {
      const parsed = parseEvent(v);
      if (v === 'pre sence') assert.equal(parsed, null);
      else assert.deepEqual(parsed, v === 'presence' ? { event: 'presence', id: null } : { event: 'presence', id: '7' });
    }
  });
  it('Accept admits PIDF (or a wildcard); no Accept admits it too', () => {
    assert.equal(acceptsPackage([], PRESENCE_PACKAGE), true);
    assert.equal(acceptsPackage(['application/pidf+xml'], PRESENCE_PACKAGE), true);
    assert.equal(acceptsPackage(['multipart/related', 'Application/PIDF+XML;q=0.5'], PRESENCE_PACKAGE), true);
    assert.equal(acceptsPackage(['*/*'], PRESENCE_PACKAGE), true);
    assert.equal(acceptsPackage(['application/xpidf+xml'], PRESENCE_PACKAGE), false);
    assert.equal(isPackageType('application/pidf+xml; charset=UTF-8', PRESENCE_PACKAGE), true);
    assert.equal(isPackageType('text/plain', PRESENCE_PACKAGE), false);
  });
});
