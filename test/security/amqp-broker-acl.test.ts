// reg_flush, reg_query (a dump of every binding) and the rest of Kazoo's directory API are legitimate requests: the
// defence against a stranger on the broker sending them is the broker's own access control. This proves the recipe
// of README "Security" → "Broker permissions": a vhost for the deployment, a user for Switchboard with exactly its
// exchanges and queues, a user for Kazoo without them, and nothing for anyone else. Switchboard works under its user
// (authn, reg_success); the Kazoo user cannot publish on Switchboard's exchange, deliver into its queues by name (a
// reg_flush through the default exchange), read its queues or bind to its events; an outsider cannot even open the
// vhost. With the Kazoo user given everything (`.*`, no recipe) the attacks go through and this fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { KazooPeer, until, type Json } from '../helpers/kazoo-peer.ts';
import { createVhost, missingRabbit, RABBIT_HOST, RABBIT_PORT, type TestVhost } from '../helpers/rabbitmq.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const skip = await missingRabbit();
const run = promisify(execFile);
const ctl = (...args: string[]) => run('rabbitmqctl', ['-q', ...args], { timeout: 60_000 }).then((r) => r.stdout);

// The README's recipe, verbatim: Switchboard's exchanges and its queues (named after --kazoo-node switchboard@…, and
// switchboard.<tag>.*); Kazoo gets everything else except those and the default exchange.
const SWITCHBOARD = '^(switchboard|callmgr|registrar|targeted|switchboard[@.].*)$';
const KAZOO = '^(?!switchboard([@.]|$)|amq\\.default$).*';

describe('AMQP: broker permissions per deployment', { skip }, () => {
  let vhost: TestVhost;
  let server: TestServer;
  let kazoo: KazooPeer;
  const suffix = randomBytes(3).toString('hex');
  const users = { switchboard: `sb-${suffix}`, kazoo: `kz-${suffix}`, outsider: `out-${suffix}` };
  const password = randomBytes(12).toString('hex');
  const url = (user: string) => `amqp://${user}:${password}@${RABBIT_HOST}:${RABBIT_PORT}/${encodeURIComponent(vhost.name)}`;

  before(async () => {
    vhost = await createVhost();
    for (const u of Object.values(users)) await ctl('add_user', u, password);
    await ctl('set_permissions', '-p', vhost.name, users.switchboard, SWITCHBOARD, SWITCHBOARD, SWITCHBOARD);
    await ctl('set_permissions', '-p', vhost.name, users.kazoo, KAZOO, KAZOO, KAZOO);
    // guest (createVhost gives it everything) stands for nobody here.
    await ctl('clear_permissions', '-p', vhost.name, 'guest');
    server = await startTestServer({
      flags: { bus: url(users.switchboard), 'kazoo-node': 'switchboard@acl', realm: ['example.test'] },
      users: { 'alice@example.test': 'alice-pw' },
    });
    kazoo = await KazooPeer.open(url(users.kazoo));
  });
  after(async () => {
    await kazoo?.close();
    await server?.close();
    for (const u of Object.values(users)) await ctl('delete_user', u).catch(() => {});
    await vhost?.delete();
  });

  /** Runs `attempt` on a fresh channel of `conn`; resolves with the broker's refusal (its reply code), or null. */
  async function refusal(conn: ChannelModel, attempt: (ch: Channel) => Promise<unknown>): Promise<number | null> {
    const ch = await conn.createChannel();
    let code: number | null = null;
    ch.on('error', (err: { code?: number }) => (code = err.code ?? -1));
    try {
      await attempt(ch);
      // A publication is refused asynchronously: a round trip on the channel brings the refusal back first.
      await ch.checkExchange('registrar');
      await ch.close();
    } catch (err) {
      code ??= (err as { code?: number }).code ?? -1;
    }
    return code;
  }

  it('Switchboard works under its user: authn answered, registrations announced', async () => {
    const req = { ...kazoo.envelope('authn_req'), Method: 'REGISTER', 'Auth-User': 'alice', 'Auth-Realm': 'example.test', From: 'sip:alice@example.test', To: 'sip:alice@example.test' };
    const [resp] = await kazoo.request('callmgr', 'authn.req.example%2Etest', req);
    assert.equal(resp?.['Event-Name'], 'authn_resp');
    const listener = await kazoo.listen('registrar', ['registration.success.*.*']);
    const phone = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(phone, { user: 'alice', password: 'alice-pw', domain: 'example.test', expires: 600 })).status, 200);
    } finally {
      phone.close();
    }
    await until(() => listener.messages.some((m) => m.Username === 'alice'), 'alice\u2019s reg_success');
  });

  it('the Kazoo user cannot publish on Switchboard\u2019s exchange, deliver into its queues, read them or bind to its events', async () => {
    const queues = (await ctl('list_queues', '-p', vhost.name, 'name')).split('\n').map((l) => l.trim()).filter(Boolean);
    const nodeQueue = queues.find((q) => q.startsWith('switchboard@acl-'));
    assert.ok(nodeQueue, `Switchboard's node queue among ${queues.join(', ')}`);
    const conn = await connect(url(users.kazoo));
    conn.on('error', () => {});
    try {
      const flush: Json = { ...kazoo.envelope('reg_flush'), Realm: 'example.test' };
      const body = Buffer.from(JSON.stringify(flush));
      const relay = Buffer.from(JSON.stringify({ node: 'rogue', all: true }));
      assert.equal(await refusal(conn, async (ch) => ch.publish('', nodeQueue, body)), 403, 'reg_flush into the node queue by name');
      assert.equal(await refusal(conn, async (ch) => ch.publish('switchboard', 'account.credentials.changed', relay)), 403, 'publish on switchboard');
      assert.equal(await refusal(conn, (ch) => ch.consume(nodeQueue, () => {})), 403, 'consume the node queue');
      assert.equal(await refusal(conn, async (ch) => ch.bindQueue((await ch.assertQueue('', { exclusive: true })).queue, 'switchboard', 'binding.#')), 403, 'bind to switchboard');
      assert.equal(await refusal(conn, (ch) => ch.deleteQueue(nodeQueue)), 403, 'delete the node queue');
    } finally {
      await conn.close().catch(() => {});
    }
    // alice's binding is still there (no flush got through).
    assert.equal((await server.location.lookup('alice@example.test')).length, 1);
  });

  it('a user without permissions on the vhost cannot open it at all', async () => {
    await assert.rejects(connect(url(users.outsider)), /ACCESS_REFUSED|ConnectionClose|403/i);
  });
});
