// The Kazoo directory service (src/kazoo/directory.ts) over the in-process bus, with its ports faked:
// what it answers to each request, and what it announces.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { beforeEach, describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/in-process.ts';
import type { BusMessage } from '../../src/bus/event-bus.ts';
import { ReversibleSipPasswords } from '../../src/identity/reversible-passwords.ts';
import { createLogger } from '../../src/log.ts';
import { KazooDirectory, kazooServerId } from '../../src/kazoo/directory.ts';
import { computeHa1 } from '../../src/sip/digest.ts';
import type { BindingRecord, CredentialStore, FoundCredential, SealedSipPasswordStore } from '../../src/storage/ports.ts';
import { binding } from '../helpers/bindings.ts';

const log = createLogger('silent');
const ME = { appName: 'switchboard', appVersion: '0.1.0', node: 'switchboard@test', serverId: 'switchboard@test-1-aa' };
const KAZOO = 'kamailio@sbc-42-reply';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

const request = (name: string, extra: Record<string, unknown> = {}) => ({
  'App-Name': 'kamailio', 'App-Version': '5.6', 'Event-Category': 'directory', 'Event-Name': name, 'Msg-ID': randomBytes(4).toString('hex'), 'Server-ID': KAZOO, Node: 'kamailio@sbc', ...extra,
});

class Bindings {
  readonly map = new Map<string, BindingRecord[]>();
  removed: string[] = [];
  add(b: BindingRecord) {
    this.map.set(b.aor, [...(this.map.get(b.aor) ?? []), b]);
  }
  lookup(aor: string) {
    return this.map.get(aor) ?? [];
  }
  async *entries(): AsyncIterable<[string, BindingRecord[]]> {
    yield* this.map.entries();
  }
  async removeAor(aor: string) {
    this.removed.push(aor);
    this.map.delete(aor);
  }
}

class Sealed implements SealedSipPasswordStore {
  readonly m = new Map<string, string>();
  async getSealedSipPassword(id: string) {
    return this.m.get(id) ?? null;
  }
  async putSealedSipPassword(id: string, s: string) {
    this.m.set(id, s);
  }
  async deleteSealedSipPassword(id: string) {
    return this.m.delete(id);
  }
}

const users: Record<string, { id: string; password: string }> = {
  'alice@example.com': { id: 'acc-alice', password: 'alice-pw' },
  'Bob@example.com': { id: 'acc-bob', password: 'bob-pw' },
};
const credentials: CredentialStore = {
  findSipCredential(authUser, realm, algorithm): FoundCredential | null {
    const u = users[`${authUser}@${realm}`];
    if (!u) return null;
    return { credential: { accountId: u.id, authUser, realm, algorithm, ha1: computeHa1(algorithm, authUser, realm, u.password) }, aors: [`${authUser}@${realm}`] };
  },
};

