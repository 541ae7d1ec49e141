// Two Switchboard nodes on one machine as one system: separate processes on their own ports, sharing the
// machine's PostgreSQL (a fresh schema), Redis (a fresh key prefix), RabbitMQ (a fresh vhost) and the master key.
//
// - a phone registers through node A; node B authenticates its next REGISTER (with a nonce node A issued) and
//   lists its binding over HTTP;
// - a watcher subscribed on node A is notified when the presentity PUBLISHes through node B;
// - a check-sync NOTIFY asked of node B reaches a phone over its TCP connection to node A (relayed on the bus);
// - Redis loses the shared index: a node reloads it from PostgreSQL;
// - node A is killed with SIGKILL: node B still serves A's UDP bindings (lists them, refreshes them) and, once A's heartbeat lapses, removes the bindings only A's connections could reach (RFC 5626 flow)
//   and announces A's departure.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'amqplib';
import { openDurable } from '../../src/adapters.ts';
import { newAccount } from '../../src/identity/accounts.ts';
import { PasswordHasher } from '../../src/identity/passwords.ts';
import { basics, parseRequest, pidf, PresencePeer, responseTo } from '../helpers/presence.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';
import { createVhost, missingRabbit, queueBindings, type TestVhost } from '../helpers/rabbitmq.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';
import { register } from '../helpers/register.ts';
import { spawnServer, tempDir, testConfig, type ChildServer, type Flags } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';
const PW: Record<'alice' | 'bob' | 'carol' | 'admin', string> = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', admin: 'admin-pw' };

const missing = (await postgresMissing()) || (await redisMissing()) || (await missingRabbit());

interface Binding {
  contact: string;
  transport: string;
  node: string | null;
  expires: number;
  callId: string;
  cseq: number;
}

