// Attack: an account is disabled (or deleted) but its credentials keep working. Reproduced before the fix: an admin
// disabled with PATCH /users/{id} {"disabled":true} still got 200 from GET /users with its API key and its access
// token, and registered over SIP with the token. Now every credential of a disabled or deleted account is refused at
// once (HTTP 401, SIP 401 invalid_token), stays refused when the account is enabled again (the account's "valid
// after" instant), and on another node as well (distributed stack: two nodes sharing PostgreSQL, Redis, RabbitMQ).
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stackFlags, startTestServer, tempDir, testStack, adminToken, type TestServer } from '../helpers/server.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';
type Json = Record<string, unknown>;
const FAST = { 'argon2-memory': '1024', 'argon2-passes': '1', 'login-rate-limit': '0' };

async function call(s: { httpUrl: string }, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: Json }> {
  const r = await fetch(s.httpUrl + url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Json) : {} };
}

let cseq = 1;
function bearerRegister(c: SipTestClient, user: string, token: string) {
  return c.request(
    buildRequest(c, {
      method: 'REGISTER',
      uri: `sip:${D}`,
      from: `<sip:${user}@${D}>`,
      to: `<sip:${user}@${D}>`,
      cseq: cseq++,
      contact: `<sip:${user}@127.0.0.1:${c.localPort};transport=udp>`,
      headers: [['Authorization', `Bearer ${token}`]],
    }),
  );
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Session {
  id: string;
  access: string;
  refresh: string;
  apiKey: string;
}

/** An admin account with a password login (access + refresh token) and an API key that reads /users. */
async function operator(s: TestServer, admin: string, name: string): Promise<Session> {
  const created = await call(s, 'POST', '/users', { username: `${name}@${D}`, password: `${name}-password`, roles: ['admin'] }, admin);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const login = await call(s, 'POST', '/auth/login', { username: `${name}@${D}`, password: `${name}-password` });
  assert.equal(login.status, 200);
  const key = await call(s, 'POST', `/users/${created.body.id as string}/api-keys`, { name: 'ci', permissions: ['users.read'] }, login.body.access_token as string);
  assert.equal(key.status, 201, JSON.stringify(key.body));
  return { id: created.body.id as string, access: login.body.access_token as string, refresh: login.body.refresh_token as string, apiKey: key.body.key as string };
}

describe('a disabled or deleted account’s credentials stop at once', () => {
  let s: TestServer;
  let admin: string;
  let sip: SipTestClient;
  before(async () => {
    s = await startTestServer({ flags: FAST });
    admin = await adminToken(s);
    sip = await SipTestClient.open('UDP', s.sipPort);
  });
  after(async () => {
    sip.close();
    await s.close();
  });

  it('disabled: its API key, access token (HTTP and SIP Bearer) and refresh token are refused, and stay refused once enabled again', async () => {
    const ops = await operator(s, admin, 'ops');
    assert.equal((await call(s, 'GET', '/users', undefined, ops.apiKey)).status, 200);
    assert.equal((await call(s, 'GET', '/users', undefined, ops.access)).status, 200);
    assert.equal((await bearerRegister(sip, 'ops', ops.access)).status, 200);

    assert.equal((await call(s, 'PATCH', `/users/${ops.id}`, { disabled: true }, admin)).status, 200);
    const byKey = await call(s, 'GET', '/users', undefined, ops.apiKey);
    assert.equal(byKey.status, 401, 'API key of a disabled account');
    assert.equal((byKey.body.error as Json).code, 'HTTP_ERR_UNAUTHORIZED');
    const byToken = await call(s, 'GET', '/users', undefined, ops.access);
    assert.equal(byToken.status, 401, 'access token of a disabled account');
    assert.match((byToken.body.error as Json).message as string, /revoked/);
    const reg = await bearerRegister(sip, 'ops', ops.access);
    assert.equal(reg.status, 401, reg.raw);
    assert.match(reg.header('WWW-Authenticate')!, /error="invalid_token"/);
    assert.equal((await call(s, 'POST', '/auth/refresh', { refresh_token: ops.refresh })).status, 401, 'refresh token of a disabled account');
    assert.equal((await call(s, 'POST', '/auth/login', { username: `ops@${D}`, password: 'ops-password' })).status, 401);

    // Enabled again: what was issued before the disable stays dead (its "valid after" instant); a new login works.
    assert.equal((await call(s, 'PATCH', `/users/${ops.id}`, { disabled: false }, admin)).status, 200);
    assert.equal((await call(s, 'GET', '/users', undefined, ops.apiKey)).status, 401, 'old API key after re-enabling');
    assert.equal((await call(s, 'GET', '/users', undefined, ops.access)).status, 401, 'old access token after re-enabling');
    assert.equal((await bearerRegister(sip, 'ops', ops.access)).status, 401);
    assert.equal((await call(s, 'POST', '/auth/refresh', { refresh_token: ops.refresh })).status, 401);
    await pause(1100); // tokens carry iat in whole seconds: one issued in the second of the disable is refused too
    const fresh = await call(s, 'POST', '/auth/login', { username: `ops@${D}`, password: 'ops-password' });
    assert.equal(fresh.status, 200);
    assert.equal((await call(s, 'GET', '/users', undefined, fresh.body.access_token as string)).status, 200);
    assert.equal((await bearerRegister(sip, 'ops', fresh.body.access_token as string)).status, 200);
  });

  it('deleted: its access token (HTTP and SIP Bearer) and API key are refused', async () => {
    const gone = await operator(s, admin, 'gone');
    assert.equal((await bearerRegister(sip, 'gone', gone.access)).status, 200);
    assert.equal((await call(s, 'DELETE', `/users/${gone.id}`, undefined, admin)).status, 204);
    assert.equal((await call(s, 'GET', '/users', undefined, gone.access)).status, 401);
    assert.equal((await call(s, 'GET', '/users', undefined, gone.apiKey)).status, 401);
    assert.equal((await bearerRegister(sip, 'gone', gone.access)).status, 401);
  });
});

describe('disabled on one node, refused at once on the other', { skip: testStack() === 'distributed' ? false : 'needs the distributed stack (two nodes sharing PostgreSQL, Redis, RabbitMQ)' }, () => {
  let a: TestServer;
  let b: TestServer;
  let admin: string;
  let sipB: SipTestClient;
  before(async () => {
    const dirA = tempDir('sb-valid-a-');
    a = await startTestServer({ flags: FAST, dataDir: dirA });
    // Node B: the same database, cache, bus and master key as node A, its own node id.
    const dirB = tempDir('sb-valid-b-');
    copyFileSync(path.join(dirA, 'master.key'), path.join(dirB, 'master.key'));
    b = await startTestServer({ flags: { ...FAST, ...stackFlags(dirA), 'node-id': `${stackFlags(dirA)['node-id'] as string}-b` }, dataDir: dirB });
    admin = await adminToken(a);
    sipB = await SipTestClient.open('UDP', b.sipPort);
  });
  after(async () => {
    sipB.close();
    await b.close();
    await a.close();
  });

  it('an admin disabled through node A loses its token, API key and SIP Bearer registration on node B', async () => {
    const ops = await operator(a, admin, 'ops2');
    // Node B has seen (and cached) the account as live.
    assert.equal((await call(b, 'GET', '/users', undefined, ops.access)).status, 200);
    assert.equal((await call(b, 'GET', '/users', undefined, ops.apiKey)).status, 200);
    assert.equal((await bearerRegister(sipB, 'ops2', ops.access)).status, 200);

    assert.equal((await call(a, 'PATCH', `/users/${ops.id}`, { disabled: true }, admin)).status, 200);
    // "At once": as soon as the bus has carried the change (well under the credential cache's 60 s TTL).
    const deadline = Date.now() + 5000;
    let status = 200;
    while (Date.now() < deadline && (status = (await call(b, 'GET', '/users', undefined, ops.access)).status) === 200) await pause(50);
    assert.equal(status, 401, 'node B still accepted the token 5 s after the disable');
    assert.equal((await call(b, 'GET', '/users', undefined, ops.apiKey)).status, 401);
    assert.equal((await bearerRegister(sipB, 'ops2', ops.access)).status, 401);
  });
});
