// The SQLite store's subscription rows (src/storage/presence-rows.ts): positional, read back whole, and rows written
// as JSON objects before that format still read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { subscriptionFromRow, subscriptionRow } from '../../src/storage/presence-rows.ts';
import type { SubscriptionRecord } from '../../src/storage/ports.ts';

const record: SubscriptionRecord = {
  id: 'x7', event: 'presence', eventId: 'e1', presentity: 'alice@example.test', watcher: 'bob@example.test', watcherAccountId: 'acc-bob',
  state: 'pending', callId: 'c@1', localTag: 'x7', remoteTag: 'r1', localUri: 'sip:alice@example.test', remoteNameAddr: '"Bob" <sip:bob@example.test>',
  remoteTarget: 'sip:bob@192.0.2.1:5070', routeSet: ['<sip:p1.example.test;lr>', '<sip:p2.example.test;lr>'], localCseq: 65_540, remoteCseq: 3,
  accept: ['application/pidf+xml'], flow: { transport: 'TCP', address: '192.0.2.1', port: 40111, connectionId: 17, node: 'n1' },
  expiresAt: 1_700_000_600_000, createdAt: 1_700_000_000_000, updatedAt: 1_700_000_300_000,
};

describe('presence subscription rows', () => {
  it('round-trips a subscription whole, in about half the text of the JSON object', () => {
    const row = subscriptionRow(record);
    assert.deepEqual(subscriptionFromRow(row), record);
    assert.ok(row.length < JSON.stringify(record).length * 0.6, `${row.length} vs ${JSON.stringify(record).length}`);
    const nulls = { ...record, eventId: null, watcherAccountId: null, flow: { ...record.flow, connectionId: null } };
    assert.deepEqual(subscriptionFromRow(subscriptionRow(nulls)), nulls);
  });
  it('reads a row written as a JSON object (the earlier format)', () => {
    assert.deepEqual(subscriptionFromRow(JSON.stringify(record)), record);
  });
  it('refuses a row of an unknown layout rather than misreading it', () => {
    assert.throws(() => subscriptionFromRow(JSON.stringify([2, 'x'])), /unknown layout 2/);
  });
});