describe('Kazoo directory', () => {
  let bus: InProcessBus;
  let replies: BusMessage[];
  let announced: BusMessage[];
  let local: Bindings;
  let sealed: Sealed;
  let passwords: ReversibleSipPasswords;
  let dir: KazooDirectory;

  beforeEach(() => {
    bus = new InProcessBus(log);
    replies = [];
    announced = [];
    local = new Bindings();
    sealed = new Sealed();
    passwords = new ReversibleSipPasswords({ store: sealed, key: randomBytes(32) });
    bus.subscribe(KAZOO, (m) => void replies.push(m), { exchange: 'targeted' });
    bus.subscribe('registration.#', (m) => void announced.push(m), { exchange: 'registrar' });
    dir = new KazooDirectory({ bus, credentials, passwords, location: local, sender: ME, expiresDeviation: 180, log });
    dir.start();
  });

  const ask = async (exchange: string, key: string, payload: Record<string, unknown>) => {
    const before = replies.length;
    bus.publish(key, payload, { exchange });
    for (let i = 0; i < 100 && replies.length === before; i++) await sleep(2);
    return replies.slice(before);
  };

  it('asks the other registrars to re-announce when it starts', async () => {
    await until(() => announced.some((m) => m.topic === 'registration.sync'), 'reg_sync');
    const sync = announced.find((m) => m.topic === 'registration.sync')!;
    assert.equal(sync.payload['Event-Name'], 'reg_sync');
    assert.equal(sync.payload['Server-ID'], ME.serverId);
  });

  it('answers authn_req with the MD5 HA1 (a1-hash) and Custom-Channel-Vars', async () => {
    const req = request('authn_req', { 'Auth-User': 'ALICE', 'Auth-Realm': 'example.com', From: 'sip:alice@example.com', To: 'sip:alice@example.com' });
    const [r] = await ask('callmgr', 'authn.req.example%2Ecom', req);
    assert.equal(r.topic, KAZOO);
    assert.equal(r.exchange, 'targeted');
    const p = r.payload;
    assert.equal(p['Event-Name'], 'authn_resp');
    assert.equal(p['Msg-ID'], req['Msg-ID']);
    assert.equal(p['Auth-Method'], 'a1-hash');
    assert.equal(p['Auth-Password'], computeHa1('MD5', 'alice', 'example.com', 'alice-pw'));
    assert.deepEqual(p['Custom-Channel-Vars'], {
      Username: 'alice', Realm: 'example.com', 'Account-ID': 'acc-alice', 'Authorizing-ID': 'acc-alice', 'Authorizing-Type': 'device', 'Owner-ID': 'acc-alice', 'Presence-ID': 'alice@example.com',
    });
  });

  it('finds a mixed-case account name when the lower-cased one is unknown, and also on authn.endpoint.req', async () => {
    const [r] = await ask('registrar', 'authn.endpoint.req.example%2Ecom', request('authn_req', { 'Auth-User': 'Bob', 'Auth-Realm': 'example.com', From: 'x', To: 'y' }));
    assert.equal(r.payload['Event-Name'], 'authn_resp');
    assert.equal(r.payload['Auth-Password'], computeHa1('MD5', 'Bob', 'example.com', 'bob-pw'));
  });

  it('answers the password itself for an account that opted in, and a1-hash again once it is stale', async () => {
    await passwords.enable('acc-alice', 'alice-pw');
    const req = () => request('authn_req', { 'Auth-User': 'alice', 'Auth-Realm': 'example.com', From: 'f', To: 't' });
    let [r] = await ask('callmgr', 'authn.req.example%2Ecom', req());
    assert.equal(r.payload['Auth-Method'], 'password');
    assert.equal(r.payload['Auth-Password'], 'alice-pw');
    assert.ok(!sealed.m.get('acc-alice')!.includes('alice-pw'), 'stored sealed');
    users['alice@example.com'].password = 'changed-elsewhere';
    try {
      [r] = await ask('callmgr', 'authn.req.example%2Ecom', req());
      assert.equal(r.payload['Auth-Method'], 'a1-hash');
      assert.equal(r.payload['Auth-Password'], computeHa1('MD5', 'alice', 'example.com', 'changed-elsewhere'));
    } finally {
      users['alice@example.com'].password = 'alice-pw';
    }
  });

  it('answers authn_err with Defer-Response for unknown credentials, and nothing for a malformed request', async () => {
    const [r] = await ask('callmgr', 'authn.req.example%2Ecom', request('authn_req', { 'Auth-User': 'mallory', 'Auth-Realm': 'example.com', From: 'f', To: 't' }));
    assert.equal(r.payload['Event-Name'], 'authn_err');
    assert.equal(r.payload['Defer-Response'], 'true');
    assert.equal(r.payload['Auth-Password'], undefined);
    assert.equal((await ask('callmgr', 'authn.req.x', { 'Event-Name': 'authn_req' })).length, 0);
    assert.equal((await ask('callmgr', 'authn.req.x', request('authn_req', { 'Auth-Realm': 'example.com', From: 'f', To: 't' }))).length, 0, 'no Auth-User');
  });

  it('announces binding changes as reg_success, Expires 0 when one goes away', async () => {
    const b = binding('alice@example.com', 'k1', { contact: 'sip:alice@192.0.2.1:5060;transport=udp', params: ';+sip.instance="<urn:uuid:1>"', expiresAt: Date.now() + 300_000, accountId: 'acc-alice', path: ['<sip:10.0.0.1;lr>'] });
    dir.onBindingChanges([{ event: 'added', binding: b }]);
    dir.onBindingChanges([{ event: 'expired', binding: b }]);
    await until(() => announced.filter((m) => m.payload['Event-Name'] === 'reg_success').length === 2, 'two reg_success');
    const rs = announced.filter((m) => m.payload['Event-Name'] === 'reg_success');
    assert.equal(rs.length, 2);
    assert.equal(rs[0].topic, 'registration.success.example%2Ecom.alice');
    const p = rs[0].payload;
    assert.equal(p.Contact, '<sip:alice@192.0.2.1:5060;transport=udp>;+sip.instance="<urn:uuid:1>"');
    assert.equal(p['Original-Contact'], p.Contact);
    assert.ok(p.Expires === 300 || p.Expires === 299, String(p.Expires));
    assert.equal(p.Username, 'alice');
    assert.equal(p.Realm, 'example.com');
    assert.equal(p.AOR, 'sip:alice@example.com');
    assert.equal(p['Proxy-Path'], '<sip:10.0.0.1;lr>');
    assert.equal(p['Network-IP'], '192.0.2.1');
    assert.equal(p['Network-Port'], '5060');
    assert.equal(p['First-Registration'], true);
    assert.equal(p['Registrar-Node'], ME.node);
    assert.equal(p.Status, 'Registered');
    assert.equal((p['Custom-Channel-Vars'] as Record<string, string>)['Account-ID'], 'acc-alice');
    assert.equal(rs[1].payload.Expires, 0);
    assert.equal(rs[1].payload.Status, 'Unregistered');
  });

  it('learns reg_success from other switches, ignores its own, and answers reg_query from both views', async () => {
    local.add(binding('alice@example.com', 'k1', { contact: 'sip:alice@192.0.2.1:5060', expiresAt: Date.now() + 3600_000, updatedAt: Date.now() - 1000, accountId: 'acc-alice' }));
    bus.publish('registration.success.example%2Ecom.carol', request('reg_success', { 'Event-Timestamp': 1, Contact: '<sip:carol@198.51.100.1:5060>', Expires: 120, Username: 'carol', Realm: 'example.com', 'User-Agent': 'Yealink' }), { exchange: 'registrar' });
    bus.publish('registration.success.example%2Ecom.own', request('reg_success', { 'Server-ID': ME.serverId, 'Event-Timestamp': 1, Contact: 'sip:own@x', Expires: 120, Username: 'own', Realm: 'example.com' }), { exchange: 'registrar' });
    await until(() => dir.foreign.size === 1, 'carol learnt');
    await sleep(5);
    assert.equal(dir.foreign.size, 1);

    let [r] = await ask('registrar', 'registration.query.example%2Ecom.carol', request('reg_query', { Username: 'Carol', Realm: 'example.com', Fields: ['Contact', 'Expires', 'User-Agent'] }));
    assert.equal(r.payload['Event-Name'], 'reg_query_resp');
    assert.deepEqual(r.payload.Fields, [{ Contact: 'sip:carol@198.51.100.1:5060', Expires: 300, 'User-Agent': 'Yealink' }]);
    assert.equal(typeof r.payload['Registrar-Age'], 'number');

    [r] = await ask('registrar', 'registration.query.example%2Ecom.alice', request('reg_query', { Username: 'alice', Realm: 'example.com', Fields: ['Contact', 'Original-Contact', 'Network-IP'] }));
    assert.deepEqual(r.payload.Fields, [{ Contact: 'sip:alice@192.0.2.1:5060', 'Original-Contact': '<sip:alice@192.0.2.1:5060>', 'Network-IP': '192.0.2.1' }]);

    [r] = await ask('registrar', 'registration.query.example%2Ecom.*', request('reg_query', { Realm: 'example.com', 'Count-Only': true }));
    assert.equal(r.payload.Count, 2);
    assert.deepEqual(r.payload.Fields, []);

    [r] = await ask('registrar', 'registration.query.example%2Ecom.*', request('reg_query', { Realm: 'example.com' }));
    assert.equal((r.payload.Fields as unknown[]).length, 2);
    const row = (r.payload.Fields as Array<Record<string, unknown>>).find((f) => f.Username === 'alice')!;
    assert.ok(row.Expires === 3601 || row.Expires === 3600, 'granted lifetime');
    assert.equal(row['Registrar-Node'], ME.node);

    [r] = await ask('registrar', 'registration.query.example%2Ecom.nobody', request('reg_query', { Username: 'nobody', Realm: 'example.com' }));
    assert.equal(r.payload['Event-Name'], 'reg_query_error');
    assert.equal(r.payload.Fields, undefined);

    [r] = await ask('registrar', 'registration.query.example%2Ecom.nobody', request('reg_query', { Username: 'nobody', Realm: 'example.com', 'Count-Only': 'true' }));
    assert.equal(r.payload['Event-Name'], 'reg_query_resp', 'counting never errs');
    assert.equal(r.payload.Count, 0);

    assert.equal((await ask('registrar', 'registration.query.example%2Ecom.alice', request('reg_query', { Fields: ['Password'] }))).length, 0, 'invalid Fields: no answer');
  });

  it('honours reg_flush for foreign entries and our own bindings', async () => {
    local.add(binding('alice@example.com', 'k1', { expiresAt: Date.now() + 3600_000 }));
    local.add(binding('zed@other.test', 'k1', { expiresAt: Date.now() + 3600_000 }));
    bus.publish('registration.success.example%2Ecom.carol', request('reg_success', { 'Event-Timestamp': 1, Contact: 'sip:carol@x', Expires: 60, Username: 'carol', Realm: 'example.com' }), { exchange: 'registrar' });
    await until(() => dir.foreign.size === 1, 'carol learnt');
    bus.publish('registration.flush.example%2Ecom', request('reg_flush', { Realm: 'example.com' }), { exchange: 'registrar' });
    await until(() => dir.foreign.size === 0 && local.removed.length > 0, 'the flush');
    assert.deepEqual(local.removed, ['alice@example.com']);
    assert.equal(local.map.size, 1);
  });

  it('answers reg_sync with one reg_success per live binding, to the requester', async () => {
    local.add(binding('alice@example.com', 'k1', { expiresAt: Date.now() + 600_000 }));
    local.add(binding('alice@example.com', 'k2', { contact: 'sip:alice@192.0.2.9', expiresAt: Date.now() + 600_000 }));
    local.add(binding('bob@example.com', 'k1', { expiresAt: Date.now() + 600_000 }));
    bus.publish('registration.sync', request('reg_sync'), { exchange: 'registrar' });
    await until(() => replies.filter((m) => m.payload['Event-Name'] === 'reg_success').length >= 3, 'three re-announcements');
    const got = replies.filter((m) => m.payload['Event-Name'] === 'reg_success');
    assert.equal(got.length, 3);
    for (const m of got) assert.ok((m.payload.Expires as number) >= 599);
  });

  it('with foreign registrations off: takes no reg_success in, sends no reg_sync, still announces and answers', async () => {
    const quiet = new InProcessBus(log);
    const heard: BusMessage[] = [];
    const sent: BusMessage[] = [];
    quiet.subscribe(KAZOO, (m) => void heard.push(m), { exchange: 'targeted' });
    quiet.subscribe('registration.#', (m) => void sent.push(m), { exchange: 'registrar' });
    const before = quiet.size;
    const own = new KazooDirectory({ bus: quiet, credentials, passwords, location: local, sender: ME, expiresDeviation: 180, log, foreignRegistrations: false });
    own.start();
    assert.equal(quiet.size - before, 6, 'no registration.success.*.* subscription (the broker then delivers none)');
    quiet.publish('registration.success.example%2Ecom.carol', request('reg_success', { 'Event-Timestamp': 1, Contact: '<sip:carol@198.51.100.1:5060>', Expires: 120, Username: 'carol', Realm: 'example.com' }), { exchange: 'registrar' });
    quiet.publish(ME.serverId, request('reg_success', { 'Event-Timestamp': 1, Contact: 'sip:dave@x', Expires: 60, Username: 'dave', Realm: 'example.com' }), { exchange: 'targeted' });
    own.onBindingChanges([{ event: 'added', binding: binding('alice@example.com', 'k1', { expiresAt: Date.now() + 60_000 }) }]);
    await sleep(20);
    assert.equal(own.foreign.size, 0);
    assert.deepEqual(sent.map((m) => m.payload['Event-Name']), ['reg_success', 'reg_success'], 'carol\u2019s (published by the test) and ours, no reg_sync');
    quiet.publish('registration.query.example%2Ecom.*', request('reg_query', { Realm: 'example.com', 'Count-Only': true }), { exchange: 'registrar' });
    await until(() => heard.length === 1, 'reg_query answered');
    assert.equal(heard[0].payload.Count, 0, 'our bindings only (the fake location holds none)');
    own.stop();
  });

  it('takes answers to its own reg_sync from its queue into the foreign cache', async () => {
    bus.publish(ME.serverId, request('reg_success', { 'Event-Timestamp': 1, Contact: 'sip:dave@x', Expires: 60, Username: 'dave', Realm: 'example.com' }), { exchange: 'targeted' });
    await until(() => dir.foreign.query('dave', 'example.com').length === 1, 'dave learnt');
  });
});

