// The inbox on two nodes (separate processes sharing PostgreSQL, Redis, RabbitMQ and the master key): an app
// connected to node B receives, live, what was sent through node A (message.stored on the bus wakes B's socket; B
// reads the store); a session made on one node authenticates on the other; and node A killed with SIGKILL right after
// answering a send loses nothing (the 200 follows the commit). A SIP MESSAGE stored through node A (202) reaches the
// phone when it registers on node B; and one stored just before node B is killed with SIGKILL reaches it after B
// restarts. An app message sent through node A to the phone on node B, held while the phone re-registers on B (B's
// dump), reaches it once: the per-message lease is in the shared Redis.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDurable } from '../../src/adapters.ts';
import { newAccount } from '../../src/identity/accounts.ts';
import { PasswordHasher } from '../../src/identity/passwords.ts';
import { appLogin, http, openStream, queueEmpty, send } from '../messaging/helpers.ts';
import { parseRequest, responseTo } from '../helpers/presence.ts';
import { holdWhileRegistering, MessageDevice } from '../helpers/message-device.ts';
import { register } from '../helpers/register.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';
import { spawnServer, tempDir, testConfig, type ChildServer, type Flags } from '../helpers/server.ts';

const D = 'example.test';
const missing = (await postgresMissing()) || (await redisMissing()) || (await missingRabbit());

