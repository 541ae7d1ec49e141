// The IM bridge scaled out (PostgreSQL, Redis, RabbitMQ, one master key) against a real Prosody: the app logs in on
// node A (no connector there) while the connector runs with node B; IMs flow both ways through the bus. A test
// consumer on the broker reads every message on Switchboard's exchange meanwhile: no linked password, no Secret.
// Then connectors on their own (`switchboard connector --type xmpp`) are killed with SIGKILL: a stay-connected link
// comes back through the next connector within 30 s (and survives logout); a plain one says `connector lost` and
// comes back at the next login.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type ChannelModel } from 'amqplib';
import { openDurable } from '../../src/adapters.ts';
import { newAccount } from '../../src/identity/accounts.ts';
import { PasswordHasher } from '../../src/identity/passwords.ts';
import { SWITCHBOARD_EVENTS } from '../../src/kazoo/exchanges.ts';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { http, openStream } from '../messaging/helpers.ts';
import { missingPeer } from '../helpers/peers.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';
import { flagArgs, ROOT, spawnServer, tempDir, testConfig, type ChildServer, type Flags } from '../helpers/server.ts';
import { imSend, linkXmpp, passwordSession, waitForState } from '../bridge/helpers.ts';
import { DOMAIN, online, peer, startProsody, type Peer, type Prosody } from '../bridge/prosody.ts';

const missing = missingPeer('prosody', 'prosodyctl') || (await postgresMissing()) || (await redisMissing()) || (await missingRabbit());
const PASSWORDS = { alice: 'alice-linked-pw-91c2', dave: 'dave-linked-pw-55e0', erin: 'erin-linked-pw-0b7d', frank: 'frank-linked-pw-3c1e', bob: 'bob-peer-pw' };

interface ConnectorProc {
  proc: ChildProcess;
  kill(signal: NodeJS.Signals): Promise<void>;
}

