// Pushes for inbox messages (issue 18), through the running server to local HTTP/2 stand-ins of FCM and a Web Push
// service: a device that registered an FCM token with encrypt gets the details sealed to its session key (kid in
// clear; opened here with AES-256-GCM written in the test); a browser subscription without it gets a content-free
// wake-up, RFC 8291-encrypted to the subscription; after a rollover the push names the new kid and the one before
// still opens with the old key; a dead token is dropped; push.sent/push.failed carry no token or payload.
import assert from 'node:assert/strict';
import { createDecipheriv, createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collectEvents } from '../helpers/events.ts';
import { startTestServer, tempDir, type TestServer } from '../helpers/server.ts';
import { appLogin, http, send, sessionOf, type Session } from './helpers.ts';
import { decryptWebPush, h2Server } from './push-servers.ts';

/** The app's side of a sealed push: {"v":1,"kid","iv","ct"} under AES-256-GCM, AAD "switchboard-push:<kid>". */
function openSealed(payload: Buffer, key: Buffer): Record<string, unknown> {
  const p = JSON.parse(payload.toString()) as { kid: string; iv: string; ct: string };
  const raw = Buffer.from(p.ct, 'base64url');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(p.iv, 'base64url'));
  d.setAAD(Buffer.from(`switchboard-push:${p.kid}`));
  d.setAuthTag(raw.subarray(-16));
  return { kid: p.kid, ...(JSON.parse(Buffer.concat([d.update(raw.subarray(0, -16)), d.final()]).toString()) as object) };
}

