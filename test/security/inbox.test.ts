// Attacks on the app inbox and its sessions (issue 18): another account's inbox cannot be read or acked, a replayed
// ack removes nothing, oversized bodies and requests are refused, the quota holds, an expired, forged, ended or
// transplanted session gets 401 (over HTTP and on the stream), a removed device's session is dead, an API key
// cannot open a session, a bad frame closes the stream, and no body or key reaches the log.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startServer, type RunningServer } from '../../src/server.ts';
import { tempDir, testConfig, storeQuery } from '../helpers/server.ts';
import { TestClock, basic, call, nextNumber, signUp, startPhoneServer, type PhoneTestServer } from '../phone/helpers.ts';
import { appLogin, http, openStream, queueEmpty, send, sessionOf, type Session } from '../messaging/helpers.ts';

describe('inbox attacks', () => {
  let server: RunningServer;
  let base: string;
  let dataDir: string;
  const logLines: string[] = [];
  let alice: Session;
  let bob: Session;

  before(async () => {
    dataDir = tempDir();
    const config = testConfig(dataDir, { 'message-max-body': '1024', 'message-quota': '5', 'log-level': 'trace' });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    server = await startServer(config, { log: pino({ level: 'trace' }, sink) });
    base = `http://127.0.0.1:${server.http.port}`;
    await server.accountService.create('alice@example.test', 'alice-pw');
    await server.accountService.create('bob@example.test', 'bob-pw');
    alice = await appLogin(base, 'alice@example.test', 'alice-pw');
    bob = await appLogin(base, 'bob@example.test', 'bob-pw');
  });
  after(() => server.stop());

  it('an account reads and acks only its own messages; a replayed ack removes nothing', async () => {
    const sent = await send(base, alice, 'bob@example.test', 'secret for bob');
    assert.equal(sent.status, 200);
    const id = sent.json.id as string;
    const mine = await http(base, 'GET', '/v1/messages', { auth: alice.auth });
    assert.deepEqual(mine.json.messages, [], 'alice sees none of bob\u2019s');
    const stream = await openStream(base, alice);
    await stream.waitFor(queueEmpty, 'alice\u2019s empty queue');
    assert.equal(stream.frames.length, 1);
    stream.ack(id);
    await stream.close();
    assert.equal((await http(base, 'DELETE', `/v1/messages/${id}`, { auth: alice.auth })).status, 404, 'alice cannot ack bob\u2019s');
    const bobs = await http(base, 'GET', '/v1/messages', { auth: bob.auth });
    assert.deepEqual((bobs.json.messages as Array<{ id: string }>).map((m) => m.id), [id], 'still bob\u2019s, after acks by alice over HTTP and the stream');
    assert.equal((await http(base, 'DELETE', `/v1/messages/${id}`, { auth: bob.auth })).status, 204);
    assert.equal((await http(base, 'DELETE', `/v1/messages/${id}`, { auth: bob.auth })).status, 404, 'a replayed ack');
    assert.equal((await http(base, 'DELETE', `/v1/messages/${'x'.repeat(65)}`, { auth: bob.auth })).status, 400);
  });

  it('refuses oversized bodies and requests, unknown recipients, and keeps to the quota', async () => {
    const big = await send(base, alice, 'bob@example.test', 'x'.repeat(1025));
    assert.equal(big.status, 413, 'one byte over --message-max-body');
    assert.equal((big.json.error as { code: string }).code, 'MSG_ERR_TOO_LARGE');
    assert.equal((await send(base, alice, 'bob@example.test', 'x'.repeat(1030))).status, 400, 'over the schema bound');
    assert.equal((await send(base, alice, 'bob@example.test', 'x'.repeat(1024))).status, 200, 'at the bound');
    const huge = await fetch(base + '/v1/messages', { method: 'POST', headers: { authorization: alice.auth, 'content-type': 'application/json' }, body: JSON.stringify({ to: 'bob@example.test', body: 'A'.repeat(1_000_000) }) });
    assert.equal(huge.status, 413);
    assert.equal((await send(base, alice, 'nobody@example.test', 'x')).status, 404);
    assert.equal((await send(base, alice, 'bob@elsewhere.test', 'x')).status, 404);
    for (let i = 0; i < 4; i++) assert.equal((await send(base, alice, 'bob@example.test', `q${i}`)).status, 200);
    const over = await send(base, alice, 'bob@example.test', 'one too many');
    assert.equal(over.status, 507);
    assert.equal((over.json.error as { code: string }).code, 'MSG_ERR_QUOTA');
    const list = await http(base, 'GET', '/v1/messages', { auth: bob.auth });
    for (const m of list.json.messages as Array<{ id: string }>) await http(base, 'DELETE', `/v1/messages/${m.id}`, { auth: bob.auth });
  });

  it('refuses forged, malformed, missing, transplanted and expired sessions, and API keys', async () => {
    const forged = `Session ${alice.kid}:${Buffer.alloc(32, 7).toString('base64url')}`;
    for (const auth of [forged, `Session ${alice.kid}`, `Bearer ${alice.key}`, 'Session x:y', undefined]) {
      const r = await http(base, 'GET', '/v1/messages', { auth });
      assert.equal(r.status, 401, String(auth));
      assert.equal((r.json.error as { code: string }).code, 'MSG_ERR_SESSION');
    }
    await assert.rejects(openStream(base, { ...alice, auth: forged }), (e: Error & { status?: number }) => e.status === 401);
    await assert.rejects(openStream(base, null), (e: Error & { status?: number }) => e.status === 401);
    // A sealed key moved to another session's row does not open there.
    const extra = await appLogin(base, 'alice@example.test', 'alice-pw');
    const [row] = await storeQuery<{ sealed_key: string }>(dataDir, 'SELECT sealed_key FROM app_sessions WHERE kid = ?', alice.kid);
    await storeQuery(dataDir, 'UPDATE app_sessions SET sealed_key = ? WHERE kid = ?', row!.sealed_key, extra.kid);
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: `Session ${extra.kid}:${alice.key}` })).status, 401);
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: extra.auth })).status, 401);
    // Expired.
    await storeQuery(dataDir, 'UPDATE app_sessions SET expires_at = ? WHERE kid = ?', Date.now() - 1, alice.kid);
    assert.equal((await http(base, 'GET', '/v1/messages', { auth: alice.auth })).status, 401);
    assert.equal((await send(base, alice, 'bob@example.test', 'x')).status, 401);
    await assert.rejects(openStream(base, alice), (e: Error & { status?: number }) => e.status === 401);
    alice = await appLogin(base, 'alice@example.test', 'alice-pw');
    // An API key is not a login.
    const account = (await server.accounts.findByName('alice', 'example.test'))!;
    const token = (await server.tokens.issue(account)).token;
    const apiKey = await http(base, 'POST', `/users/${account.id}/api-keys`, { auth: `Bearer ${token}`, body: { name: 'test', permissions: ['presence.read'] } });
    assert.equal(apiKey.status, 201, JSON.stringify(apiKey.json));
    assert.equal((await http(base, 'POST', '/v1/sessions', { auth: `Bearer ${apiKey.json.key as string}` })).status, 401);
    assert.equal((await http(base, 'POST', '/v1/sessions', {})).status, 401);
    assert.equal((await http(base, 'POST', '/v1/sessions', { auth: basic('alice@example.test', 'alice-pw') })).status, 401, 'Basic is for phone devices');
  });

  it('closes the stream on a bad frame', async () => {
    const s = await openStream(base, bob);
    await s.waitFor(queueEmpty, 'the marker');
    const closed = new Promise<number>((resolve) => s.ws.once('close', (code) => resolve(code)));
    s.ws.send('{"type":"nack"}');
    assert.equal(await closed, 1008);
    const s2 = await openStream(base, bob);
    const closed2 = new Promise<number>((resolve) => s2.ws.once('close', (code) => resolve(code)));
    s2.ws.send('x'.repeat(2000));
    assert.equal(await closed2, 1009, 'a frame over 1 KiB');
  });

  it('logs no message body and no session key', async () => {
    await send(base, bob, 'alice@example.test', 'the body nobody logs');
    const s = await openStream(base, alice);
    await s.waitFor(queueEmpty, 'the marker');
    await s.close();
    const log = logLines.join('');
    assert.ok(log.length > 0, 'the server logged something');
    for (const secret of ['the body nobody logs', Buffer.from('the body nobody logs').toString('base64'), 'secret for bob', alice.key, bob.key]) {
      assert.ok(!log.includes(secret), `not in the log: ${secret.slice(0, 12)}…`);
    }
  });
});

