// Switchboard as a Kazoo registrar, end to end over the machine's RabbitMQ: a Kazoo component (amqplib, its own
// envelope and reply queue) publishes each request as Kamailio's kazoo module or ecallmgr would, and every reply is
// checked field by field; a registration over SIP shows up as reg_success on a queue bound as Kazoo binds it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SERVER_VERSION } from '../../src/server.ts';
import { computeHa1 } from '../../src/sip/digest.ts';
import { KazooPeer, until, type Json } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { register } from '../helpers/register.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const skip = await missingRabbit();

const ENVELOPE_KEYS = ['App-Name', 'App-Version', 'Event-Category', 'Event-Name', 'Msg-ID', 'Node', 'Server-ID'];
const sorted = (o: Json) => Object.keys(o).sort();

describe('Kazoo directory over RabbitMQ', { skip }, () => {
  let vhost: TestVhost;
  let server: TestServer;
  let kazoo: KazooPeer;
  let aliceId: string;
  let bobId: string;

  before(async () => {
    vhost = await createVhost();
    server = await startTestServer({
      flags: { bus: vhost.url, 'kazoo-node': 'switchboard@test', realm: ['example.test'] },
      users: { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' },
    });
    kazoo = await KazooPeer.open(vhost.url);
    aliceId = (await server.accounts.findByName('alice', 'example.test'))!.id;
    bobId = (await server.accounts.findByName('bob', 'example.test'))!.id;
  });
  after(async () => {
    await kazoo?.close();
    await server?.close();
    await vhost?.delete();
  });

  const authnReq = (extra: Json = {}): Json => ({
    ...kazoo.envelope('authn_req'),
    Method: 'REGISTER',
    'Auth-User': 'alice',
    'Auth-Realm': 'example.test',
    'Auth-Nonce': 'abc',
    From: 'sip:alice@example.test',
    To: 'sip:alice@example.test',
    'Orig-IP': '192.0.2.50',
    'Orig-Port': '5060',
    'Call-ID': 'call-1@sbc',
    'User-Agent': 'Yealink SIP-T46S',
    Contact: '<sip:alice@192.0.2.50:5060>',
    ...extra,
  });

  const ccvs = (id: string, user: string) => ({
    Username: user, Realm: 'example.test', 'Account-ID': id, 'Authorizing-ID': id, 'Authorizing-Type': 'device', 'Owner-ID': id, 'Presence-ID': `${user}@example.test`,
  });

  it('reports the broker connection and its traffic on /metrics', async () => {
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    assert.match(text, /^switchboard_bus_connected 1$/m);
    assert.match(text, /^switchboard_bus_outbox \d+$/m);
    assert.match(text, /^switchboard_bus_published_total \d+$/m);
  });

  it('answers authn_req on callmgr with authn_resp (a1-hash), field by field', async () => {
    const req = authnReq();
    const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', req);
    assert.ok(resp, 'an answer');
    assert.deepEqual(sorted(resp), [...ENVELOPE_KEYS, 'Auth-Method', 'Auth-Password', 'Auth-Username', 'Custom-Channel-Vars'].sort());
    assert.equal(resp['App-Name'], 'switchboard');
    assert.equal(resp['App-Version'], SERVER_VERSION);
    assert.equal(resp['Event-Category'], 'directory');
    assert.equal(resp['Event-Name'], 'authn_resp');
    assert.equal(resp['Msg-ID'], req['Msg-ID']);
    assert.equal(resp.Node, 'switchboard@test');
    assert.match(resp['Server-ID'] as string, /^switchboard@test-\d+-[0-9a-f]{8}$/);
    assert.equal(resp['Auth-Method'], 'a1-hash');
    assert.equal(resp['Auth-Password'], computeHa1('MD5', 'alice', 'example.test', 'alice-pw'));
    assert.equal(resp['Auth-Username'], 'alice');
    assert.deepEqual(resp['Custom-Channel-Vars'], ccvs(aliceId, 'alice'));
  });

  it('answers authn.endpoint.req on registrar too, and applies Kazoo\u2019s user/realm rules', async () => {
    const [a] = await kazoo.request('registrar', 'authn.endpoint.req.example%2Etest', authnReq());
    assert.equal(a['Event-Name'], 'authn_resp');
    // Auth-User unknown → the user of To; Auth-Realm an IP → the domain of To; both lower-cased.
    const [b] = await kazoo.request('callmgr', 'authn.req.192%2E0%2E2%2E1', authnReq({ 'Auth-User': 'unknown', 'Auth-Realm': '192.0.2.1', To: '<sip:BOB@Example.Test:5060>' }));
    assert.equal(b['Event-Name'], 'authn_resp');
    assert.equal(b['Auth-Password'], computeHa1('MD5', 'bob', 'example.test', 'bob-pw'));
    assert.deepEqual(b['Custom-Channel-Vars'], ccvs(bobId, 'bob'));
  });

  it('answers authn_err (Defer-Response) for unknown credentials', async () => {
    const req = authnReq({ 'Auth-User': 'mallory' });
    const [err] = await kazoo.request('callmgr', 'authn.req.example%2Etest', req);
    assert.deepEqual(sorted(err), [...ENVELOPE_KEYS, 'Defer-Response'].sort());
    assert.equal(err['Event-Name'], 'authn_err');
    assert.equal(err['Msg-ID'], req['Msg-ID']);
    assert.equal(err['Defer-Response'], 'true');
  });

  it('answers `password` only for an account an admin opted into reversible storage', async () => {
    const token = await adminToken(server);
    const url = `${server.httpUrl}/users/${bobId}/reversible-sip-password`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    assert.deepEqual(await (await fetch(url, { headers })).json(), { enabled: false });
    const wrong = await fetch(url, { method: 'PUT', headers, body: JSON.stringify({ password: 'not-bobs' }) });
    assert.equal(wrong.status, 400);
    const unauth = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: 'bob-pw' }) });
    assert.equal(unauth.status, 401);
    const ok = await fetch(url, { method: 'PUT', headers, body: JSON.stringify({ password: 'bob-pw' }) });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { enabled: true });

    const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', authnReq({ 'Auth-User': 'bob', From: 'sip:bob@example.test', To: 'sip:bob@example.test' }));
    assert.equal(resp['Auth-Method'], 'password');
    assert.equal(resp['Auth-Password'], 'bob-pw');
    assert.deepEqual(resp['Custom-Channel-Vars'], ccvs(bobId, 'bob'));
    const [other] = await kazoo.request('callmgr', 'authn.req.example%2Etest', authnReq());
    assert.equal(other['Auth-Method'], 'a1-hash', 'alice did not opt in');

    assert.equal((await fetch(url, { method: 'DELETE', headers: { authorization: headers.authorization } })).status, 200);
    const [after] = await kazoo.request('callmgr', 'authn.req.example%2Etest', authnReq({ 'Auth-User': 'bob', To: 'sip:bob@example.test' }));
    assert.equal(after['Auth-Method'], 'a1-hash');
  });

  it('publishes reg_success for a registration over SIP, and Expires 0 when it goes away', async () => {
    const listener = await kazoo.listen('registrar', ['registration.success.*.*']);
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      const r = await register(c, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 300, callId: 'reg-alice-1@test' });
      assert.equal(r.status, 200);
      await until(() => listener.messages.length >= 1, 'reg_success');
      const m = listener.messages[0];
      assert.deepEqual(sorted(m), [
        ...ENVELOPE_KEYS, 'AOR', 'Account-ID', 'Authorizing-ID', 'Call-ID', 'Contact', 'Custom-Channel-Vars', 'Event-Timestamp', 'Expires', 'First-Registration',
        'From-Host', 'From-User', 'Network-IP', 'Network-Port', 'Original-Contact', 'RUID', 'Realm', 'Registrar-Node', 'Source-IP', 'Source-Port', 'Status', 'To-Host', 'To-User', 'Username',
      ].sort());
      assert.equal(m['Event-Name'], 'reg_success');
      assert.equal(m['App-Name'], 'switchboard');
      const contact = `<sip:alice@127.0.0.1:${c.localPort};transport=udp>`;
      assert.equal(m.Contact, contact);
      assert.equal(m['Original-Contact'], contact);
      assert.ok(m.Expires === 300 || m.Expires === 299, `Expires ${m.Expires}`);
      assert.equal(m.Username, 'alice');
      assert.equal(m.Realm, 'example.test');
      assert.equal(m.AOR, 'sip:alice@example.test');
      assert.equal(m['From-User'], 'alice');
      assert.equal(m['From-Host'], 'example.test');
      assert.equal(m['To-User'], 'alice');
      assert.equal(m['To-Host'], 'example.test');
      assert.equal(m['Call-ID'], 'reg-alice-1@test');
      assert.equal(m['Network-IP'], '127.0.0.1');
      assert.equal(m['Network-Port'], String(c.localPort));
      assert.equal(m['Source-IP'], '127.0.0.1');
      assert.equal(m['Source-Port'], String(c.localPort));
      assert.equal(m.Status, 'Registered');
      assert.equal(m['First-Registration'], true);
      assert.equal(m['Registrar-Node'], 'switchboard@test');
      assert.equal(m['Account-ID'], aliceId);
      assert.equal(m['Authorizing-ID'], aliceId);
      assert.deepEqual(m['Custom-Channel-Vars'], ccvs(aliceId, 'alice'));
      assert.ok(Math.abs((m['Event-Timestamp'] as number) - Date.now() / 1000) < 5);

      // reg_query for her: only the requested fields.
      const q: Json = { ...kazoo.envelope('reg_query'), Username: 'alice', Realm: 'example.test', Fields: ['Contact', 'Original-Contact', 'Expires', 'Registrar-Node'] };
      const [resp] = await kazoo.request('registrar', 'registration.query.example%2Etest.alice', q);
      assert.deepEqual(sorted(resp), [...ENVELOPE_KEYS, 'Fields', 'Registrar-Age'].sort());
      assert.equal(resp['Event-Name'], 'reg_query_resp');
      assert.equal(resp['Msg-ID'], q['Msg-ID']);
      assert.equal(typeof resp['Registrar-Age'], 'number');
      assert.deepEqual(resp.Fields, [{ Contact: contact.slice(1, -1), 'Original-Contact': contact, Expires: 300, 'Registrar-Node': 'switchboard@test' }]);

      // Unregister: Expires 0.
      const u = await register(c, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 0, callId: 'reg-alice-1@test', cseq: 3 });
      assert.equal(u.status, 200);
      await until(() => listener.messages.length >= 2, 'the removal');
      assert.equal(listener.messages[1].Expires, 0);
      assert.equal(listener.messages[1].Status, 'Unregistered');
      assert.equal(listener.messages[1].Contact, contact);
    } finally {
      c.close();
    }
  });

  it('keeps reg_success from other switches (ecallmgr rules) and answers reg_query, Count-Only and reg_query_error', async () => {
    const carol = {
      ...kazoo.envelope('reg_success'),
      'Event-Timestamp': Math.floor(Date.now() / 1000),
      Contact: '<sip:carol@198.51.100.20:5060;transport=udp>',
      Expires: 120,
      Username: 'Carol',
      Realm: 'Example.test',
      'Proxy-Path': '<sip:10.1.1.1:5060;lr>',
      'User-Agent': 'Polycom',
      'Network-IP': '198.51.100.20',
      'Network-Port': '5060',
    };
    kazoo.publish('registrar', 'registration.success.Example%2Etest.Carol', carol);
    await until(() => (server.kazoo?.foreign.size ?? 0) === 1, 'carol in the foreign cache');

    const q = { ...kazoo.envelope('reg_query'), Username: 'carol', Realm: 'example.test', Fields: ['Contact', 'Original-Contact', 'Expires', 'Bridge-RURI', 'User-Agent'] };
    const [resp] = await kazoo.request('registrar', 'registration.query.example%2Etest.carol', q);
    assert.equal(resp['Event-Name'], 'reg_query_resp');
    assert.deepEqual(resp.Fields, [{
      Contact: 'sip:carol@198.51.100.20:5060;transport=udp',
      'Original-Contact': '<sip:carol@198.51.100.20:5060;transport=udp>',
      Expires: 300,
      'Bridge-RURI': 'sip:Carol@Example.test;fs_path=<sip:10.1.1.1:5060;lr>',
      'User-Agent': 'Polycom',
    }]);

    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(c, { user: 'bob', password: 'bob-pw', domain: 'example.test', expires: 600 })).status, 200);
      const count = { ...kazoo.envelope('reg_query'), Realm: 'example.test', 'Count-Only': true };
      const [n] = await kazoo.request('registrar', 'registration.query.example%2Etest.*', count);
      assert.equal(n['Event-Name'], 'reg_query_resp');
      assert.equal(n.Count, 2, 'bob (ours) and carol (foreign)');
      assert.deepEqual(n.Fields, []);
      const all = { ...kazoo.envelope('reg_query'), Realm: 'example.test' };
      const [everyone] = await kazoo.request('registrar', 'registration.query.example%2Etest.*', all);
      const users = (everyone.Fields as Json[]).map((f) => String(f.Username).toLowerCase()).sort();
      assert.deepEqual(users, ['bob', 'carol']);
    } finally {
      c.close();
    }

    const none: Json = { ...kazoo.envelope('reg_query'), Username: 'nobody', Realm: 'example.test' };
    const [err] = await kazoo.request('registrar', 'registration.query.example%2Etest.nobody', none);
    assert.deepEqual(sorted(err), [...ENVELOPE_KEYS, 'Registrar-Age'].sort());
    assert.equal(err['Event-Name'], 'reg_query_error');
    assert.equal(err['Msg-ID'], none['Msg-ID']);

    // reg_flush of carol: gone from the answers.
    kazoo.publish('registrar', 'registration.flush.example%2Etest', { ...kazoo.envelope('reg_flush'), Realm: 'example.test', Username: 'carol' });
    await until(() => server.kazoo!.foreign.size === 0, 'the flush');
    const [gone] = await kazoo.request('registrar', 'registration.query.example%2Etest.carol', { ...kazoo.envelope('reg_query'), Username: 'carol', Realm: 'example.test' });
    assert.equal(gone['Event-Name'], 'reg_query_error');
  });

  it('answers reg_sync with one reg_success per live contact, to the requester', async () => {
    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(c, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600, contact: [`<sip:alice@127.0.0.1:${c.localPort}>`, `<sip:alice@127.0.0.1:${c.localPort + 1}>`] })).status, 200);
    } finally {
      c.close();
    }
    let live = 0;
    for await (const [, l] of server.location.entries()) live += l.length;
    const before = kazoo.stray.length;
    // Each reg_success carries a Msg-ID of its own, so they are not replies by Msg-ID: they land in `stray`.
    kazoo.publish('registrar', 'registration.sync', kazoo.envelope('reg_sync'));
    const fresh = () => kazoo.stray.slice(before).filter((m) => m['Event-Name'] === 'reg_success');
    await until(() => fresh().length >= live, 'the re-announcements');
    await new Promise((r) => setTimeout(r, 100));
    const rs = fresh();
    assert.equal(rs.length, live);
    assert.ok(rs.every((m) => (m.Expires as number) > 0 && m['Registrar-Node'] === 'switchboard@test'));
    assert.deepEqual([...new Set(rs.map((m) => m.Username))].sort(), ['alice', 'bob']);
  });

  it('logs and rejects malformed messages without harm, and keeps answering', async () => {
    kazoo.publish('callmgr', 'authn.req.example%2Etest', 'this is not JSON');
    kazoo.publish('callmgr', 'authn.req.example%2Etest', Buffer.from([0xff, 0xfe, 0x00]));
    kazoo.publish('callmgr', 'authn.req.example%2Etest', '[1,2,3]');
    kazoo.publish('callmgr', 'authn.req.example%2Etest', { 'Event-Name': 'authn_req' });
    kazoo.publish('callmgr', 'authn.req.example%2Etest', { ...authnReq(), 'Auth-User': 42 });
    kazoo.publish('registrar', 'registration.success.x.y', { ...kazoo.envelope('reg_success'), Expires: 'later' });
    kazoo.publish('registrar', 'registration.query.x.y', { ...kazoo.envelope('reg_query'), Fields: 'Contact' });
    kazoo.publish('registrar', 'registration.flush.x', kazoo.envelope('reg_flush'));
    const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', authnReq());
    assert.equal(resp['Event-Name'], 'authn_resp');
    await until(() => (server.bus as unknown as { stats(): { rejected: number } }).stats().rejected >= 8, 'eight rejections');
  });
});

