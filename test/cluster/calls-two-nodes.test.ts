// A call across two nodes (issue 17): the callee's phone is registered over TCP to node B, the caller's over UDP to
// node A. Node A is the stateful proxy of the call: its INVITE client transaction goes out over node B's connection
// through the flow relay (sip/flow-relay.ts `through`), the callee's 180 and 200 come back over the relay into it,
// the ACK, the BYE and a CANCEL follow the same way; A's Record-Route keeps in-dialog requests on A, and a BYE the
// callee sends to A's Record-Route reaches the caller, whether sent to A or over its own flow to B (which sends it on
// to A, and relays along no Route its deployment did not sign). Separate processes sharing PostgreSQL, Redis, RabbitMQ and the
// master key, as test/cluster/two-nodes.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';
import { createVhost, missingRabbit, type TestVhost } from '../helpers/rabbitmq.ts';
import { dropPrefix, freshPrefix, REDIS_URL, redisMissing } from '../helpers/redis.ts';
import { register } from '../helpers/register.ts';
import { addUsers, spawnServer, tempDir, testConfig, type ChildServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, isResponse, reply, waitFor, type Msg } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' };
const missing = (await postgresMissing()) || (await redisMissing()) || (await missingRabbit());

/** The callee's in-dialog request (§12.2.1.1): to the caller's Contact along the INVITE's Record-Route, as received. */
function calleeRequest(c: SipTestClient, invite: Msg, ok: { toTag: string }, method: string): string {
  const routes = invite.all('Record-Route').flatMap((v) => v.split(/,(?![^<]*>)/).map((s) => s.trim()));
  const target = /<([^>]+)>/.exec(invite.header('Contact')!)![1];
  return [
    `${method} ${target} SIP/2.0`,
    `Via: SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
    'Max-Forwards: 70',
    ...routes.map((r) => `Route: ${r}`),
    `From: ${invite.header('To')};tag=${ok.toTag}`,
    `To: ${invite.header('From')}`,
    `Call-ID: ${invite.header('Call-ID')}`,
    `CSeq: 1 ${method}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

describe('a call from a phone on node A to a phone whose TCP connection node B holds', { skip: missing }, () => {
  const schema = freshSchema();
  const prefix = freshPrefix();
  const master = randomBytes(32).toString('hex');
  const dirs: string[] = [];
  const open: SipTestClient[] = [];
  let vhost: TestVhost;
  let a: ChildServer;
  let b: ChildServer;
  let callee: SipTestClient;

  const node = async (id: string, flags: Record<string, string>): Promise<ChildServer> => {
    const dir = tempDir(`sb-call-${id}-`);
    dirs.push(dir);
    writeFileSync(path.join(dir, 'master.key'), master + '\n', { mode: 0o600 });
    return spawnServer(dir, { ...flags, 'node-id': id, 'sip-transports': 'UDP,TCP' });
  };
  const client = async (t: 'UDP' | 'TCP', port: number) => {
    const c = await SipTestClient.open(t, port);
    open.push(c);
    return c;
  };
  const call = (c: SipTestClient) =>
    new Call(c, { from: `<sip:alice@${D}>`, to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'alice', password: users[`alice@${D}`] });

  before(async () => {
    vhost = await createVhost();
    const flags = { database: PG_URL, 'database-schema': schema, cache: REDIS_URL, 'cache-prefix': prefix, bus: vhost.url };
    const seed = tempDir('sb-call-seed-');
    dirs.push(seed);
    await addUsers(testConfig(seed, flags), users);
    a = await node('node-a', flags);
    b = await node('node-b', flags);
    callee = await client('TCP', b.sipPort);
    const r = await register(callee, { user: 'bob', password: users[`bob@${D}`], domain: D, expires: 300 });
    assert.equal(r.status, 200);
  });

  after(async () => {
    for (const c of open) c.close();
    await a?.kill('SIGTERM');
    await b?.kill('SIGTERM');
    await dropSchema(schema).catch(() => {});
    await dropPrefix(prefix).catch(() => {});
    await vhost?.delete();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A call from a new phone on node A, its INVITE at the callee. */
  const inviting = async () => {
    const caller = await client('UDP', a.sipPort);
    const k = call(caller);
    await k.start();
    return { caller, k, invite: await waitFor(callee, isRequest('INVITE'), 10_000) };
  };

  /** A call from a phone on node A answered by the callee (To tag `toTag`) and ACKed. */
  const answered = async (toTag: string) => {
    const { caller, k, invite } = await inviting();
    callee.send(reply(invite, 200, { toTag, headers: [['Contact', `<sip:bob@127.0.0.1:${callee.localPort};transport=tcp>`]] }));
    k.established(await k.response((s) => s === 200, 10_000));
    caller.send(k.inDialog('ACK'));
    await waitFor(callee, isRequest('ACK'), 10_000);
    return { caller, k, invite };
  };

  it('rings, is answered and hung up by the caller: 180, 200, ACK and BYE through node B, node A record-routing', async () => {
    const { caller, k, invite } = await inviting();
    assert.ok(invite.all('Record-Route').join(',').includes(`127.0.0.1:${a.sipPort};transport=tcp`), 'node A record-routes (its TCP address for the callee)');
    assert.match(invite.header('Via')!, new RegExp(`^SIP/2\\.0/TCP 127\\.0\\.0\\.1:${a.sipPort};branch=z9hG4bKsbp`), "node A's branch on top: its client transaction");
    callee.send(reply(invite, 180, { toTag: 'b1' }));
    assert.equal((await k.response((s) => s === 180, 10_000)).status, 180);
    callee.send(reply(invite, 200, { toTag: 'b1', headers: [['Contact', `<sip:bob@127.0.0.1:${callee.localPort};transport=tcp>`]] }));
    const ok = await k.response((s) => s === 200, 10_000);
    assert.equal(ok.all('Via').length, 1, "node A's Via removed");
    k.established(ok);
    caller.send(k.inDialog('ACK'));
    const ack = await waitFor(callee, isRequest('ACK'), 10_000);
    assert.equal(ack.header('Route'), undefined, "node A's Route popped");
    caller.send(k.inDialog('BYE'));
    const bye = await waitFor(callee, isRequest('BYE'), 10_000);
    callee.send(reply(bye, 200));
    assert.equal((await waitFor(caller, isResponse('BYE'), 10_000)).status, 200);
  });

  it('is hung up by the callee: its BYE to node A (the Record-Route) reaches the caller, and the 200 comes back', async () => {
    const { caller, k, invite } = await answered('b2');
    // The callee follows its route set: node A's TCP address, over a connection of its own.
    const toA = await client('TCP', a.sipPort);
    toA.send(calleeRequest(toA, invite, { toTag: 'b2' }, 'BYE'));
    const bye = await waitFor(caller, isRequest('BYE'), 10_000);
    assert.equal(bye.header('Call-ID'), k.callId);
    caller.send(reply(bye, 200));
    assert.equal((await waitFor(toA, isResponse('BYE'), 10_000)).status, 200);
  });

  it('is hung up by the callee over its own flow to node B: B sends the BYE on to node A (its Record-Route), A to the caller, and the 200 returns the same way', async () => {
    const { caller, k, invite } = await answered('b4');
    // RFC 5626 §4.3: a device with an outbound flow sends everything over it, here to node B, node A's Route on top.
    callee.send(calleeRequest(callee, invite, { toTag: 'b4' }, 'BYE'));
    const bye = await waitFor(caller, isRequest('BYE'), 10_000);
    assert.equal(bye.header('Call-ID'), k.callId);
    assert.equal(bye.all('Via').length, 3, "the callee's Via, node B's and node A's");
    assert.equal(bye.header('Route'), undefined, "node A consumed its Route");
    caller.send(reply(bye, 200));
    const done = await waitFor(callee, isResponse('BYE'), 10_000);
    assert.equal(done.status, 200);
    assert.equal(done.all('Via').length, 1, 'back to the callee with only its own Via');
  });

  it("refuses an in-dialog request whose Route is another host's, signed or not: node B relays only along its deployment's routes", async () => {
    const { caller, k, invite } = await inviting();
    callee.send(reply(invite, 486, { toTag: 'b5' }));
    caller.send(k.ackFor(await k.response((s) => s === 486, 10_000)));
    // Node A's Route with its signature altered: not a route of this deployment, so not relayed.
    const forged = calleeRequest(callee, invite, { toTag: 'b5' }, 'BYE').replace(/;sb=([^;>]+)/g, ';sb=AAAA$1');
    callee.send(forged);
    const r = await waitFor(callee, isResponse('BYE'), 10_000);
    assert.ok(r.status >= 400 && r.status < 500, `refused (${r.status})`);
  });

  it('is cancelled by the caller: the CANCEL reaches the callee through node B, its 487 is ACKed and the caller gets 487', async () => {
    const { caller, k, invite } = await inviting();
    callee.send(reply(invite, 180, { toTag: 'b3' }));
    await k.response((s) => s === 180, 10_000);
    caller.send(k.cancel());
    const cancel = await waitFor(callee, isRequest('CANCEL'), 10_000);
    assert.equal(cancel.header('Via'), invite.header('Via'), "the CANCEL is node A's, for its branch");
    callee.send(reply(cancel, 200));
    callee.send(reply(invite, 487, { toTag: 'b3' }));
    const ack = await waitFor(callee, isRequest('ACK'), 10_000);
    assert.match(ack.header('To')!, /tag=b3/);
    const final = await k.response((s) => s >= 200, 10_000);
    assert.equal(final.status, 487);
    caller.send(k.ackFor(final));
  });
});
