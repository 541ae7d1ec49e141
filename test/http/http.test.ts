// The HTTP listener: health, Prometheus metrics, the registrations query, JSON error bodies.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

describe('HTTP', () => {
  let server: TestServer;
  let c: SipTestClient;
  let get: (url: string) => Promise<Response>;
  before(async () => {
    server = await startTestServer({
      flags: { realm: ['example.test', 'other.test'] },
      users: { 'alice@example.test': 'a-pw', 'bob@example.test': 'b-pw', 'carol@other.test': 'c-pw' },
    });
    const token = await adminToken(server);
    get = (url) => fetch(server.httpUrl + url, { headers: { authorization: `Bearer ${token}` } });
    c = await SipTestClient.open('UDP', server.sipPort);
    for (const [user, pw, domain] of [['alice', 'a-pw', 'example.test'], ['bob', 'b-pw', 'example.test'], ['carol', 'c-pw', 'other.test']]) {
      const r = await register(c, { user, password: pw, domain });
      assert.equal(r.status, 200, r.raw);
    }
    // A failed attempt, for the auth-failure counter.
    assert.equal((await register(c, { user: 'alice', password: 'wrong', domain: 'example.test' })).status, 401);
  });
  after(async () => {
    c.close();
    await server.close();
  });

  it('reports health', async () => {
    const r = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { status: string }).status, 'ok');
  });

  it('exposes Prometheus metrics for registrations, bindings, auth failures and latency', async () => {
    const r = await fetch(`${server.httpUrl}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type')!, /text\/plain/);
    const text = await r.text();
    assert.match(text, /^switchboard_bindings_active 3$/m);
    assert.match(text, /^switchboard_registrations_total\{outcome="updated"\} 3$/m);
    assert.match(text, /^switchboard_auth_failures_total\{reason="wrong-password"\} 1$/m);
    assert.match(text, /^switchboard_sip_request_duration_seconds_bucket\{le="0.005",method="REGISTER"\} \d+$/m);
    assert.match(text, /^switchboard_sip_responses_total\{method="REGISTER",status="401"\} \d+$/m);
    assert.match(text, /^switchboard_binding_changes_total\{event="added"\} 3$/m);
    // What a phone waits for its REGISTER, by final status (bench:latency reads the 200s): three 200s, one 401 per
    // registration and the failed attempt's two.
    assert.match(text, /^switchboard_sip_register_duration_seconds_count\{status="200"\} 3$/m);
    assert.match(text, /^switchboard_sip_register_duration_seconds_count\{status="401"\} 5$/m);
    assert.match(text, /^switchboard_sip_register_duration_seconds_bucket\{le="0.003",status="200"\} \d+$/m);
    // Event-loop delay and GC pauses, for operators.
    assert.match(text, /^switchboard_nodejs_eventloop_lag_p99_seconds \S+$/m);
    assert.match(text, /^# TYPE switchboard_nodejs_gc_duration_seconds histogram$/m);
  });

  it('lists registrations, filtered by realm and by user', async () => {
    const all = (await (await get(`/v1/registrations`)).json()) as { total: number; registrations: Array<{ aor: string; bindings: Array<{ contact: string; expires: number; transport: string }> }> };
    assert.equal(all.total, 3);
    assert.deepEqual(all.registrations.map((r) => r.aor).sort(), ['alice@example.test', 'bob@example.test', 'carol@other.test']);
    const realm = (await (await get(`/v1/registrations?realm=other.test`)).json()) as typeof all;
    assert.deepEqual(realm.registrations.map((r) => r.aor), ['carol@other.test']);
    const one = (await (await get(`/v1/registrations?realm=example.test&user=bob`)).json()) as typeof all;
    assert.equal(one.total, 1);
    const b = one.registrations[0].bindings[0];
    assert.equal(b.contact, `sip:bob@127.0.0.1:${c.localPort};transport=udp`);
    assert.equal(b.transport, 'UDP');
    assert.ok(b.expires > 3500 && b.expires <= 3600);
    const user = (await (await get(`/v1/registrations?user=alice`)).json()) as typeof all;
    assert.deepEqual(user.registrations.map((r) => r.aor), ['alice@example.test']);
  });

  it('pages through registrations', async () => {
    const p1 = (await (await get(`/v1/registrations?limit=2`)).json()) as { total: number; registrations: Array<{ aor: string }> };
    const p2 = (await (await get(`/v1/registrations?limit=2&offset=2`)).json()) as typeof p1;
    assert.equal(p1.total, 3);
    assert.equal(p1.registrations.length, 2);
    assert.equal(p2.registrations.length, 1);
    // By address of record: the pages neither overlap nor skip, whatever order the location index keeps.
    assert.deepEqual([...p1.registrations, ...p2.registrations].map((r) => r.aor), ['alice@example.test', 'bob@example.test', 'carol@other.test']);
  });

  it('lists registrations only for admins (or API keys allowed to)', async () => {
    const anon = await fetch(`${server.httpUrl}/v1/registrations`);
    assert.equal(anon.status, 401);
    assert.equal(((await anon.json()) as { error: { code: string } }).error.code, 'HTTP_ERR_UNAUTHORIZED');
    const alice = await server.accounts.findByName('alice', 'example.test');
    const userToken = (await server.tokens.issue(alice!)).token;
    const asUser = await fetch(`${server.httpUrl}/v1/registrations`, { headers: { authorization: `Bearer ${userToken}` } });
    assert.equal(asUser.status, 403);
  });

  it('answers bad queries and unknown routes with a JSON error body', async () => {
    const bad = await get(`/v1/registrations?limit=0`);
    assert.equal(bad.status, 400);
    const badBody = (await bad.json()) as { error: { code: string; message: string } };
    assert.equal(badBody.error.code, 'HTTP_ERR_VALIDATION');
    assert.ok(badBody.error.message);
    const unknown = await get(`/v1/nothing-here`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'HTTP_ERR_NOT_FOUND');
    const extra = await get(`/v1/registrations?bogus=1`);
    assert.equal(extra.status, 400);
  });
});