describe('two Switchboard deployments on one broker', { skip }, () => {
  let vhost: TestVhost;
  const servers: TestServer[] = [];
  let kazoo: KazooPeer;

  before(async () => {
    vhost = await createVhost();
    // Each its own data directory, so its own master key and accounts: two registrars, not two nodes of one.
    servers.push(await startTestServer({ flags: { bus: vhost.url, 'kazoo-node': 'switchboard@one', realm: ['example.test'] }, users: { 'alice@example.test': 'alice-pw' } }));
    servers.push(await startTestServer({ flags: { bus: vhost.url, 'kazoo-node': 'switchboard@two', realm: ['example.test'] }, users: { 'carol@example.test': 'carol-pw' } }));
    kazoo = await KazooPeer.open(vhost.url);
  });
  after(async () => {
    await kazoo?.close();
    for (const s of servers) await s.close();
    await vhost?.delete();
  });

  it('both get every authn_req: the one that knows the user answers it, the other defers', async () => {
    for (const [user, knows] of [['alice', 'switchboard@one'], ['carol', 'switchboard@two'], ['alice', 'switchboard@one'], ['carol', 'switchboard@two']]) {
      const req = { ...kazoo.envelope('authn_req'), Method: 'REGISTER', 'Auth-User': user, 'Auth-Realm': 'example.test', From: `sip:${user}@example.test`, To: `sip:${user}@example.test` };
      const replies = await kazoo.request('callmgr', 'authn.req.example%2Etest', req, { want: 2 });
      const byNode = Object.fromEntries(replies.map((r) => [r.Node as string, r]));
      assert.deepEqual(Object.keys(byNode).sort(), ['switchboard@one', 'switchboard@two'], `${user}: an answer from each deployment`);
      assert.equal(byNode[knows]['Event-Name'], 'authn_resp', `${user}: answered by ${knows}`);
      const other = byNode[knows === 'switchboard@one' ? 'switchboard@two' : 'switchboard@one'];
      assert.equal(other['Event-Name'], 'authn_err');
      assert.equal(other['Defer-Response'], 'true');
    }
  });
});
