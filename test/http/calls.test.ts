// GET /v1/calls (http/routes/calls.ts): the calls the proxy holds now, from its accounting. A raw UDP caller calls a
// raw UDP device registered with Digest: while it rings the call is listed ringing (caller, callee, start, one
// branch), once answered it is answered, after the BYE it is gone; a declined call is gone at its 486. Admins and
// API keys with events.read only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, isResponse, reply, waitFor } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' };

interface Listed {
  node: string;
  total: number;
  calls: Array<{ callId: string; caller: string; callee: string; state: string; startedAt: string; answeredAt: string | null; branches: number }>;
}

describe('GET /v1/calls: the live calls', () => {
  let s: TestServer;
  let admin: string;
  let bob: SipTestClient;
  const open: SipTestClient[] = [];
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  const list = async (): Promise<Listed> => {
    const r = await fetch(`${s.httpUrl}/v1/calls`, { headers: auth(admin) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    return (await r.json()) as Listed;
  };
  const call = async () => {
    const c = await SipTestClient.open('UDP', s.sipPort);
    open.push(c);
    const k = new Call(c, { from: `<sip:alice@${D}>`, to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'alice', password: users[`alice@${D}`] });
    await k.start();
    return k;
  };

  before(async () => {
    s = await startTestServer({ users });
    admin = await adminToken(s, `admin@${D}`);
    bob = await SipTestClient.open('UDP', s.sipPort);
    open.push(bob);
    assert.equal((await register(bob, { user: 'bob', password: users[`bob@${D}`], domain: D, expires: 300 })).status, 200);
  });
  after(async () => {
    for (const c of open) c.close();
    await s.close();
  });

  it('needs an admin or an API key with events.read', async () => {
    assert.equal((await fetch(`${s.httpUrl}/v1/calls`)).status, 401);
    const alice = await s.accounts.findByName('alice', D);
    const userToken = (await s.tokens.issue(alice!)).token;
    assert.equal((await fetch(`${s.httpUrl}/v1/calls`, { headers: auth(userToken) })).status, 403);
    const adminAccount = await s.accounts.findByName('admin', D);
    const mk = async (permissions: string[]) => {
      const r = await fetch(`${s.httpUrl}/users/${adminAccount!.id}/api-keys`, { method: 'POST', headers: { ...auth(admin), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'calls', permissions }) });
      assert.equal(r.status, 201);
      return ((await r.json()) as { key: string }).key;
    };
    assert.equal((await fetch(`${s.httpUrl}/v1/calls`, { headers: auth(await mk(['registrations.read'])) })).status, 403);
    assert.equal((await fetch(`${s.httpUrl}/v1/calls`, { headers: auth(await mk(['events.read'])) })).status, 200);
  });

  it('lists a call ringing, then answered, and not after its BYE', async () => {
    assert.deepEqual((await list()).calls, []);
    const before = Date.now();
    const k = await call();
    const inv = await waitFor(bob, isRequest('INVITE'));
    bob.send(reply(inv, 180, { toTag: 'b' }));
    await k.response((st) => st === 180);
    const ringing = await list();
    assert.equal(ringing.total, 1);
    const [c] = ringing.calls;
    assert.deepEqual({ ...c, startedAt: undefined }, { callId: k.callId, caller: `alice@${D}`, callee: `bob@${D}`, state: 'ringing', startedAt: undefined, answeredAt: null, branches: 1 });
    assert.ok(Date.parse(c.startedAt) >= before - 1000 && Date.parse(c.startedAt) <= Date.now());
    assert.equal(typeof ringing.node, 'string');

    bob.send(reply(inv, 200, { toTag: 'b', headers: [['Contact', `<sip:bob@127.0.0.1:${bob.localPort}>`]] }));
    k.established(await k.response((st) => st === 200));
    k.c.send(k.inDialog('ACK'));
    const answered = (await list()).calls;
    assert.equal(answered.length, 1);
    assert.equal(answered[0].state, 'answered');
    assert.ok(answered[0].answeredAt !== null && Date.parse(answered[0].answeredAt) >= Date.parse(c.startedAt));

    k.c.send(k.inDialog('BYE'));
    bob.send(reply(await waitFor(bob, isRequest('BYE')), 200));
    await waitFor(k.c, isResponse('BYE'));
    assert.deepEqual((await list()).calls, []);
  });

  it('drops a declined call at its final response', async () => {
    const k = await call();
    const inv = await waitFor(bob, isRequest('INVITE'));
    assert.equal((await list()).calls[0]?.state, 'ringing');
    bob.send(reply(inv, 486, { toTag: 'busy' }));
    const r = await k.response((st) => st >= 200);
    assert.equal(r.status, 486);
    k.c.send(k.ackFor(r));
    assert.deepEqual((await list()).calls, []);
  });
});
