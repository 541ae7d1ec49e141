// RFC 3261 §10.3 rules, driven over real UDP with the raw test client: contact lifetimes, CSeq ordering,
// atomicity, limits and their policies, Path, outbound instance keys, and the events each change publishes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { collectEvents, type EventLog } from '../helpers/events.ts';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer, type Flags } from '../helpers/server.ts';

const USERS = { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' };
const contactsOf = (raw: string[]) => raw.map((c) => c.replace(/;expires=\d+/, '')).sort();
const expiresOf = (c: string) => Number(/;expires=(\d+)/.exec(c)?.[1]);

async function withServer(flags: Flags, fn: (s: TestServer, c: SipTestClient, events: EventLog) => Promise<void>) {
  const s = await startTestServer({ flags, users: USERS });
  const events = await collectEvents(s.bus, 'binding.#');
  const c = await SipTestClient.open('UDP', s.sipPort);
  try {
    await fn(s, c, events);
  } finally {
    c.close();
    await s.close();
  }
}

const alice = { user: 'alice', password: 'alice-pw', domain: 'example.test' };

describe('registrar rules', () => {
  let s: TestServer;
  let c: SipTestClient;
  let log: EventLog;
  before(async () => {
    // The test client stands in for the edge proxy whose Path is stored (--sip-trusted-proxies).
    s = await startTestServer({ users: USERS, flags: { 'min-expires': '60', 'max-expires': '7200', 'sip-trusted-proxies': ['127.0.0.1'] } });
    log = await collectEvents(s.bus, 'binding.#');
    c = await SipTestClient.open('UDP', s.sipPort);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it('takes the expires parameter over the Expires header, the header over the default, and caps at the maximum', async () => {
    const r = await register(c, {
      ...alice,
      callId: 'lifetimes',
      expires: 300,
      contact: ['<sip:a1@192.0.2.1>;expires=120', '<sip:a2@192.0.2.1>', '<sip:a3@192.0.2.1>;expires=99999'],
    });
    assert.equal(r.status, 200, r.raw);
    const byContact = new Map(r.all('Contact').map((v) => [/<([^>]+)>/.exec(v)![1], expiresOf(v)]));
    assert.equal(byContact.get('sip:a1@192.0.2.1'), 120);
    assert.equal(byContact.get('sip:a2@192.0.2.1'), 300);
    assert.equal(byContact.get('sip:a3@192.0.2.1'), 7200);
    assert.ok(r.header('Date'), 'the 200 OK carries a Date');
    const rm = await register(c, { ...alice, callId: 'lifetimes', cseq: 10, contact: '*', expires: 0 });
    assert.equal(rm.status, 200);
    assert.deepEqual(rm.all('Contact'), []);
  });

  it('treats a malformed Expires as absent (RFC 3261 §20.19) and takes the default', async () => {
    const r = await register(c, { ...alice, callId: 'malformed', headers: [['Expires', 'soon']], contact: '<sip:m@192.0.2.9>' });
    assert.equal(r.status, 200);
    assert.equal(expiresOf(r.all('Contact')[0]), 3600);
    await register(c, { ...alice, callId: 'malformed', cseq: 10, contact: '*', expires: 0 });
  });

  it('refuses a lifetime below the minimum with 423 and Min-Expires, changing nothing', async () => {
    const r = await register(c, { ...alice, callId: 'brief', contact: ['<sip:ok@192.0.2.2>;expires=600', '<sip:short@192.0.2.2>;expires=30'] });
    assert.equal(r.status, 423);
    assert.equal(r.header('Min-Expires'), '60');
    assert.deepEqual((await s.location.lookup('alice@example.test')), [], 'the acceptable contact was not bound either');
  });

  it('orders by CSeq within a Call-ID and lets a new Call-ID replace the binding', async () => {
    const contact = '<sip:phone@192.0.2.3>';
    assert.equal((await register(c, { ...alice, callId: 'order-1', cseq: 10, contact })).status, 200);
    const stale = await register(c, { ...alice, callId: 'order-1', cseq: 2, contact: [contact, '<sip:other@192.0.2.3>'] });
    assert.equal(stale.status, 400);
    assert.match(stale.reason, /CSeq/);
    assert.deepEqual((await s.location.lookup('alice@example.test')).map((b) => b.contact), ['sip:phone@192.0.2.3'], 'nothing of the stale request applied');
    // A different Call-ID (the phone rebooted) may use any CSeq.
    const reboot = await register(c, { ...alice, callId: 'order-2', cseq: 1, contact });
    assert.equal(reboot.status, 200);
    const [b] = (await s.location.lookup('alice@example.test'));
    assert.equal(b.callId, 'order-2');
    assert.equal((await register(c, { ...alice, callId: 'order-2', cseq: 20, contact: '*', expires: 0 })).status, 200);
  });

  it('answers a REGISTER without Contact with the current bindings, changing nothing', async () => {
    await register(c, { ...alice, callId: 'q', contact: ['<sip:q1@192.0.2.4>;q=0.5', '<sip:q2@192.0.2.4>;q=1.0'] });
    const before = (await s.location.lookup('alice@example.test'));
    const r = await register(c, { ...alice, callId: 'q', cseq: 5, contact: [] });
    assert.equal(r.status, 200);
    assert.deepEqual(contactsOf(r.all('Contact')), ['<sip:q1@192.0.2.4>;q=0.5', '<sip:q2@192.0.2.4>;q=1']);
    assert.deepEqual((await s.location.lookup('alice@example.test')), before);
    await register(c, { ...alice, callId: 'q', cseq: 9, contact: '*', expires: 0 });
  });

  it('refuses Contact: * with a non-zero Expires or beside other contacts', async () => {
    assert.equal((await register(c, { ...alice, contact: '*', expires: 3600 })).status, 400);
    assert.equal((await register(c, { ...alice, contact: ['*', '<sip:x@192.0.2.5>'], expires: 0 })).status, 400);
  });

  it('refuses an invalid q-value', async () => {
    assert.equal((await register(c, { ...alice, contact: '<sip:x@192.0.2.5>;q=1.5' })).status, 400);
  });

  it('forbids registering an AOR the account does not own, and serves only its realms', async () => {
    const r = await register(c, { user: 'bob', authUser: 'alice', password: 'alice-pw', domain: 'example.test' });
    assert.equal(r.status, 403);
    assert.deepEqual((await s.location.lookup('bob@example.test')), []);
    const other = await register(c, { user: 'alice', password: 'alice-pw', domain: 'elsewhere.test' });
    assert.equal(other.status, 404);
  });

  it('stores Path and echoes it only to clients that support it (RFC 3327)', async () => {
    const path = [['Path', '<sip:edge1.example.test;lr>'], ['Path', '<sip:edge2.example.test;lr>']] as Array<[string, string]>;
    const without = await register(c, { ...alice, callId: 'path', contact: '<sip:p@192.0.2.6>', headers: path });
    assert.equal(without.status, 200);
    assert.deepEqual(without.all('Path'), []);
    assert.deepEqual((await s.location.lookup('alice@example.test'))[0].path, ['<sip:edge1.example.test;lr>', '<sip:edge2.example.test;lr>']);
    const withSupport = await register(c, { ...alice, callId: 'path', cseq: 5, contact: '<sip:p@192.0.2.6>', headers: [...path, ['Supported', 'path']] });
    assert.deepEqual(withSupport.all('Path'), ['<sip:edge1.example.test;lr>', '<sip:edge2.example.test;lr>']);
    await register(c, { ...alice, callId: 'path', cseq: 9, contact: '*', expires: 0 });
  });

  it('keys RFC 5626 bindings by +sip.instance and reg-id: a new contact URI for the same flow replaces it', async () => {
    const inst = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"';
    await register(c, { ...alice, callId: 'ob', contact: `<sip:ob@192.0.2.7:5060>;+sip.instance=${inst};reg-id=1` });
    await register(c, { ...alice, callId: 'ob', cseq: 5, contact: `<sip:ob@198.51.100.7:6000>;+sip.instance=${inst};reg-id=1` });
    await register(c, { ...alice, callId: 'ob', cseq: 9, contact: `<sip:ob@198.51.100.7:6001>;+sip.instance=${inst};reg-id=2` });
    const bs = (await s.location.lookup('alice@example.test'));
    assert.deepEqual(bs.map((b) => [b.contact, b.regId]).sort(), [['sip:ob@198.51.100.7:6000', 1], ['sip:ob@198.51.100.7:6001', 2]]);
    assert.equal(bs[0].instanceId, '<urn:uuid:00000000-0000-1000-8000-000A95A0E128>');
    await register(c, { ...alice, callId: 'ob', cseq: 20, contact: '*', expires: 0 });
  });

  it('publishes added, refreshed and removed events after each change, with the binding', async () => {
    await log.settle(); // events of earlier tests are delivered first
    const events = log.events;
    events.length = 0;
    const contact = '<sip:ev@192.0.2.8>';
    await register(c, { ...alice, callId: 'ev', contact });
    await register(c, { ...alice, callId: 'ev', cseq: 5, contact });
    await register(c, { ...alice, callId: 'ev', cseq: 9, contact, expires: 0 });
    await log.settle();
    const at = 'example%2Etest.alice';
    assert.deepEqual(events.map((e) => e.topic), [`binding.added.${at}`, `binding.refreshed.${at}`, `binding.removed.${at}`]);
    const added = events[0].payload;
    assert.equal(added.aor, 'alice@example.test');
    assert.equal(added.contact, 'sip:ev@192.0.2.8');
    assert.equal(added.transport, 'UDP');
    assert.equal(added.sourceAddress, '127.0.0.1');
    assert.equal(added.sourcePort, c.localPort);
    assert.ok((added.expires as number) > 3590);
    assert.equal(events[2].payload.expires, 0);
  });
});

describe('contact limit', () => {
  it('rejects a REGISTER that would exceed max-contacts with the reject policy', async () => {
    await withServer({ 'max-contacts': '2', 'max-contacts-policy': 'reject' }, async (s, c) => {
      assert.equal((await register(c, { ...alice, callId: 'l', contact: ['<sip:1@192.0.2.1>', '<sip:2@192.0.2.1>'] })).status, 200);
      const r = await register(c, { ...alice, callId: 'l2', contact: '<sip:3@192.0.2.1>' });
      assert.equal(r.status, 403);
      assert.match(r.reason, /too many contacts/);
      assert.equal((await s.location.lookup('alice@example.test')).length, 2);
      // A refresh of an existing contact is still fine at the limit.
      assert.equal((await register(c, { ...alice, callId: 'l', cseq: 10, contact: '<sip:2@192.0.2.1>' })).status, 200);
    });
  });

  it('evicts the oldest bindings with the evict-oldest policy, announcing their removal', async () => {
    await withServer({ 'max-contacts': '2', 'max-contacts-policy': 'evict-oldest' }, async (s, c, events) => {
      await register(c, { ...alice, callId: 'e1', contact: '<sip:oldest@192.0.2.1>' });
      await new Promise((r) => setTimeout(r, 5));
      await register(c, { ...alice, callId: 'e2', contact: '<sip:middle@192.0.2.1>' });
      await new Promise((r) => setTimeout(r, 5));
      const r = await register(c, { ...alice, callId: 'e3', contact: '<sip:newest@192.0.2.1>' });
      assert.equal(r.status, 200);
      assert.deepEqual((await s.location.lookup('alice@example.test')).map((b) => b.contact).sort(), ['sip:middle@192.0.2.1', 'sip:newest@192.0.2.1']);
      await events.settle();
      assert.ok(events.events.some((e) => e.topic.startsWith('binding.removed.') && e.payload.contact === 'sip:oldest@192.0.2.1'));
    });
  });
});

describe('expiry spread', () => {
  it('shortens granted lifetimes by up to the configured percentage, never below the minimum', async () => {
    await withServer({ 'expiry-spread': '10', 'min-expires': '60', 'max-contacts': '0' }, async (_s, c) => {
      const granted: number[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await register(c, { ...alice, callId: `spread-${i}`, contact: `<sip:s${i}@192.0.2.1>`, expires: 1000 });
        granted.push(expiresOf(r.all('Contact').find((v) => v.includes(`s${i}@`))!));
      }
      assert.ok(granted.every((g) => g >= 900 && g <= 1000), granted.join(','));
      assert.ok(new Set(granted).size > 1, 'lifetimes are spread, not all equal');
    });
  });
});
