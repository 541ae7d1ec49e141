// `--workers 2`: one command, two worker processes sharing the SIP and HTTP ports (SO_REUSEPORT) and the state
// (PostgreSQL, Redis, RabbitMQ). Phones on many source ports are spread over both workers by the kernel and each
// is served; a worker killed with SIGKILL is replaced and the survivors keep serving meanwhile; SIGTERM stops all.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { openDurable } from '../../src/adapters.ts';
import { newAccount } from '../../src/identity/accounts.ts';
import { PasswordHasher } from '../../src/identity/passwords.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';
import { register } from '../helpers/register.ts';
import { spawnServer, tempDir, testConfig, type ChildServer, type Flags } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';
const missing = (await postgresMissing()) || (await redisMissing()) || (await missingRabbit());

/** A port free for TCP now (and, on loopback, almost surely for UDP too). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('--workers 2 on one host', { skip: missing }, () => {
  const schema = freshSchema();
  const prefix = freshPrefix();
  let vhost: TestVhost;
  let dir: string;
  let server: ChildServer;
  let sipPort: number;
  let token: string;

  const nodesOf = async (): Promise<Map<string, number>> => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1/registrations?realm=${D}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { registrations: Array<{ bindings: Array<{ node: string }> }> };
    const by = new Map<string, number>();
    for (const r of body.registrations) for (const b of r.bindings) by.set(b.node, (by.get(b.node) ?? 0) + 1);
    return by;
  };

  const registerPhones = async (n: number, tag: string) => {
    for (let i = 0; i < n; i++) {
      const c = await SipTestClient.open('UDP', sipPort);
      try {
        const res = await register(c, { user: `u${i}`, password: `pw-${i}`, domain: D, expires: 600, callId: `${tag}-${i}@test` });
        assert.equal(res.status, 200, `phone ${i} (${tag})`);
      } finally {
        c.close();
      }
    }
  };

  before(async () => {
    vhost = await createVhost();
    dir = tempDir('sb-workers-');
    sipPort = await freePort();
    const flags: Flags = {
      database: PG_URL,
      'database-schema': schema,
      cache: REDIS_URL,
      'cache-prefix': prefix,
      bus: vhost.url,
      'node-id': 'box',
      'node-heartbeat': '1',
      workers: '2',
      // Every transport, so that each listener is shown to share its port.
      'sip-transports': 'UDP,TCP,TLS,WS,WSS',
      'sip-port': String(sipPort),
      'sip-tls-port': String(await freePort()),
      'sip-ws-port': String(await freePort()),
      'sip-wss-port': String(await freePort()),
      'http-port': String(await freePort()),
    };
    const config = testConfig(dir, flags);
    const durable = await openDurable(config);
    try {
      const list = Array.from({ length: 24 }, (_, i) => newAccount(`u${i}`, D, `pw-${i}`));
      await durable.accounts.createMany(list);
      const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
      await durable.accounts.create({ ...newAccount('admin', D, 'admin-pw', ['admin']), passwordHash: await hasher.hash('admin-pw') });
    } finally {
      await durable.close();
    }
    server = await spawnServer(dir, flags);
    const login = await fetch(`http://127.0.0.1:${server.httpPort}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `admin@${D}`, password: 'admin-pw' }) });
    assert.equal(login.status, 200);
    token = ((await login.json()) as { access_token: string }).access_token;
  });

  after(async () => {
    await server?.kill('SIGKILL');
    // The workers outlive a killed supervisor only until they notice; do not leave them holding the ports.
    for (const l of server?.logs ?? []) if (l.msg === 'worker started' && typeof l.pid === 'number') try { process.kill(l.pid, 'SIGKILL'); } catch { /* gone */ }
    await dropSchema(schema).catch(() => {});
    await dropPrefix(prefix).catch(() => {});
    await vhost?.delete();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts two workers on the same ports, and the kernel spreads phones over both', async () => {
    const started = server.logs.filter((l) => l.msg === 'worker started');
    assert.deepEqual(started.map((l) => l.node).sort(), ['box-w1', 'box-w2']);
    assert.deepEqual(new Set(started.map((l) => JSON.stringify(l.sip))).size, 1, 'both workers listen on the same SIP ports');
    assert.deepEqual((started[0].sip as string[]).map((l) => l.split(' ')[0]), ['UDP', 'TCP', 'TLS', 'WS', 'WSS']);
    await registerPhones(24, 'spread');
    const by = await nodesOf();
    assert.deepEqual([...by.keys()].sort(), ['box-w1', 'box-w2'], `bindings by worker: ${JSON.stringify([...by])}`);
    assert.equal([...by.values()].reduce((a, b) => a + b, 0), 24);
  });

  it('replaces a worker killed with SIGKILL; the other serves meanwhile', async () => {
    const w1 = server.logs.find((l) => l.msg === 'worker started' && l.node === 'box-w1')!;
    process.kill(w1.pid as number, 'SIGKILL');
    // Phones keep registering: those the kernel sent to the dead worker retransmit to the live one once the
    // dead socket is gone, and the replacement takes its share again.
    const deadline = Date.now() + 15_000;
    while (!server.logs.some((l) => l.msg === 'worker restarted')) {
      if (Date.now() > deadline) throw new Error('the worker was not restarted');
      await new Promise((r) => setTimeout(r, 100));
    }
    const again = server.logs.filter((l) => l.msg === 'worker started' && l.node === 'box-w1');
    assert.equal(again.length, 2);
    assert.notEqual(again[1].pid, w1.pid);
    await registerPhones(24, `after-${randomBytes(2).toString('hex')}`);
    assert.equal([...(await nodesOf()).values()].reduce((a, b) => a + b, 0), 48, 'every phone has both its bindings');
  });

  it('stops every worker on SIGTERM', async () => {
    const pids = server.logs.filter((l) => l.msg === 'worker started').map((l) => l.pid as number);
    assert.equal(await server.kill('SIGTERM'), 0);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'worker gone');
  });
});
