// Composition: one document per presentity, one tuple per device, from publications and registrations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compose } from '../../src/presence/compose.ts';
import type { PresenceState } from '../../src/presence/model.ts';
import type { PublicationRecord } from '../../src/storage/ports.ts';
import { binding } from '../helpers/bindings.ts';

const AOR = 'alice@example.test';

function publication(etag: string, state: Partial<PresenceState>, flow: Partial<PublicationRecord['flow']> = {}, updatedAt = 1000): PublicationRecord {
  return {
    etag,
    aor: AOR,
    event: 'presence',
    state: { tuples: [], person: null, notes: [], ...state },
    flow: { transport: 'UDP', address: '198.51.100.9', port: 5060, connectionId: null, node: 'n1', ...flow },
    accountId: 'acc',
    expiresAt: Date.now() + 60_000,
    createdAt: updatedAt,
    updatedAt,
  };
}
const tuple = (id: string, basic: 'open' | 'closed', contact: string | null = null) => ({ id, basic, contact, priority: null, notes: [], timestamp: null });

describe('composition', () => {
  it('nothing published, nothing registered: one closed tuple', () => {
    const c = compose(AOR, [], []);
    assert.equal(c.basic, 'closed');
    assert.equal(c.source, 'none');
    assert.equal(c.tuples.length, 1);
    assert.equal(c.tuples[0].basic, 'closed');
    assert.match(c.tuples[0].id, /^[A-Za-z_][A-Za-z0-9._-]*$/);
  });

  it('registered devices only: one open tuple per binding with q as priority and no contact (the device address stays private)', () => {
    const c = compose(AOR, [], [binding(AOR, 'k1', { contact: 'sip:alice@192.0.2.1', q: 0.5 }), binding(AOR, 'k2', { contact: 'sip:alice@192.0.2.2', q: 1 })]);
    assert.equal(c.basic, 'open');
    assert.equal(c.source, 'registration');
    assert.deepEqual(c.tuples.map((t) => [t.basic, t.contact, t.priority]), [['open', null, 1], ['open', null, 0.5]]);
    // With contacts asked for (--presence-derived-contacts): each binding's contact.
    const withContacts = compose(AOR, [], [binding(AOR, 'k1', { contact: 'sip:alice@192.0.2.1', q: 0.5 }), binding(AOR, 'k2', { contact: 'sip:alice@192.0.2.2', q: 1 })], { contacts: true });
    assert.deepEqual(withContacts.tuples.map((t) => [t.basic, t.contact, t.priority]), [['open', 'sip:alice@192.0.2.2', 1], ['open', 'sip:alice@192.0.2.1', 0.5]]);
    assert.notEqual(c.tuples[0].id, c.tuples[1].id);
    // Stable ids: the same bindings give the same document.
    assert.deepEqual(compose(AOR, [], [binding(AOR, 'k1', { contact: 'sip:alice@192.0.2.1', q: 0.5 }), binding(AOR, 'k2', { contact: 'sip:alice@192.0.2.2', q: 1 })]).tuples, c.tuples);
  });

  it("a device's publication replaces its derived tuple; the other device keeps its own; open tuples first", () => {
    const desk = binding(AOR, 'desk', { contact: 'sip:alice@192.0.2.1', sourceAddress: '192.0.2.1', sourcePort: 5060 });
    const mobile = binding(AOR, 'mobile', { contact: 'sip:alice@192.0.2.2', sourceAddress: '192.0.2.2', sourcePort: 5062 });
    const pub = publication('e1', { tuples: [tuple('t1', 'closed')] }, { address: '192.0.2.1', port: 5060 });
    const c = compose(AOR, [pub], [desk, mobile]);
    assert.equal(c.source, 'mixed');
    assert.deepEqual(c.tuples.map((t) => [t.id === 't1' ? 'published' : 'derived', t.basic, t.contact]), [['derived', 'open', null], ['published', 'closed', null]]);
    assert.equal(c.basic, 'open');
  });

  it('a publication also speaks for a binding whose contact its tuple names, or whose TCP connection it came over', () => {
    const b1 = binding(AOR, 'b1', { contact: 'sip:alice@192.0.2.1' });
    const b2 = binding(AOR, 'b2', { contact: 'sip:alice@192.0.2.2', transport: 'TCP', connectionId: 7, node: 'n1' });
    const byContact = publication('e1', { tuples: [tuple('a', 'open', 'sip:alice@192.0.2.1')] });
    const byConnection = publication('e2', { tuples: [tuple('b', 'closed')] }, { transport: 'TCP', connectionId: 7, address: '10.0.0.1', port: 40000 });
    const c = compose(AOR, [byContact, byConnection], [b1, b2]);
    assert.deepEqual(c.tuples.map((t) => t.id), ['a', 'b']);
    assert.equal(c.source, 'published');
  });

  it('the same tuple id in two publications is one device: the newer tuple stands; the newest person wins; notes merge once', () => {
    const older = publication('e1', { tuples: [tuple('t', 'open'), tuple('u', 'open')], person: { id: 'p', activities: ['busy'], notes: [] }, notes: ['x'] }, {}, 1000);
    const newer = publication('e2', { tuples: [tuple('t', 'closed')], person: { id: 'p', activities: ['away'], notes: [] }, notes: ['x', 'y'] }, { port: 5070 }, 2000);
    const c = compose(AOR, [newer, older], []);
    assert.deepEqual(c.tuples.map((t) => [t.id, t.basic]), [['u', 'open'], ['t', 'closed']]);
    assert.deepEqual(c.person?.activities, ['away']);
    assert.deepEqual(c.notes, ['x', 'y']);
  });

  it('published closed and nothing registered: closed, from the publication', () => {
    const c = compose(AOR, [publication('e1', { tuples: [tuple('t', 'closed')] })], []);
    assert.equal(c.basic, 'closed');
    assert.equal(c.source, 'published');
    assert.deepEqual(c.tuples.map((t) => t.id), ['t']);
  });
});
