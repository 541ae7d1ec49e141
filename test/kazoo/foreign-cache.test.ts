// The cache of registrations other switches announce (src/kazoo/foreign-registrations.ts): ecallmgr's rules,
// on a clock the test moves.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { checkRegSuccess, type RegSuccess } from '../../src/kazoo/reg-success.ts';
import { ForeignRegistrations } from '../../src/kazoo/foreign-registrations.ts';

let t = 1_700_000_000_000;
const now = () => t;

function rs(extra: Record<string, unknown>): RegSuccess {
  const r = checkRegSuccess({
    'App-Name': 'kamailio', 'App-Version': '5', 'Event-Category': 'directory', 'Event-Name': 'reg_success', 'Msg-ID': 'x',
    'Event-Timestamp': Math.floor(t / 1000), Contact: '<sip:alice@192.0.2.1:5060>', Expires: 300, Username: 'Alice', Realm: 'Example.COM', ...extra,
  });
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

describe('foreign registrations (ecallmgr rules)', () => {
  it('keys by lower-cased user and realm, ids by md5 of the cleaned contact, keeps Original-Contact raw', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 180, now });
    assert.equal(c.apply(rs({ 'Original-Contact': '<sip:alice@192.0.2.1:5060;ob>;expires=300' })), 'new');
    const [reg] = c.query('alice', 'example.com');
    assert.equal(reg.key, 'alice@example.com');
    assert.equal(reg.fields.Contact, 'sip:alice@192.0.2.1:5060;ob;expires=300');
    assert.equal(reg.fields['Original-Contact'], '<sip:alice@192.0.2.1:5060;ob>;expires=300');
    assert.equal(reg.id, createHash('md5').update('sip:alice@192.0.2.1:5060;ob;expires=300').digest('hex'));
    assert.equal(reg.fields.Username, 'Alice', 'the fields keep what was announced');
    assert.equal(reg.fields['First-Registration'], true);
  });

  it('adds the deviation to Expires and expires the entry on the timer', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 180, now });
    c.apply(rs({ Expires: 60 }));
    const [reg] = c.query('alice', 'example.com');
    assert.equal(reg.fields.Expires, 240);
    assert.equal(reg.expiresAt, t + 240_000);
    t += 239_000;
    assert.equal(c.expire(), 0);
    assert.equal(c.size, 1);
    t += 1000;
    assert.equal(c.query('alice', 'example.com').length, 0, 'invisible once due');
    assert.equal(c.expire(), 1);
    assert.equal(c.size, 0);
  });

  it('updates the same contact, replaces another contact of the same user (ecallmgr keeps one per user)', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 0, now });
    c.apply(rs({}));
    const first = c.query('alice', 'example.com')[0].fields['Initial-Registration'];
    t += 10_000;
    assert.equal(c.apply(rs({ Expires: 600, 'User-Agent': 'phone/2' })), 'updated');
    let [reg] = c.query('alice', 'example.com');
    assert.equal(reg.fields.Expires, 600);
    assert.equal(reg.fields['User-Agent'], 'phone/2');
    assert.equal(reg.fields['Initial-Registration'], first);
    assert.equal(reg.fields['First-Registration'], false);
    assert.equal(c.apply(rs({ Contact: '<sip:alice@198.51.100.7:5062>' })), 'replaced');
    [reg] = c.query('alice', 'example.com');
    assert.equal(reg.fields.Contact, 'sip:alice@198.51.100.7:5062');
    assert.equal(reg.fields['Previous-Contact'], 'sip:alice@192.0.2.1:5060');
    assert.equal(c.size, 1);
  });

  it('moves a contact claimed by another user to that user', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 0, now });
    c.apply(rs({}));
    c.apply(rs({ Username: 'bob' }));
    assert.equal(c.query('alice', 'example.com').length, 0);
    assert.equal(c.query('bob', 'example.com').length, 1);
    assert.equal(c.size, 1);
  });

  it('removes on Expires 0 when it holds that contact, and ignores it otherwise', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 180, now });
    c.apply(rs({}));
    assert.equal(c.apply(rs({ Contact: '<sip:alice@203.0.113.9>', Expires: 0 })), 'ignored');
    assert.equal(c.size, 1);
    assert.equal(c.apply(rs({ Contact: 'sip:alice@192.0.2.1:5060', Expires: '0' })), 'removed', 'the same contact, cleaned');
    assert.equal(c.size, 0);
  });

  it('builds Bridge-RURI from Proxy-Path and names the registrar node', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 180, now });
    c.apply(rs({ 'Proxy-Path': '<sip:10.0.0.1:5060;lr>', Node: 'kamailio@sbc1' }));
    const [reg] = c.query('alice', 'example.com');
    assert.equal(reg.fields['Bridge-RURI'], 'sip:Alice@Example.COM;fs_path=<sip:10.0.0.1:5060;lr>');
    assert.equal(reg.fields['Registrar-Node'], 'kamailio@sbc1');
  });

  it('queries and flushes by realm, by user, or all', () => {
    const c = new ForeignRegistrations({ deviationSeconds: 180, now });
    c.apply(rs({}));
    c.apply(rs({ Username: 'bob', Contact: 'sip:bob@192.0.2.2' }));
    c.apply(rs({ Username: 'carol', Realm: 'other.test', Contact: 'sip:carol@192.0.2.3' }));
    assert.equal(c.query(null, 'example.com').length, 2);
    assert.equal(c.query(null, null).length, 3);
    assert.equal(c.query('carol', null).length, 1);
    assert.equal(c.flush('example.com', 'bob'), 1);
    assert.equal(c.flush('example.com', null), 1);
    assert.equal(c.size, 1);
  });
});