describe('pushes for inbox messages', () => {
  let server: TestServer;
  let base: string;
  let fcm: Awaited<ReturnType<typeof h2Server>>;
  let wp: Awaited<ReturnType<typeof h2Server>>;
  const ua = createECDH('prime256v1');
  ua.generateKeys();
  const authSecret = randomBytes(16);
  let phone: Session;
  let browser: Session;
  let bob: Session;

  before(async () => {
    fcm = await h2Server((s) => {
      if (s.headers[':path'] === '/token') return { status: 200, body: JSON.stringify({ access_token: 'ya29.local', expires_in: 3600 }) };
      const token = (JSON.parse(s.body.toString()) as { message: { token: string } }).message.token;
      return token === 'dead' ? { status: 404, body: JSON.stringify({ error: { status: 'NOT_FOUND', details: [{ errorCode: 'UNREGISTERED' }] } }) } : { status: 200, body: JSON.stringify({ name: 'projects/p/messages/1' }) };
    });
    wp = await h2Server(() => ({ status: 201 }));
    const dir = tempDir('sb-fcm-');
    const account = path.join(dir, 'service-account.json');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(account, JSON.stringify({ type: 'service_account', project_id: 'p', client_email: 'sb@p.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), token_uri: `${fcm.url}/token` }));
    server = await startTestServer({
      users: { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' },
      flags: { 'fcm-service-account': account, 'fcm-url': fcm.url, 'webpush-hosts': ['127.0.0.1'] },
    });
    base = server.httpUrl;
    phone = await appLogin(base, 'alice@example.test', 'alice-pw');
    browser = await appLogin(base, 'alice@example.test', 'alice-pw');
    bob = await appLogin(base, 'bob@example.test', 'bob-pw');
  });
  after(async () => {
    await server.close();
    await fcm.close();
    await wp.close();
  });

  const fcmPushes = () => fcm.seen.filter((s) => s.headers[':path'] === '/v1/projects/p/messages:send');
  const until = async (what: string, check: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('pushes each registered device: sealed to the phone\u2019s session key, a wake-up to the browser', async () => {
    const vapid = await http(base, 'GET', '/v1/push/vapid');
    assert.equal(Buffer.from(vapid.json.publicKey as string, 'base64url').length, 65);
    assert.equal((await http(base, 'PUT', '/v1/sessions/current/push', { auth: phone.auth, body: { provider: 'fcm', token: 'fcm-token-1', encrypt: true } })).status, 204);
    const sub = { provider: 'webpush', endpoint: `${wp.url}/push/alice`, keys: { p256dh: ua.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') } };
    assert.equal((await http(base, 'PUT', '/v1/sessions/current/push', { auth: browser.auth, body: sub })).status, 204);
    assert.equal((await http(base, 'PUT', '/v1/sessions/current/push', { auth: browser.auth, body: { provider: 'apns', token: 'ab' } })).status, 400, 'APNs is not configured');
    const events = await collectEvents(server.bus, 'push.*');

    const sent = await send(base, bob, 'alice@example.test', 'meet at noon');
    await until('both pushes', () => fcmPushes().length === 1 && wp.seen.length === 1);
    const body = JSON.parse(fcmPushes()[0]!.body.toString()) as { message: { token: string; data: { type: string; sb: string } } };
    assert.equal(body.message.token, 'fcm-token-1');
    assert.equal(body.message.data.type, 'message');
    const sealed = Buffer.from(body.message.data.sb, 'base64url');
    assert.ok(!sealed.toString().includes('noon') && !sealed.toString().includes(Buffer.from('meet at noon').toString('base64')), 'no content in clear');
    const opened = openSealed(sealed, Buffer.from(phone.key, 'base64url'));
    assert.deepEqual(opened, { kid: phone.kid, type: 'message', id: sent.json.id, sender: 'sip:bob@example.test', contentType: 'text/plain', body: Buffer.from('meet at noon').toString('base64') });
    assert.deepEqual(JSON.parse(decryptWebPush(wp.seen[0]!.body, ua, authSecret).toString()), { v: 1, type: 'message' }, 'a content-free wake-up');

    await events.waitFor((e) => e.filter((x) => x.topic === 'push.sent').length === 2, 'two push.sent');
    const text = JSON.stringify(events.events);
    for (const secret of ['fcm-token-1', '/push/alice', 'noon', body.message.data.sb.slice(0, 20)]) assert.ok(!text.includes(secret), `not on the bus: ${secret}`);
    events.stop();
  });

  it('after a rollover the push names the new kid; the one before still opens with the old key', async () => {
    const before = fcmPushes().length;
    const first = await send(base, bob, 'alice@example.test', 'one');
    await until('a push', () => fcmPushes().length === before + 1);
    const next = sessionOf((await http(base, 'POST', '/v1/sessions/rollover', { auth: phone.auth })).json);
    const second = await send(base, bob, 'alice@example.test', 'two');
    await until('another push', () => fcmPushes().length === before + 2);
    const [p1, p2] = fcmPushes()
      .slice(before)
      .map((s) => Buffer.from((JSON.parse(s.body.toString()) as { message: { data: { sb: string } } }).message.data.sb, 'base64url'));
    assert.equal(JSON.parse(p1!.toString()).kid, phone.kid);
    assert.equal(JSON.parse(p2!.toString()).kid, next.kid);
    assert.equal(openSealed(p1!, Buffer.from(phone.key, 'base64url')).id, first.json.id, 'the old key still opens the push sent under it');
    assert.equal(openSealed(p2!, Buffer.from(next.key, 'base64url')).id, second.json.id);
    assert.throws(() => openSealed(p2!, Buffer.from(phone.key, 'base64url')));
    phone = next;
  });

  it('drops a token the provider calls dead', async () => {
    assert.equal((await http(base, 'PUT', '/v1/sessions/current/push', { auth: phone.auth, body: { provider: 'fcm', token: 'dead' } })).status, 204);
    const events = await collectEvents(server.bus, 'push.failed');
    await send(base, bob, 'alice@example.test', 'anyone?');
    await events.waitFor((e) => e.length === 1, 'push.failed');
    assert.equal(events.events[0]!.payload.gone, true);
    const n = fcmPushes().length;
    await send(base, bob, 'alice@example.test', 'again');
    await until('the browser push', () => wp.seen.length >= 5);
    assert.equal(fcmPushes().length, n, 'no push to the dead token');
    events.stop();
  });
});
