// POST /v1/registrations/{aor}/check-sync: a phone registered over TCP gets an out-of-dialog NOTIFY with
// `Event: check-sync` on its connection (Route from its Path), answers it, and the route reports the answer per
// binding; 404 for an AOR without bindings; 401 without credentials, 403 without admin or registrations.write.
//
// Until server.ts builds the route itself (it needs a FlowRelay wired into the server), the test builds the HTTP
// app around the running server's pieces, with a relay and check-sync of its own on the server's bus and endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { openDurable, type DurableStores } from '../../src/adapters.ts';
import { FlowRelay } from '../../src/sip/flow-relay.ts';
import { buildHttpApp } from '../../src/http/app.ts';
import { ApiKeys } from '../../src/identity/api-keys.ts';
import { RefreshTokens } from '../../src/identity/refresh-tokens.ts';
import { aorUri, buildCheckSyncNotify, checkSyncService } from '../../src/registrar/check-sync.ts';
import { serialize } from '../../src/sip/message/index.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { parseRequest, responseTo } from '../helpers/presence.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

type Json = Record<string, unknown>;

/** The UA's answer to a request it received (raw). */
function answer(raw: string, status = 200, reason = 'OK'): string {
  return responseTo(parseRequest(raw), status, reason, [['Server', 'test-ua']]);
}

function header(raw: string, name: string): string[] {
  return raw
    .split('\r\n\r\n')[0]
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'))
    .map((l) => l.slice(name.length + 1).trim());
}