describe('two nodes sharing PostgreSQL, Redis and RabbitMQ', { skip: missing }, () => {
  const schema = freshSchema();
  const prefix = freshPrefix();
  const master = randomBytes(32).toString('hex');
  let vhost: TestVhost;
  let shared: Flags;
  const dirs: string[] = [];
  let a: ChildServer;
  let b: ChildServer;
  let token: string;

  const startNode = async (id: string): Promise<ChildServer> => {
    const dir = tempDir(`sb-node-${id}-`);
    dirs.push(dir);
    // Every node must hold the same master key: nonces, sealed signing keys and link codes depend on it.
    writeFileSync(path.join(dir, 'master.key'), master + '\n', { mode: 0o600 });
    return spawnServer(dir, { ...shared, 'node-id': id, 'sip-transports': 'UDP,TCP' });
  };

  const http = (node: ChildServer, p: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${node.httpPort}${p}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });

  const bindingsOf = async (node: ChildServer, user: string): Promise<Binding[]> => {
    const res = await http(node, `/v1/registrations?realm=${D}&user=${user}`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { registrations: Array<{ aor: string; bindings: Binding[] }> };
    return body.registrations.find((r) => r.aor === `${user}@${D}`)?.bindings ?? [];
  };

  const until = async (what: string, check: () => Promise<boolean>, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  before(async () => {
    vhost = await createVhost();
    shared = {
      database: PG_URL,
      'database-schema': schema,
      cache: REDIS_URL,
      'cache-prefix': prefix,
      bus: vhost.url,
      'node-heartbeat': '1',
    };
    // Accounts go straight into the shared database, as `switchboard user add` would.
    const seedDir = tempDir('sb-node-seed-');
    dirs.push(seedDir);
    const config = testConfig(seedDir, shared);
    const durable = await openDurable(config);
    try {
      const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
      for (const u of ['alice', 'bob', 'carol'] as const) await durable.accounts.create(newAccount(u, D, PW[u]));
      await durable.accounts.create({ ...newAccount('admin', D, PW.admin, ['admin']), passwordHash: await hasher.hash(PW.admin) });
    } finally {
      await durable.close();
    }
    a = await startNode('node-a');
    b = await startNode('node-b');
    // An admin token from node B; node A verifies it too (same signing keys).
    const login = await fetch(`http://127.0.0.1:${b.httpPort}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `admin@${D}`, password: PW.admin }) });
    assert.equal(login.status, 200);
    token = ((await login.json()) as { access_token: string }).access_token;
  });

  after(async () => {
    await a?.kill('SIGKILL');
    await b?.kill('SIGTERM');
    await dropSchema(schema).catch(() => {});
    await dropPrefix(prefix).catch(() => {});
    await vhost?.delete();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a phone registered through node A is authenticated and listed by node B', async () => {
    const phone = await SipTestClient.open('UDP', a.sipPort);
    const viaB = await SipTestClient.open('UDP', b.sipPort);
    try {
      const contact = `<sip:alice@127.0.0.1:${phone.localPort}>`;
      const callId = `two-nodes-${randomBytes(4).toString('hex')}@test`;
      const reg = await register(phone, { user: 'alice', password: PW.alice, domain: D, contact, callId, expires: 300 });
      assert.equal(reg.status, 200);

      // Node B lists it (shared index), and node A's admin API answers with the token node B issued.
      const [onB] = await bindingsOf(b, 'alice');
      assert.equal(onB.contact, `sip:alice@127.0.0.1:${phone.localPort}`);
      assert.equal(onB.node, 'node-a');
      assert.deepEqual(await bindingsOf(a, 'alice'), [onB]);

      // Node A's challenge, answered to node B: the nonce is stateless and keyed from the shared master key.
      const spec = { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:alice@${D}>`, to: `<sip:alice@${D}>`, callId, contact, headers: [['Expires', '300']] as Array<[string, string]> };
      const challenged = await phone.request(buildRequest(phone, { ...spec, cseq: 10 }));
      assert.equal(challenged.status, 401);
      const auth = digestAuthorization(parseChallenge(challenged.header('WWW-Authenticate')!), { username: 'alice', password: PW.alice, method: 'REGISTER', uri: `sip:${D}` });
      const refreshed = await viaB.request(buildRequest(viaB, { ...spec, cseq: 11, headers: [...spec.headers, ['Authorization', auth]] }));
      assert.equal(refreshed.status, 200, 'node B accepts the Digest answer to node A\u2019s nonce');
      const after = await bindingsOf(a, 'alice');
      assert.equal(after.length, 1, 'the refresh through B updated the binding A made, no second one');
      assert.equal(after[0].cseq, 11);
      assert.equal(after[0].node, 'node-b');

      // A wrong password through B is refused as it would be through A.
      const bad = await register(viaB, { user: 'alice', password: 'wrong', domain: D, contact, callId: `bad-${callId}` });
      assert.equal(bad.status, 401, "a wrong password is challenged again, as through A");
    } finally {
      phone.close();
      viaB.close();
    }
  });

  it('a watcher subscribed on node A is notified of a PUBLISH through node B', async () => {
    const bob = await PresencePeer.open('TCP', a.sipPort, { user: 'bob', password: PW.bob, domain: D });
    const carol = await PresencePeer.open('UDP', b.sipPort, { user: 'carol', password: PW.carol, domain: D });
    try {
      const { res } = await bob.subscribe(`carol@${D}`, { expires: 600 });
      assert.equal(res.status, 200);
      const first = await bob.notify(5000);
      assert.deepEqual(basics(first.body), ['closed']);

      const pub = await carol.publish({ body: pidf(`sip:carol@${D}`, 'open', { note: 'via node B' }), expires: 600 });
      assert.equal(pub.status, 200);
      const n = await bob.notify(10_000);
      assert.deepEqual(basics(n.body), ['open'], 'node A composed the publication made on node B');
      assert.match(n.body, /via node B/);
    } finally {
      bob.close();
      carol.close();
    }
  });

  it('a watcher on node A hears of a registration made through node B (node A follows that presentity\u2019s binding events)', async () => {
    const bob = await PresencePeer.open('TCP', a.sipPort, { user: 'bob', password: PW.bob, domain: D });
    const phone = await SipTestClient.open('UDP', b.sipPort);
    try {
      const { res } = await bob.subscribe(`admin@${D}`, { expires: 600 });
      assert.equal(res.status, 200);
      assert.deepEqual(basics((await bob.notify(5000)).body), ['closed']);
      // At the broker: binding events reach a node's queue only for the presentities its watchers follow.
      const onEvents = (await queueBindings(vhost.name, 'switchboard')).filter((b) => b.key.startsWith('binding.'));
      assert.ok(onEvents.some((b) => b.key === 'binding.*.example%2Etest.admin'), JSON.stringify(onEvents));
      assert.ok(onEvents.every((b) => /^binding\.\*\.[^.*#]+\.[^.*#]+$/.test(b.key)), `no node takes every binding event: ${JSON.stringify(onEvents)}`);
      const contact = `<sip:admin@127.0.0.1:${phone.localPort}>`;
      const callId = `watched-${randomBytes(4).toString('hex')}@test`;
      assert.equal((await register(phone, { user: 'admin', password: PW.admin, domain: D, contact, callId, expires: 300 })).status, 200);
      const open = await bob.notify(10_000);
      assert.deepEqual(basics(open.body), ['open'], 'registered through B, composed and notified on A');
      assert.equal((await register(phone, { user: 'admin', password: PW.admin, domain: D, contact, callId, cseq: 5, expires: 0 })).status, 200);
      assert.deepEqual(basics((await bob.notify(10_000)).body), ['closed']);
    } finally {
      bob.close();
      phone.close();
    }
  });

  it('Kazoo sees the two nodes as one registrar: a reg_query answered once, each registration once', async () => {
    const phone = await SipTestClient.open('UDP', a.sipPort);
    const conn = await connect(vhost.url);
    try {
      const contact = `<sip:carol@127.0.0.1:${phone.localPort}>`;
      const callId = `kz-${randomBytes(4).toString('hex')}@test`;
      assert.equal((await register(phone, { user: 'carol', password: PW.carol, domain: D, contact, callId, expires: 300 })).status, 200);
      // Kazoo's side: a reply queue on the targeted exchange, a reg_query on the registrar exchange.
      const ch = await conn.createChannel();
      const serverId = `kazoo-test-${randomBytes(3).toString('hex')}`;
      const q = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(q.queue, 'targeted', serverId);
      const answers: Array<Record<string, unknown>> = [];
      await ch.consume(q.queue, (m) => void (m && answers.push(JSON.parse(m.content.toString()))), { noAck: true });
      const query = {
        'App-Name': 'ecallmgr', 'App-Version': '4.3', 'Event-Category': 'directory', 'Event-Name': 'reg_query', 'Msg-ID': randomBytes(4).toString('hex'),
        'Server-ID': serverId, Node: 'ecallmgr@kazoo', Realm: D, Username: 'carol',
      };
      ch.publish('registrar', 'registration.query.example%2Etest.carol', Buffer.from(JSON.stringify(query)), { contentType: 'application/json' });
      await until('the answer', async () => answers.length > 0, 5000);
      await new Promise((r) => setTimeout(r, 500)); // a second node's answer would have come by now
      assert.equal(answers.length, 1, `one answer from the two nodes: ${answers.map((x) => x['Server-ID']).join(', ')}`);
      assert.equal(answers[0]['Event-Name'], 'reg_query_resp');
      const fields = answers[0].Fields as Array<Record<string, unknown>>;
      assert.equal(fields.length, 1, 'carol\u2019s binding once: not again as a foreign registration learnt from the other node');
      assert.equal(fields[0].Contact, `sip:carol@127.0.0.1:${phone.localPort}`);
      // Gone again: the tests below count carol's bindings.
      assert.equal((await register(phone, { user: 'carol', password: PW.carol, domain: D, contact, callId, cseq: 5, expires: 0 })).status, 200);
    } finally {
      phone.close();
      await conn.close();
    }
  });

  it('a password changed through node A stops working through node B at once, though B had it cached', async () => {
    const phone = await SipTestClient.open('UDP', b.sipPort);
    try {
      const reg = (password: string, expires = 300) => register(phone, { user: 'bob', password, domain: D, contact: `<sip:bob@127.0.0.1:${phone.localPort}>`, expires });
      assert.equal((await reg(PW.bob)).status, 200, 'node B has bob\u2019s HA1 in its cache now');
      const login = await fetch(`http://127.0.0.1:${a.httpPort}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `bob@${D}`, password: PW.bob }) });
      const { access_token } = (await login.json()) as { access_token: string };
      const id = JSON.parse(Buffer.from(access_token.split('.')[1], 'base64url').toString()).sub as string;
      const put = await fetch(`http://127.0.0.1:${a.httpPort}/users/${id}/password`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ password: 'bob-new-pw', currentPassword: PW.bob }),
      });
      assert.equal(put.status, 204);
      await new Promise((r) => setTimeout(r, 300)); // the invalidation's trip over the bus (the cache TTL is 60 s)
      assert.equal((await reg(PW.bob)).status, 401, 'the old password is refused through node B');
      assert.equal((await reg('bob-new-pw')).status, 200);
      PW.bob = 'bob-new-pw';
      assert.equal((await reg(PW.bob, 0)).status, 200, 'and gone again: later tests count bob\u2019s bindings');
    } finally {
      phone.close();
    }
  });

  it('a NOTIFY for a phone on node A\u2019s TCP connection, asked of node B, travels over the bus to node A', async () => {
    const phone = await SipTestClient.open('TCP', a.sipPort);
    try {
      const contact = `<sip:bob@127.0.0.1:${phone.localPort};transport=tcp>`;
      assert.equal((await register(phone, { user: 'bob', password: PW.bob, domain: D, contact, expires: 300 })).status, 200);
      const asked = http(b, `/v1/registrations/${encodeURIComponent(`bob@${D}`)}/check-sync`, { method: 'POST', body: '{}' });
      const notify = parseRequest(await phone.next(10_000));
      assert.equal(notify.method, 'NOTIFY');
      assert.equal(notify.header('Event'), 'check-sync');
      phone.send(responseTo(notify, 200));
      const res = await asked;
      assert.equal(res.status, 200);
      const body = (await res.json()) as { results: Array<{ node: string; status?: number; error?: unknown }> };
      assert.deepEqual(body.results.map((r) => [r.node, r.status]), [['node-a', 200]]);
    } finally {
      phone.close();
    }
  });

  it('when Redis loses the shared index, a node reloads it from PostgreSQL within a heartbeat', async () => {
    const before = await bindingsOf(b, 'alice');
    assert.equal(before.length, 1);
    await dropPrefix(prefix); // as a Redis restarted without persistence would
    assert.deepEqual(await bindingsOf(b, 'alice'), []);
    await until('the index to be reloaded', async () => (await bindingsOf(b, 'alice')).length === 1);
    const strip = (l: Binding[]) => l.map(({ contact, node, callId, cseq }) => ({ contact, node, callId, cseq }));
    assert.deepEqual(strip(await bindingsOf(a, 'alice')), strip(before));
  });

  it('node A killed with SIGKILL: node B serves its UDP bindings and removes the ones only A could reach', async () => {
    // carol registers through node A twice: over UDP, and over TCP as an RFC 5626 flow (reg-id + instance).
    const udp = await SipTestClient.open('UDP', a.sipPort);
    const tcp = await SipTestClient.open('TCP', a.sipPort);
    const viaB = await SipTestClient.open('UDP', b.sipPort);
    try {
      const udpContact = `<sip:carol@127.0.0.1:${udp.localPort}>`;
      const udpCallId = `carol-udp-${randomBytes(4).toString('hex')}@test`;
      assert.equal((await register(udp, { user: 'carol', password: PW.carol, domain: D, contact: udpContact, callId: udpCallId, expires: 300 })).status, 200);
      const flow = `<sip:carol@127.0.0.1:${tcp.localPort};transport=tcp>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-4000-8000-00000000ca01>"`;
      const reg = await register(tcp, { user: 'carol', password: PW.carol, domain: D, contact: flow, expires: 300, headers: [['Supported', 'outbound']] });
      assert.equal(reg.status, 200);
      assert.deepEqual((await bindingsOf(b, 'carol')).map((x) => x.transport).sort(), ['TCP', 'UDP']);

      await a.kill('SIGKILL');

      // Node B still answers for the UDP binding node A took: lists it and refreshes it.
      const [kept] = (await bindingsOf(b, 'carol')).filter((x) => x.transport === 'UDP');
      assert.equal(kept.node, 'node-a');
      const refresh = await register(viaB, { user: 'carol', password: PW.carol, domain: D, contact: udpContact, callId: udpCallId, cseq: 20, expires: 300 });
      assert.equal(refresh.status, 200);
      assert.match(refresh.header('Contact') ?? '', /expires=(29\d|300)/);

      // Once node A's heartbeat lapses, node B takes out the flow binding nothing can reach any more.
      await until('the flow binding of node A to go', async () => (await bindingsOf(b, 'carol')).every((x) => x.transport === 'UDP'));
      const left = await bindingsOf(b, 'carol');
      assert.equal(left.length, 1);
      assert.equal(left[0].node, 'node-b');
      assert.equal(left[0].cseq, 21);

    } finally {
      udp.close();
      tcp.close();
      viaB.close();
    }
  });
});