describe('the inbox across two nodes', { skip: missing }, () => {
  const schema = freshSchema();
  const prefix = freshPrefix();
  const master = randomBytes(32).toString('hex');
  let vhost: TestVhost;
  let shared: Flags;
  const dirs: string[] = [];
  let a: ChildServer;
  let b: ChildServer;

  const startNode = async (id: string): Promise<ChildServer> => {
    const dir = tempDir(`sb-node-${id}-`);
    dirs.push(dir);
    nodeDirs.set(id, dir);
    writeFileSync(path.join(dir, 'master.key'), master + '\n', { mode: 0o600 });
    return spawnServer(dir, { ...shared, 'node-id': id, 'sip-transports': 'UDP' });
  };
  const nodeDirs = new Map<string, string>();
  const restartNode = (id: string) => spawnServer(nodeDirs.get(id)!, { ...shared, 'node-id': id, 'sip-transports': 'UDP' });
  const url = (n: ChildServer) => `http://127.0.0.1:${n.httpPort}`;

  before(async () => {
    vhost = await createVhost();
    shared = { database: PG_URL, 'database-schema': schema, cache: REDIS_URL, 'cache-prefix': prefix, bus: vhost.url };
    const seedDir = tempDir('sb-node-seed-');
    dirs.push(seedDir);
    const config = testConfig(seedDir, shared);
    const durable = await openDurable(config);
    try {
      const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
      for (const u of ['alice', 'bob']) await durable.accounts.create({ ...newAccount(u, D, `${u}-pw`), passwordHash: await hasher.hash(`${u}-pw`) });
    } finally {
      await durable.close();
    }
    a = await startNode('node-a');
    b = await startNode('node-b');
  });

  after(async () => {
    await a?.kill('SIGKILL');
    await b?.kill('SIGTERM');
    await dropSchema(schema).catch(() => {});
    await dropPrefix(prefix).catch(() => {});
    await vhost?.delete();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('an app on node B receives live what was sent through node A; a SIGKILL of A after its 200 loses nothing', async () => {
    const alice = await appLogin(url(b), `alice@${D}`, 'alice-pw');
    const bob = await appLogin(url(a), `bob@${D}`, 'bob-pw');
    assert.equal((await send(url(a), bob, `alice@${D}`, 'before')).status, 200);
    const stream = await openStream(url(b), alice);
    await stream.waitFor(queueEmpty, 'the backlog');
    assert.deepEqual(stream.texts(), ['before']);
    assert.equal((await send(url(a), bob, `alice@${D}`, 'live through A')).status, 200);
    await stream.waitFor((f) => f.filter((x) => x.type === 'message').length === 2, 'the live message from node A');
    assert.deepEqual(stream.texts(), ['before', 'live through A']);
    // Bob, the sender, listens on node A: the acks made on node B come back to him as receipts (over the bus).
    const bobStream = await openStream(url(a), bob);
    await bobStream.waitFor(queueEmpty, 'bob\u2019s marker');
    for (const f of stream.frames.filter((x) => x.type === 'message')) stream.ack(f.id as string);
    const ids = stream.frames.filter((x) => x.type === 'message').map((x) => x.id);
    await bobStream.waitFor((f) => f.filter((x) => x.type === 'receipt').length === 2, 'receipts on A for the acks on B');
    assert.deepEqual(bobStream.frames.filter((x) => x.type === 'receipt').map((x) => x.id).sort(), ids.sort());
    await bobStream.close();
    // Sessions work on either node.
    assert.equal((await send(url(b), bob, `alice@${D}`, 'via B with a session from A', 'k-1')).status, 200);
    await stream.waitFor((f) => f.filter((x) => x.type === 'message').length === 3, 'the one sent through B');
    await stream.close();

    const r = await send(url(a), bob, `alice@${D}`, 'then A dies', 'k-2');
    assert.equal(r.status, 200);
    await a.kill('SIGKILL');
    // The two acks sent on the first socket are processed (GET shows what is left), then a new socket gets the rest.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const left = await http(url(b), 'GET', '/v1/messages', { auth: alice.auth });
      if ((left.json.messages as unknown[]).length === 2) break;
      assert.ok(Date.now() < deadline, `acks not applied: ${JSON.stringify(left.json)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const again = await openStream(url(b), alice);
    await again.waitFor(queueEmpty, 'the backlog on B');
    assert.deepEqual(again.texts(), ['via B with a session from A', 'then A dies']);
    await again.close();
  });

  /** Bob's authenticated MESSAGE to alice through `port` (answering the 407). */
  const sipMessage = async (port: number, text: string) => {
    const c = await SipTestClient.open('UDP', port);
    try {
      const spec = { method: 'MESSAGE', uri: `sip:alice@${D}`, from: `<sip:bob@${D}>`, to: `<sip:alice@${D}>`, callId: `m-${Math.random()}@test`, headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: text };
      const first = await c.request(buildRequest(c, { ...spec, cseq: 1 }));
      assert.equal(first.status, 407);
      const auth = digestAuthorization(parseChallenge(first.header('Proxy-Authenticate')!), { username: 'bob', password: 'bob-pw', method: 'MESSAGE', uri: spec.uri });
      return (await c.request(buildRequest(c, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }))).status;
    } finally {
      c.close();
    }
  };

  it('a SIP MESSAGE stored through one node reaches the phone registering on the other, across a SIGKILL', async () => {
    // Node A is back; the phone takes (200) what the app left unacked above, then the new one, in order.
    a = await restartNode('node-a');
    assert.equal(await sipMessage(a.sipPort, 'stored through A'), 202);
    const phone = await SipTestClient.open('UDP', b.sipPort);
    try {
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: D, expires: 600 })).status, 200);
      const got: string[] = [];
      while (got.at(-1) !== 'stored through A') {
        const req = parseRequest(await phone.next(10_000));
        got.push(req.body);
        phone.send(responseTo(req, 200, 'OK'));
      }
      assert.deepEqual(got, ['via B with a session from A', 'then A dies', 'stored through A']);
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: D, expires: 0 })).status, 200);
    } finally {
      phone.close();
    }

    assert.equal(await sipMessage(b.sipPort, 'stored through B, then B dies'), 202);
    await b.kill('SIGKILL');
    b = await restartNode('node-b');
    const again = await SipTestClient.open('UDP', b.sipPort);
    try {
      assert.equal((await register(again, { user: 'alice', password: 'alice-pw', domain: D, expires: 600 })).status, 200);
      const raw = await again.next(10_000);
      assert.equal(parseRequest(raw).body, 'stored through B, then B dies');
      again.send(responseTo(parseRequest(raw), 200, 'OK'));
      assert.equal((await register(again, { user: 'alice', password: 'alice-pw', domain: D, expires: 0 })).status, 200);
    } finally {
      again.close();
    }
  });

  it('an app message on its way from node A is not sent again by the dump on node B when the phone re-registers there', async () => {
    const bob = await appLogin(url(a), `bob@${D}`, 'bob-pw');
    const device = await MessageDevice.open(b.sipPort, D);
    try {
      assert.equal(await device.register('alice', 'alice-pw'), 200);
      const post = async (text: string) => {
        const r = await send(url(a), bob, `alice@${D}`, text);
        assert.equal(r.status, 200);
        return r.json.id as string;
      };
      const ids = await holdWhileRegistering(device, { user: 'alice', password: 'alice-pw', post });
      for (const id of ids) {
        const deadline = Date.now() + 10_000;
        while ((await http(url(b), 'GET', `/v1/messages/${id}/status`, { auth: bob.auth })).json.status !== 'delivered') {
          assert.ok(Date.now() < deadline, 'acked after its 2xx');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      assert.equal(device.count(`${ids[0]}@inbox`), 1);
    } finally {
      device.close();
    }
  });
});