describe('phone device sessions', () => {
  let s: PhoneTestServer;
  const clock = new TestClock();

  before(async () => {
    s = await startPhoneServer({ clock, flags: { 'app-session-ttl': '3600', 'app-session-overlap': '60' } });
  });
  after(() => s.close());

  it('device Basic opens a session; removing the device ends it; the old key lasts the overlap; expiry ends it', async () => {
    const u = await signUp(s, nextNumber());
    const primary = await http(s.httpUrl, 'POST', '/v1/sessions', { auth: u.auth });
    assert.equal(primary.status, 200, JSON.stringify(primary.json));
    assert.equal(primary.json.deviceId, 1);
    const p = sessionOf(primary.json);
    const code = await call(s, 'GET', '/v1/devices/provisioning/code', { auth: u.auth });
    const linked = await call(s, 'PUT', '/v1/devices/link', { auth: basic(u.number, 'linked-password'), body: { verificationCode: code.body.verificationCode } });
    assert.equal(linked.status, 200);
    const second = basic(`${u.uuid}.2`, 'linked-password');
    const l = sessionOf((await http(s.httpUrl, 'POST', '/v1/sessions', { auth: second })).json);
    assert.equal((await http(s.httpUrl, 'POST', '/v1/sessions', { auth: basic(`${u.uuid}.2`, 'wrong') })).status, 401);
    assert.equal((await http(s.httpUrl, 'GET', '/v1/messages', { auth: l.auth })).status, 200);
    assert.equal((await call(s, 'DELETE', '/v1/devices/2', { auth: u.auth })).status, 204);
    assert.equal((await http(s.httpUrl, 'GET', '/v1/messages', { auth: l.auth })).status, 401, 'the removed device\u2019s session');
    assert.equal((await http(s.httpUrl, 'GET', '/v1/messages', { auth: p.auth })).status, 200);

    // Rollover: the old key lasts the overlap, no longer.
    const next = sessionOf((await http(s.httpUrl, 'POST', '/v1/sessions/rollover', { auth: p.auth })).json);
    clock.advance(59_000);
    assert.equal((await http(s.httpUrl, 'GET', '/v1/messages', { auth: p.auth })).status, 200);
    clock.advance(2_000);
    assert.equal((await http(s.httpUrl, 'GET', '/v1/messages', { auth: p.auth })).status, 401, 'past the overlap');
    const stream = await openStream(s.httpUrl, next);
    await stream.waitFor(queueEmpty, 'the marker');
    clock.advance(3600_000);
    assert.equal((await http(s.httpUrl, 'GET', '/v1/messages', { auth: next.auth })).status, 401, 'expired');
    await assert.rejects(openStream(s.httpUrl, next), (e: Error & { status?: number }) => e.status === 401);
    await stream.close();
  });
});