describe('Kazoo directory on nodes sharing one location index', () => {
  const CLUSTER = 'c0ffee15cafe';
  let bus: InProcessBus;
  let replies: BusMessage[];
  let shared: Bindings;
  let nodes: KazooDirectory[];
  const sender = (node: string) => ({ appName: 'switchboard', appVersion: '0.1.0', node, serverId: kazooServerId(node, CLUSTER) });

  beforeEach(() => {
    bus = new InProcessBus(log);
    replies = [];
    shared = new Bindings();
    shared.add(binding('alice@example.com', 'k1', { expiresAt: Date.now() + 600_000 }));
    shared.add(binding('bob@example.com', 'k1', { expiresAt: Date.now() + 600_000 }));
    bus.subscribe(KAZOO, (m) => void replies.push(m), { exchange: 'targeted' });
    nodes = ['switchboard@a', 'switchboard@b'].map((n) => new KazooDirectory({ bus, credentials, passwords: null, location: shared, sender: sender(n), expiresDeviation: 180, log, cluster: CLUSTER }));
    for (const n of nodes) n.start();
  });

  it('answers a reg_query once, with each registration once, as one registrar', async () => {
    bus.publish('registration.query.example%2Ecom.*', request('reg_query', { Realm: 'example.com' }), { exchange: 'registrar' });
    await until(() => replies.length >= 1, 'an answer');
    await sleep(30);
    assert.equal(replies.length, 1, 'one answer from the two nodes');
    const fields = replies[0].payload.Fields as Array<Record<string, unknown>>;
    assert.deepEqual(fields.map((f) => f.Username).sort(), ['alice', 'bob']);
  });

  it('answers a reg_sync once: one reg_success per binding', async () => {
    bus.publish('registration.sync', request('reg_sync'), { exchange: 'registrar' });
    await until(() => replies.length >= 2, 'the re-announcements');
    await sleep(30);
    assert.deepEqual(replies.map((m) => m.payload.Username).sort(), ['alice', 'bob']);
  });

  it('takes a fellow node\u2019s reg_success and its reg_sync answers for its own, not for foreign registrations', async () => {
    const [a, b] = nodes;
    // Node B announces a registration (in the shared index already) and answers node A's reg_sync to A's queue.
    b.onBindingChanges([{ event: 'added', binding: binding('carol@example.com', 'k1', { expiresAt: Date.now() + 60_000 }) }]);
    const fromB = { ...request('reg_success', { 'Event-Timestamp': 1, Contact: 'sip:dave@x', Expires: 60, Username: 'dave', Realm: 'example.com' }), 'Server-ID': sender('switchboard@b').serverId };
    bus.publish(sender('switchboard@a').serverId, fromB, { exchange: 'targeted' });
    // A real foreign registrar's announcement is taken in.
    bus.publish('registration.success.example%2Ecom.erin', request('reg_success', { 'Event-Timestamp': 1, Contact: '<sip:erin@198.51.100.1:5060>', Expires: 120, Username: 'erin', Realm: 'example.com' }), { exchange: 'registrar' });
    await until(() => a.foreign.size === 1 && b.foreign.size === 1, 'erin learnt by both');
    await sleep(20);
    assert.deepEqual([a.foreign.query('carol', 'example.com'), a.foreign.query('dave', 'example.com'), b.foreign.query('carol', 'example.com')], [[], [], []]);
    assert.equal(a.foreign.query('erin', 'example.com').length, 1);
  });

  it('does not answer a fellow node\u2019s reg_query or reg_sync (it sees the same bindings)', async () => {
    const fellow = sender('switchboard@c').serverId;
    const heard: BusMessage[] = [];
    bus.subscribe(fellow, (m) => void heard.push(m), { exchange: 'targeted' });
    bus.publish('registration.sync', { ...request('reg_sync'), 'Server-ID': fellow }, { exchange: 'registrar' });
    bus.publish('registration.query.example%2Ecom.*', { ...request('reg_query', { Realm: 'example.com' }), 'Server-ID': fellow }, { exchange: 'registrar' });
    await sleep(50);
    assert.deepEqual(heard, []);
  });
});