describe('check-sync NOTIFY', () => {
  const binding: BindingRecord = {
    aor: 'alice smith@example.test',
    key: 'sip:alice@192.0.2.7:5060',
    contact: 'sip:alice@192.0.2.7:5060;transport=tcp',
    params: '',
    q: null,
    expiresAt: Date.now() + 60_000,
    callId: 'c',
    cseq: 1,
    path: ['<sip:edge1.example.test;lr>', '<sip:edge2.example.test;lr;ob>'],
    instanceId: null,
    regId: null,
    transport: 'TCP',
    sourceAddress: '192.0.2.7',
    sourcePort: 40000,
    localAddress: '127.0.0.1',
    localPort: 5060,
    connectionId: 3,
    node: 'n1',
    userAgent: null,
    createdAt: 0,
    updatedAt: 0,
    accountId: null,
  };

  it('goes to the contact, routed along the Path, from and to the AOR, without a body', () => {
    const req = buildCheckSyncNotify(binding, { contact: '<sip:10.0.0.1:5060;transport=tcp>', callId: 'cid@x', fromTag: 'ft' });
    assert.equal(
      serialize(req).toString('latin1'),
      [
        'NOTIFY sip:alice@192.0.2.7:5060;transport=tcp SIP/2.0',
        'Route: <sip:edge1.example.test;lr>',
        'Route: <sip:edge2.example.test;lr;ob>',
        'From: <sip:alice%20smith@example.test>;tag=ft',
        'To: <sip:alice%20smith@example.test>',
        'Call-ID: cid@x',
        'CSeq: 1 NOTIFY',
        'Contact: <sip:10.0.0.1:5060;transport=tcp>',
        'Event: check-sync',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    const other = buildCheckSyncNotify(binding, { contact: '<sip:10.0.0.1>' });
    assert.notEqual(other.callId(), buildCheckSyncNotify(binding, { contact: '<sip:10.0.0.1>' }).callId(), 'a fresh Call-ID each time');
    assert.equal(aorUri('bob@example.test'), 'sip:bob@example.test');
    assert.equal(aorUri('+15551234;x=1@example.test'), 'sip:+15551234;x=1@example.test');
  });
});

describe('POST /v1/registrations/{aor}/check-sync', () => {
  let s: TestServer;
  let durable: DurableStores;
  let relay: FlowRelay;
  let app: FastifyInstance;
  let admin: string;
  let phone: SipTestClient;
  /** The server's node id, as its bindings record it. */
  let node: string;

  const post = async (aor: string, token?: string) => {
    const r = await app.inject({ method: 'POST', url: `/v1/registrations/${encodeURIComponent(aor)}/check-sync`, headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: r.statusCode, body: r.json<Json>() };
  };

  before(async () => {
    s = await startTestServer({ flags: { 'argon2-memory': '1024', 'argon2-passes': '1', 'sip-trusted-proxies': ['127.0.0.1'] }, users: { 'alice@example.test': 'a-pw', 'bob@example.test': 'b-pw' } });
    admin = await adminToken(s);
    phone = await SipTestClient.open('TCP', s.sipPort);
    const r = await register(phone, { user: 'alice', password: 'a-pw', domain: 'example.test', headers: [['Path', '<sip:edge.example.test;lr>'], ['Supported', 'path']] });
    assert.equal(r.status, 200, r.raw);
    // What server.ts would build: a relay on the server's bus and endpoint, check-sync over it, the HTTP app with it.
    durable = await openDurable(s.config);
    node = (await s.location.lookup('alice@example.test'))[0].node;
    relay = new FlowRelay({ bus: s.bus, endpoint: s.endpoint, node, log: s.log, connections: s.transports });
    relay.start();
    const checkSync = checkSyncService({ location: s.location, relay, localAddress: (t) => s.endpoint.localAddress(t), log: s.log });
    app = buildHttpApp({
      log: s.log,
      metrics: s.metrics,
      location: s.location,
      ready: () => true,
      version: 'test',
      loginRateLimit: 0,
      identity: {
        accounts: s.accountService,
        store: s.accounts,
        tokens: s.tokens,
        refresh: new RefreshTokens(durable.tokens, 3600),
        keys: s.keys,
        apiKeys: new ApiKeys(durable.tokens),
      },
      checkSync,
    });
    await app.ready();
  });
  after(async () => {
    phone?.close();
    relay?.close();
    await app?.close();
    await durable?.close();
    await s?.close();
  });

  it('sends NOTIFY Event: check-sync over the phone\u2019s connection and reports its answer', async () => {
    const pending = post('alice@EXAMPLE.test', admin);
    const got = await phone.next(5000);
    assert.match(got, new RegExp(`^NOTIFY sip:alice@127\\.0\\.0\\.1:${phone.localPort};transport=tcp SIP/2\\.0\r\n`));
    assert.deepEqual(header(got, 'Event'), ['check-sync']);
    assert.deepEqual(header(got, 'Route'), ['<sip:edge.example.test;lr>']);
    assert.match(header(got, 'From')[0], /^<sip:alice@example\.test>;tag=\S+$/);
    assert.deepEqual(header(got, 'To'), ['<sip:alice@example.test>']);
    assert.deepEqual(header(got, 'CSeq'), ['1 NOTIFY']);
    assert.deepEqual(header(got, 'Content-Length'), ['0']);
    assert.equal(header(got, 'Via').length, 1);
    assert.match(header(got, 'Contact')[0], /^<sip:127\.0\.0\.1:\d+;transport=tcp>$/);
    phone.send(answer(got));
    const r = await pending;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const results = r.body.results as Json[];
    assert.equal(r.body.aor, 'alice@example.test');
    assert.equal(results.length, 1);
    assert.equal(results[0].status, 200);
    assert.equal(results[0].reason, 'OK');
    assert.equal(results[0].transport, 'TCP');
    assert.equal(results[0].contact, `sip:alice@127.0.0.1:${phone.localPort};transport=tcp`);
    assert.equal(results[0].node, node);
    assert.equal(typeof results[0].key, 'string');
    assert.equal(results[0].error, undefined);
  });

  it('reports a phone that refuses the event, per binding', async () => {
    const pending = post('alice@example.test', admin);
    phone.send(answer(await phone.next(5000), 489, 'Bad Event'));
    const r = await pending;
    assert.equal(r.status, 200);
    assert.deepEqual((r.body.results as Json[]).map((x) => [x.status, x.reason]), [[489, 'Bad Event']]);
  });

  it('answers 404 for an address of record without bindings', async () => {
    const r = await post('bob@example.test', admin);
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: { code: 'REG_ERR_NOT_REGISTERED', message: 'bob@example.test has no live bindings' } });
    assert.equal((await post('nobody@nowhere.test', admin)).status, 404);
  });

  it('needs an admin, or an API key with registrations.write', async () => {
    const none = await post('alice@example.test');
    assert.equal(none.status, 401);
    assert.equal((none.body.error as Json).code, 'HTTP_ERR_UNAUTHORIZED');
    const alice = (await s.accounts.findByName('alice', 'example.test'))!;
    const user = (await s.tokens.issue(alice)).token;
    const forbidden = await post('alice@example.test', user);
    assert.equal(forbidden.status, 403);
    assert.match((forbidden.body.error as Json).message as string, /registrations\.write/);

    const mint = async (permissions: string[]) => {
      const r = await fetch(`${s.httpUrl}/users/${alice.id}/api-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: permissions.join(' '), permissions }),
      });
      assert.equal(r.status, 201);
      return ((await r.json()) as { key: string }).key;
    };
    assert.equal((await post('alice@example.test', await mint(['registrations.read']))).status, 403, 'reading registrations is not enough');
    const pending = post('alice@example.test', await mint(['registrations.write']));
    phone.send(answer(await phone.next(5000)));
    assert.equal((await pending).status, 200);
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, { summary?: string; responses?: Record<string, unknown> }>> }>();
    const op = doc.paths['/v1/registrations/{aor}/check-sync']?.post;
    assert.ok(op, 'the route is in the document');
    assert.match(op.summary ?? '', /check-sync/);
    assert.ok(op.responses?.['200'] && op.responses['404'] && op.responses['403']);
  });
});
