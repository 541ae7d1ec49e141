// Presence over real sockets (UDP and TCP) against a running server, with the raw test client as subscriber and
// publisher: SUBSCRIBE → 200 → NOTIFY with the current state; registration changes and PUBLISHes → NOTIFY to
// every watcher; refresh, unsubscribe, expiry; 489, 412, 423, 403; pending watchers admitted over HTTP;
// subscribers that stop answering are dropped; the HTTP API; and everything surviving a restart.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { collectEvents, type EventLog } from '../helpers/events.ts';
import { basics, pidf, PresencePeer, tagOf } from '../helpers/presence.ts';
import { register } from '../helpers/register.ts';
import { adminToken, startTestServer, tempDir, type TestServer } from '../helpers/server.ts';

const D = 'example.test';
const O = 'other.test';
const users: Record<string, string> = {};
const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar', 'peggy', 'trent'];
for (const n of NAMES) for (const t of ['udp', 'tcp']) users[`${n}-${t}@${D}`] = `pw-${n}-${t}`;
for (const n of NAMES) users[`${n}@${D}`] = `pw-${n}`;
users[`olga@${O}`] = 'pw-olga';
const acct = (name: string, domain = D) => ({ user: name, password: users[`${name}@${domain}`], domain });

describe('presence over SIP', () => {
  let server: TestServer;
  let log: EventLog;
  before(async () => {
    server = await startTestServer({ users, flags: { realm: [D, O], 'presence-min-expires': '1' } });
    log = await collectEvents(server.bus, 'presence.#');
  });
  after(() => server.close());

  const peers: PresencePeer[] = [];
  const open = async (transport: 'UDP' | 'TCP', name: string, domain = D) => {
    const p = await PresencePeer.open(transport, server.sipPort, acct(name, domain));
    peers.push(p);
    return p;
  };
  after(() => peers.forEach((p) => p.close()));

  for (const transport of ['UDP', 'TCP'] as const) {
    const t = transport.toLowerCase();
    describe(`over ${transport}`, () => {
      it('SUBSCRIBE → 200 and at once a NOTIFY with the current state; a registration → open; unregistering → closed', async () => {
        const presentity = `alice-${t}@${D}`;
        const watcher = await open(transport, `bob-${t}`);
        const { res, dialog } = await watcher.subscribe(presentity, { expires: 600 });
        assert.equal(res.status, 200, res.raw);
        assert.equal(res.header('Expires'), '600');
        assert.match(res.header('Contact')!, transport === 'TCP' ? /^<sip:127\.0\.0\.1:\d+;transport=tcp>$/ : /^<sip:127\.0\.0\.1:\d+>$/);
        assert.ok(dialog.toTag);
        const n1 = await watcher.notify();
        assert.equal(n1.uri, `sip:bob-${t}@127.0.0.1:${watcher.c.localPort};transport=${t}`, 'Request-URI: the Contact of the SUBSCRIBE');
        assert.equal(n1.header('Call-ID'), dialog.callId);
        assert.equal(tagOf(n1.header('From')), dialog.toTag);
        assert.equal(tagOf(n1.header('To')), dialog.fromTag);
        assert.equal(n1.header('Event'), 'presence');
        assert.equal(n1.header('Subscription-State'), 'active;expires=600');
        assert.equal(n1.header('Content-Type'), 'application/pidf+xml');
        assert.match(n1.header('Via')!, new RegExp(`^SIP/2.0/${transport} `));
        assert.deepEqual(basics(n1.body), ['closed']);
        assert.match(n1.body, new RegExp(`entity="sip:${presentity}"`));

        const phone = await open('UDP', `alice-${t}`);
        const reg = await register(phone.c, { user: `alice-${t}`, password: users[presentity], domain: D, contact: '<sip:alice@192.0.2.30:5060>', expires: 600 });
        assert.equal(reg.status, 200);
        const n2 = await watcher.notify();
        assert.deepEqual(basics(n2.body), ['open']);
        assert.doesNotMatch(n2.body, /<contact>|192\.0\.2\.30/, "the device's address is not in the document");
        assert.ok(Number(/^(\d+)/.exec(n2.header('CSeq')!)![1]) > Number(/^(\d+)/.exec(n1.header('CSeq')!)![1]), 'CSeq grows');

        const unreg = await register(phone.c, { user: `alice-${t}`, password: users[presentity], domain: D, contact: '<sip:alice@192.0.2.30:5060>', expires: 0 });
        assert.equal(unreg.status, 200);
        const n3 = await watcher.notify();
        assert.deepEqual(basics(n3.body), ['closed']);
      });

      it('one PUBLISH → a NOTIFY to every watcher; refresh (no NOTIFY), modify, remove', async () => {
        const presentity = `carol-${t}@${D}`;
        const publisher = await open(transport, `carol-${t}`);
        const w1 = await open('UDP', `dave-${t}`);
        const w2 = await open('TCP', `erin-${t}`);
        for (const w of [w1, w2]) {
          assert.equal((await w.subscribe(presentity)).res.status, 200);
          assert.deepEqual(basics((await w.notify()).body), ['closed']);
        }
        const created = await publisher.publish({ body: pidf(`sip:${presentity}`, 'open', { activities: ['busy'] }), expires: 300 });
        assert.equal(created.status, 200, created.raw);
        assert.equal(created.header('Expires'), '300');
        const etag = created.header('SIP-ETag')!;
        assert.ok(etag);
        for (const w of [w1, w2]) {
          const n = await w.notify();
          assert.deepEqual(basics(n.body), ['open']);
          assert.match(n.body, /<rpid:busy\/>/);
        }
        const refreshed = await publisher.publish({ etag, expires: 300 });
        assert.equal(refreshed.status, 200);
        const etag2 = refreshed.header('SIP-ETag')!;
        assert.notEqual(etag2, etag);
        assert.ok(await w1.quiet(300), 'a refresh changes nothing to notify');
        const modified = await publisher.publish({ etag: etag2, body: pidf(`sip:${presentity}`, 'closed', { activities: ['away'] }) });
        assert.equal(modified.status, 200);
        for (const w of [w1, w2]) assert.match((await w.notify()).body, /<basic>closed<\/basic>[\s\S]*<rpid:away\/>/);
        const removed = await publisher.publish({ etag: modified.header('SIP-ETag')!, expires: 0 });
        assert.equal(removed.status, 200);
        assert.equal(removed.header('Expires'), '0');
        for (const w of [w1, w2]) assert.doesNotMatch((await w.notify()).body, /rpid:away/);
      });

      it('refresh: 200 and a NOTIFY; unsubscribe: 200 and NOTIFY terminated;reason=timeout', async () => {
        const w = await open(transport, `frank-${t}`);
        const { dialog } = await w.subscribe(`grace-${t}@${D}`, { expires: 120 });
        await w.notify();
        const again = await w.resubscribe(dialog, 300);
        assert.equal(again.status, 200, again.raw);
        assert.equal(again.header('Expires'), '300');
        assert.equal((await w.notify()).header('Subscription-State'), 'active;expires=300');
        const bye = await w.resubscribe(dialog, 0);
        assert.equal(bye.status, 200);
        const last = await w.notify();
        assert.equal(last.header('Subscription-State'), 'terminated;reason=timeout');
        assert.deepEqual(basics(last.body), ['closed']);
        assert.equal((await w.resubscribe(dialog, 300)).status, 481, 'the dialog is gone');
      });
    });
  }

  it('a subscription not refreshed expires: NOTIFY terminated;reason=timeout', async () => {
    const w = await open('UDP', 'heidi');
    const { res } = await w.subscribe(`ivan@${D}`, { expires: 2 });
    assert.equal(res.header('Expires'), '2');
    assert.equal((await w.notify()).header('Subscription-State'), 'active;expires=2');
    const end = await w.notify(5000);
    assert.equal(end.header('Subscription-State'), 'terminated;reason=timeout');
    await log.waitFor((events) => events.some((e) => e.topic === 'presence.subscription.terminated' && e.payload.watcher === `heidi@${D}` && e.payload.cause === 'expired'), 'the expiry announced on the bus');
  });

  it('489 Bad Event with Allow-Events for other packages, on SUBSCRIBE and on PUBLISH', async () => {
    const w = await open('UDP', 'judy');
    const sub = await w.subscribe(`alice@${D}`, { event: 'dialog' });
    assert.equal(sub.res.status, 489);
    assert.equal(sub.res.header('Allow-Events'), 'presence');
    const pub = await w.publish({ event: 'message-summary', body: 'Messages-Waiting: no' });
    assert.equal(pub.status, 489);
    assert.equal(pub.header('Allow-Events'), 'presence');
  });

  it('412 for an entity tag not held; 403 publishing another presentity; 401 first', async () => {
    const p = await open('UDP', 'judy');
    const unknown = await p.publish({ etag: 'not-a-tag-we-issued', expires: 60 });
    assert.equal(unknown.status, 412);
    const other = await p.publish({ presentity: `alice@${D}`, body: pidf(`sip:alice@${D}`, 'open') });
    assert.equal(other.status, 403);
    assert.match(other.reason, /only the presentity itself/);
    // Unauthenticated: challenged like REGISTER.
    p.c.send(
      [`SUBSCRIBE sip:alice@${D} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${p.c.localPort};branch=z9hG4bKnoauth1`, `From: <sip:judy@${D}>;tag=x`, `To: <sip:alice@${D}>`, 'Call-ID: noauth', 'CSeq: 1 SUBSCRIBE', `Contact: <sip:judy@127.0.0.1:${p.c.localPort}>`, 'Event: presence', 'Content-Length: 0', '', ''].join('\r\n'),
    );
    const challenge = await p.c.response();
    assert.equal(challenge.status, 401);
    assert.match(challenge.header('WWW-Authenticate')!, /^Digest realm="example\.test"/);
  });

  it('Bearer: a SUBSCRIBE with an access token (scope presence) is accepted without a challenge', async () => {
    const account = (await server.accounts.findByName('mallory', D))!;
    const { token } = await server.tokens.issue(account);
    const w = await open('TCP', 'mallory');
    const { res } = await w.subscribe(`oscar@${D}`, { headers: [['Authorization', `Bearer ${token}`]] });
    assert.equal(res.status, 200, res.raw);
    assert.equal((await w.notify()).header('Subscription-State'), 'active;expires=3600');
  });

  it('a watcher the policy does not admit (another realm) is pending with empty NOTIFYs until allowed over HTTP', async () => {
    const owner = (await server.accounts.findByName('peggy', D))!;
    const { token } = await server.tokens.issue(owner);
    const w = await open('UDP', 'olga', O);
    const { res } = await w.subscribe(`peggy@${D}`, { expires: 600 });
    assert.equal(res.status, 200);
    const pending = await w.notify();
    assert.equal(pending.header('Subscription-State'), 'pending;expires=600');
    assert.equal(pending.body, '');
    const http = (method: string, path: string, body?: unknown) =>
      fetch(`${server.httpUrl}/users/${owner.id}/presence${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    const watchers = (await (await http('GET', '/watchers')).json()) as { watchers: Array<{ watcher: string; state: string }> };
    assert.deepEqual(watchers.watchers.map((x) => [x.watcher, x.state]), [[`olga@${O}`, 'pending']]);
    const set = await http('PUT', '/policy', { mode: 'realm', allow: [`olga@${O}`] });
    assert.equal(set.status, 200);
    assert.deepEqual(await set.json(), { mode: 'realm', allow: [`olga@${O}`] });
    const active = await w.notify();
    assert.equal(active.header('Subscription-State')!.split(';')[0], 'active');
    assert.deepEqual(basics(active.body), ['closed']);
    const revoked = await http('PUT', '/policy', { mode: 'allow-list', allow: [] });
    assert.equal(revoked.status, 200);
    assert.equal((await w.notify()).header('Subscription-State'), 'terminated;reason=rejected');
  });

  it('a TCP subscriber whose connection is gone is dropped at the next NOTIFY', async () => {
    const w = await open('TCP', 'trent');
    await w.subscribe(`trent-udp@${D}`);
    await w.notify();
    w.close();
    await new Promise((r) => setTimeout(r, 100));
    const p = await open('UDP', 'trent-udp');
    assert.equal((await p.publish({ body: pidf(`sip:trent-udp@${D}`, 'open') })).status, 200);
    const deadline = Date.now() + 5000;
    while (server.presence.watchers(`trent-udp@${D}`).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(server.presence.watchers(`trent-udp@${D}`), []);
  });

  it('HTTP: read the state, set it (watchers notified), list watchers, remove it; another account gets 403', async () => {
    const owner = (await server.accounts.findByName('oscar-udp', D))!;
    const stranger = (await server.accounts.findByName('peggy-udp', D))!;
    const { token } = await server.tokens.issue(owner);
    const { token: strangerToken } = await server.tokens.issue(stranger);
    const w = await open('TCP', 'peggy-tcp');
    await w.subscribe(`oscar-udp@${D}`);
    await w.notify();
    const url = `${server.httpUrl}/users/${owner.id}/presence`;
    const auth = { authorization: `Bearer ${token}` };
    const initial = (await (await fetch(url, { headers: auth })).json()) as { basic: string; source: string; document: string; watchers: { active: number } };
    assert.equal(initial.basic, 'closed');
    assert.equal(initial.source, 'none');
    assert.equal(initial.watchers.active, 1);
    assert.match(initial.document, /<basic>closed<\/basic>/);
    const put = await fetch(url, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ basic: 'open', activities: ['meeting'], note: 'in 2.14' }) });
    assert.equal(put.status, 200);
    const state = (await put.json()) as { basic: string; activities: string[]; notes: string[]; publications: Array<{ origin: string }> };
    assert.equal(state.basic, 'open');
    assert.deepEqual(state.activities, ['meeting']);
    assert.deepEqual(state.notes, ['in 2.14']);
    assert.deepEqual(state.publications.map((p) => p.origin), ['http']);
    const n = await w.notify();
    assert.match(n.body, /<basic>open<\/basic>[\s\S]*<rpid:meeting\/>/);
    const list = (await (await fetch(`${url}/watchers`, { headers: auth })).json()) as { watchers: Array<{ watcher: string; transport: string }> };
    assert.deepEqual(list.watchers.map((x) => [x.watcher, x.transport]), [[`peggy-tcp@${D}`, 'TCP']]);
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${strangerToken}` } })).status, 403);
    assert.equal((await fetch(url)).status, 401);
    assert.equal((await fetch(url, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ basic: 'maybe' }) })).status, 400);
    assert.equal((await fetch(url, { method: 'DELETE', headers: auth })).status, 204);
    assert.deepEqual(basics((await w.notify()).body), ['closed']);
    assert.equal((await fetch(url, { method: 'DELETE', headers: auth })).status, 404);
  });

  it('a deleted account: its watchers get NOTIFY terminated;reason=noresource, its own subscriptions end', async () => {
    const admin = await adminToken(server);
    const gone = (await server.accounts.findByName('ivan-udp', D))!;
    const w = await open('UDP', 'judy-udp');
    await w.subscribe(`ivan-udp@${D}`);
    await w.notify();
    const own = await open('UDP', 'ivan-udp');
    await own.subscribe(`judy-tcp@${D}`);
    await own.notify();
    const res = await fetch(`${server.httpUrl}/users/${gone.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    assert.equal(res.status, 204);
    assert.equal((await w.notify()).header('Subscription-State'), 'terminated;reason=noresource');
    assert.equal((await own.notify()).header('Subscription-State'), 'terminated;reason=rejected');
    assert.deepEqual(server.presence.watchers(`ivan-udp@${D}`), []);
    assert.deepEqual(server.presence.watchers(`judy-tcp@${D}`), []);
  });

  it('announces changes and subscriptions on the bus', async () => {
    await log.settle();
    const events = log.events;
    const topics = new Set(events.map((e) => e.topic));
    for (const t of ['presence.changed', 'presence.subscription.created', 'presence.subscription.refreshed', 'presence.subscription.terminated', 'presence.subscription.activated', 'presence.publication.created', 'presence.publication.modified', 'presence.publication.removed', 'presence.policy.changed']) {
      assert.ok(topics.has(t), `${t} published`);
    }
    const changed = events.find((e) => e.topic === 'presence.changed' && e.payload.aor === `carol-udp@${D}` && e.payload.basic === 'open')!;
    assert.deepEqual(changed.payload.activities, ['busy']);
    assert.equal(changed.payload.cause, 'publication');
  });
});

describe('presence subscriber that stops answering (UDP, Timer F)', () => {
  it('is dropped when its NOTIFY times out after 64*T1 (32 s)', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ users: { [`alice@${D}`]: 'pw-a', [`bob@${D}`]: 'pw-b' } });
    const w = await PresencePeer.open('UDP', server.sipPort, { user: 'bob', password: 'pw-b', domain: D });
    try {
      await w.subscribe(`alice@${D}`);
      await w.nextRequest('NOTIFY'); // read, never answered: retransmitted over UDP until Timer F
      const started = Date.now();
      while (server.presence.watchers(`alice@${D}`).length && Date.now() - started < 40_000) await new Promise((r) => setTimeout(r, 250));
      const took = Date.now() - started;
      assert.deepEqual(server.presence.watchers(`alice@${D}`), []);
      assert.ok(took > 25_000 && took < 40_000, `dropped after ${took} ms`);
      assert.ok(server.presence.counters.dropped >= 1);
    } finally {
      w.close();
      await server.close();
    }
  });
});

describe('presence across a restart', () => {
  it('keeps subscriptions (NOTIFY CSeq still growing) and publications (the entity tag still refreshes)', async () => {
    const dataDir = tempDir();
    const u = { [`alice@${D}`]: 'pw-a', [`bob@${D}`]: 'pw-b' };
    let server = await startTestServer({ users: u, dataDir });
    const w = await PresencePeer.open('UDP', server.sipPort, { user: 'bob', password: 'pw-b', domain: D });
    try {
      await w.subscribe(`alice@${D}`, { expires: 600 });
      const before = await w.notify();
      const p1 = await PresencePeer.open('UDP', server.sipPort, { user: 'alice', password: 'pw-a', domain: D });
      const created = await p1.publish({ body: pidf(`sip:alice@${D}`, 'open', { activities: ['busy'] }), expires: 600 });
      const etag = created.header('SIP-ETag')!;
      await w.notify();
      p1.close();
      await server.close();

      // Same port is not guaranteed: the watcher's Contact and flow stay the same, that is what matters.
      server = await startTestServer({ dataDir });
      assert.equal(server.presence.watchers(`alice@${D}`).length, 1);
      assert.deepEqual(server.presence.state(`alice@${D}`).activities, ['busy']);
      const p2 = await PresencePeer.open('UDP', server.sipPort, { user: 'alice', password: 'pw-a', domain: D });
      const refreshed = await p2.publish({ etag, expires: 600 });
      assert.equal(refreshed.status, 200, 'the publication survived');
      const modified = await p2.publish({ etag: refreshed.header('SIP-ETag')!, body: pidf(`sip:alice@${D}`, 'closed') });
      assert.equal(modified.status, 200);
      const after = await w.notify();
      assert.deepEqual(basics(after.body), ['closed']);
      assert.ok(Number(/^(\d+)/.exec(after.header('CSeq')!)![1]) > Number(/^(\d+)/.exec(before.header('CSeq')!)![1]));
      p2.close();
    } finally {
      w.close();
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