describe('IM bridge across nodes and connector processes', { skip: missing }, () => {
  const schema = freshSchema();
  const prefix = freshPrefix();
  const master = randomBytes(32).toString('hex');
  const dirs: string[] = [];
  let vhost: TestVhost;
  let shared: Flags;
  let prosody: Prosody;
  let a: RunningServer;
  let baseA: string;
  let b: ChildServer | null = null;
  let bob: Peer;
  const connectors: ConnectorProc[] = [];
  let capture: ChannelModel;
  const captured: Buffer[] = [];

  const nodeDir = (id: string) => {
    const dir = tempDir(`sb-bridge-${id}-`);
    dirs.push(dir);
    writeFileSync(path.join(dir, 'master.key'), master + '\n', { mode: 0o600 });
    return dir;
  };

  const startConnector = async (): Promise<ConnectorProc> => {
    const dir = nodeDir('connector');
    const args = [path.join(ROOT, 'src/cli.ts'), 'connector', '--type', 'xmpp', ...flagArgs({ 'data-dir': dir, bus: vhost.url, 'log-level': 'info', 'bridge-allow-servers': '127.0.0.1' })];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SWITCHBOARD_MASTER_KEY: '' } });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`connector did not start: ${out}`)), 15_000);
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('connector started')) {
          clearTimeout(t);
          resolve();
        }
      });
      proc.once('exit', (code) => reject(new Error(`connector exited ${code}: ${out}`)));
    });
    const c: ConnectorProc = {
      proc,
      kill: (signal) =>
        new Promise((resolve) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
          proc.once('exit', () => resolve());
          proc.kill(signal);
        }),
    };
    connectors.push(c);
    return c;
  };

  before(async () => {
    prosody = await startProsody(PASSWORDS);
    vhost = await createVhost();
    // Prosody is on loopback, refused by default (SSRF): allowed on every node and connector of this deployment.
    // A 1 s heartbeat: a killed node is taken for gone after 4 s (not 20), so its links end within the test's wait.
    shared = { database: PG_URL, 'database-schema': schema, cache: REDIS_URL, 'cache-prefix': prefix, bus: vhost.url, 'bridge-allow-servers': '127.0.0.1', 'node-heartbeat': '1' };
    // The broker capture: a queue bound to everything on Switchboard's exchange, before any node speaks.
    capture = await connect(vhost.url);
    const ch = await capture.createChannel();
    await ch.assertExchange(SWITCHBOARD_EVENTS.name, 'topic', { durable: true });
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, SWITCHBOARD_EVENTS.name, '#');
    await ch.consume(q.queue, (m) => {
      if (m) captured.push(Buffer.concat([Buffer.from(JSON.stringify(m.properties.headers ?? {})), m.content]));
    }, { noAck: true });

    const seedDir = nodeDir('seed');
    const config = testConfig(seedDir, shared);
    const durable = await openDurable(config);
    try {
      const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
      await durable.accounts.create({ ...newAccount('carol', 'example.test', 'carol-pw-1'), passwordHash: await hasher.hash('carol-pw-1') });
      await durable.accounts.create({ ...newAccount('hank', 'example.test', 'hank-pw-1'), passwordHash: await hasher.hash('hank-pw-1') });
    } finally {
      await durable.close();
    }
    // Node A in this process (its keyring is looked at), without a connector; node B a process with one.
    a = await startServer(testConfig(nodeDir('a'), { ...shared, 'node-id': 'a', 'bridge-connectors': '' }), { log: createLogger('silent') });
    baseA = `http://127.0.0.1:${a.http.port}`;
    b = await spawnServer(nodeDir('b'), { ...shared, 'node-id': 'b', 'sip-transports': 'UDP', 'bridge-connectors': 'xmpp' });
    bob = await peer(prosody, 'bob', PASSWORDS.bob);
  });

  after(async () => {
    await bob?.stop();
    for (const c of connectors) await c.kill('SIGKILL');
    await b?.kill('SIGKILL');
    await a?.stop();
    await capture?.close().catch(() => undefined);
    await prosody?.stop();
    await dropSchema(schema);
    await dropPrefix(prefix);
    await vhost?.delete();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('scale-out: the app on node A, the connector with node B; IMs both ways; nothing secret on the broker', async () => {
    const s = await passwordSession(baseA, 'carol@example.test', 'carol-pw-1');
    const stream = await openStream(baseA, s);
    const linked = await linkXmpp(baseA, s, prosody.server, `alice@${DOMAIN}`, PASSWORDS.alice);
    await bob.waitFor(() => online(bob, `alice@${DOMAIN}`), 'alice online through node B', 10_000);
    await waitForState(baseA, s, linked.id as string, 'connected');
    await bob.say(`alice@${DOMAIN}`, 'to node A please');
    await stream.waitFor((f) => f.some((x) => x.type === 'message' && x.remote === `bob@${DOMAIN}`), 'the IM on node A’s socket');
    const r = await imSend(baseA, s, linked.id as string, `bob@${DOMAIN}`, 'back through node B');
    assert.equal(r.status, 202);
    await bob.waitFor(() => bob.messages.some((m) => m.getChildText('body') === 'back through node B'), 'the reply at bob');
    await stream.waitFor((f) => f.some((x) => x.type === 'delivery' && x.id === r.json.id && x.status === 'sent'), 'the delivery frame');
    await stream.close();

    const held = a.bridge.bridge.keyring.get(s.kid)!;
    const forms = [PASSWORDS.alice, Buffer.from(PASSWORDS.alice).toString('base64'), held.secret.toString('hex'), held.secret.toString('base64'), held.secret.toString('base64url')];
    const traffic = Buffer.concat(captured);
    assert.ok(traffic.includes('bridge.connect') || traffic.includes('linkedAccountId'), `the capture saw the bridge's messages (${captured.length})`);
    for (const f of forms) assert.equal(traffic.indexOf(f), -1, 'no linked password or Secret on the broker');
    assert.equal(traffic.indexOf(held.secret), -1, 'no raw Secret on the broker');
    assert.equal((await http(baseA, 'DELETE', '/v1/sessions/current', { auth: s.auth })).status, 204);
    await bob.waitFor(() => !online(bob, `alice@${DOMAIN}`), 'alice offline after logout on node A');
  });

  it('a killed connector: stay-connected links come back within 30 s through the next one and survive logout; others say so until the next login', async () => {
    await b!.kill('SIGTERM');
    b = null;
    const c1 = await startConnector();
    const s = await passwordSession(baseA, 'carol@example.test', 'carol-pw-1');
    const stay = await linkXmpp(baseA, s, prosody.server, `dave@${DOMAIN}`, PASSWORDS.dave, { stayConnected: true });
    const plain = await linkXmpp(baseA, s, prosody.server, `erin@${DOMAIN}`, PASSWORDS.erin);
    await bob.waitFor(() => online(bob, `dave@${DOMAIN}`) && online(bob, `erin@${DOMAIN}`), 'dave and erin online through the connector process', 10_000);

    await c1.kill('SIGKILL');
    await bob.waitFor(() => !online(bob, `dave@${DOMAIN}`), 'dave offline with the connector gone');
    const killedAt = Date.now();
    await startConnector();
    await bob.waitFor(() => online(bob, `dave@${DOMAIN}`), 'dave back through the next connector', 30_000);
    const tookMs = Date.now() - killedAt;
    const lost = await waitForState(baseA, s, plain.id as string, 'disconnected', 30_000);
    assert.match(String(lost.reason), /connector lost/);
    assert.equal(online(bob, `erin@${DOMAIN}`), false, 'erin stays offline until a login');

    // Logout: the stay-connected link stays, the other one is not brought back.
    assert.equal((await http(baseA, 'DELETE', '/v1/sessions/current', { auth: s.auth })).status, 204);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(online(bob, `dave@${DOMAIN}`), true, 'dave survives logout');
    const s2 = await passwordSession(baseA, 'carol@example.test', 'carol-pw-1');
    await bob.waitFor(() => online(bob, `erin@${DOMAIN}`), 'erin back at the next login', 10_000);
    await waitForState(baseA, s2, stay.id as string, 'connected');
    console.log(`# stay-connected link back ${tookMs} ms after the connector was killed`);
  });

  it('a node killed while holding the only session of an account: its links end within 20 s, though nobody logged out', async () => {
    // Node C holds hank's session (and Secret); the connector is the process from the test before.
    const c = await spawnServer(nodeDir('c'), { ...shared, 'node-id': 'c', 'sip-transports': 'UDP', 'bridge-connectors': '' });
    const baseC = `http://127.0.0.1:${c.httpPort}`;
    try {
      const s = await passwordSession(baseC, 'hank@example.test', 'hank-pw-1');
      const linked = await linkXmpp(baseC, s, prosody.server, `frank@${DOMAIN}`, PASSWORDS.frank);
      await bob.waitFor(() => online(bob, `frank@${DOMAIN}`), 'frank online through node C’s session', 10_000);
      await c.kill('SIGKILL');
      const killedAt = Date.now();
      await bob.waitFor(() => !online(bob, `frank@${DOMAIN}`), 'frank offline once node C is taken for gone', 20_000);
      const tookMs = Date.now() - killedAt;
      // The session itself is still valid (node A answers for it), but nobody holds its Secret any more.
      const state = await waitForState(baseA, s, linked.id as string, 'disconnected', 10_000);
      assert.match(String(state.reason), /session node lost/);
      console.log(`# link of a killed node's session ended ${tookMs} ms after the SIGKILL (heartbeat 1 s)`);
    } finally {
      await c.kill('SIGKILL');
    }
  });
});
