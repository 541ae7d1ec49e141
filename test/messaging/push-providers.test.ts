// The push providers against local HTTP/2 servers speaking the providers' published APIs, each request checked field
// by field: FCM HTTP v1 (the service-account JWT at the token endpoint, then messages:send), APNs (provider token,
// /3/device/<token>, apns-* headers) and an RFC 8030 push service whose payload this file decrypts with its own RFC
// 8291 code and the subscription's private key, VAPID (RFC 8292) verified with the key the header names. Also the
// session-key payload (AES-256-GCM, kid in clear, never over the bound).
import assert from 'node:assert/strict';
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, importJWK, importSPKI, jwtVerify } from 'jose';
import { ApnsProvider } from '../../src/messaging/push/apns.ts';
import { FcmProvider, FCM_SCOPE } from '../../src/messaging/push/fcm.ts';
import { encryptedPayload, openPayload, wakeUp } from '../../src/messaging/push/payload.ts';
import { MAX_PUSH_PAYLOAD } from '../../src/messaging/push/ports.ts';
import { vapidKeys, WebPushProvider } from '../../src/messaging/push/webpush.ts';
import { decryptWebPush, h2Server } from './push-servers.ts';

describe('push providers', () => {
  describe('FCM HTTP v1', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let server: Awaited<ReturnType<typeof h2Server>>;
    let fcm: FcmProvider;
    let tokenCalls = 0;
    before(async () => {
      server = await h2Server((s) => {
        if (s.headers[':path'] === '/token') {
          tokenCalls++;
          return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ access_token: 'ya29.test-access', expires_in: 3599, token_type: 'Bearer' }) };
        }
        const token = (JSON.parse(s.body.toString()) as { message: { token: string } }).message.token;
        if (token === 'dead-token') return { status: 404, body: JSON.stringify({ error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND', details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }] } }) };
        return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'projects/proj-1/messages/0:123' }) };
      });
      fcm = new FcmProvider(
        { project_id: 'proj-1', client_email: 'sb@proj-1.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, token_uri: `${server.url}/token` },
        server.url,
      );
    });
    after(async () => {
      fcm.close();
      await server.close();
    });

    it('exchanges a service-account JWT for an access token once, then sends messages:send', async () => {
      const payload = wakeUp('message');
      assert.deepEqual(await fcm.send({ provider: 'fcm', prid: 'device-token-1', param: null }, { kind: 'message', payload, ttl: 600 }), { ok: true, id: 'projects/proj-1/messages/0:123' });
      assert.deepEqual((await fcm.send({ provider: 'fcm', prid: 'device-token-2', param: null }, { kind: 'call', payload, ttl: 30 })).ok, true);
      assert.equal(tokenCalls, 1, 'the access token is reused');
      const [tokenReq, send1, send2] = server.seen;
      assert.equal(tokenReq!.headers[':method'], 'POST');
      assert.equal(tokenReq!.headers['content-type'], 'application/x-www-form-urlencoded');
      const form = new URLSearchParams(tokenReq!.body.toString());
      assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
      const { payload: claims, protectedHeader } = await jwtVerify(form.get('assertion')!, await importSPKI(publicKey.export({ type: 'spki', format: 'pem' }) as string, 'RS256'), {
        issuer: 'sb@proj-1.iam.gserviceaccount.com',
        audience: `${server.url}/token`,
      });
      assert.equal(protectedHeader.alg, 'RS256');
      assert.equal(claims.scope, FCM_SCOPE);
      assert.equal(claims.exp! - claims.iat!, 3600);
      assert.equal(send1!.headers[':method'], 'POST');
      assert.equal(send1!.headers[':path'], '/v1/projects/proj-1/messages:send');
      assert.equal(send1!.headers.authorization, 'Bearer ya29.test-access');
      assert.match(String(send1!.headers['content-type']), /^application\/json/);
      assert.deepEqual(JSON.parse(send1!.body.toString()), {
        message: { token: 'device-token-1', data: { type: 'message', sb: payload.toString('base64url') }, android: { priority: 'normal', ttl: '600s' } },
      });
      assert.deepEqual(JSON.parse(send2!.body.toString()).message.android, { priority: 'high', ttl: '30s' });
    });

    it('reports a dead token as gone', async () => {
      const r = await fcm.send({ provider: 'fcm', prid: 'dead-token', param: null }, { kind: 'message', payload: wakeUp('message'), ttl: 60 });
      assert.deepEqual(r, { ok: false, status: 404, reason: 'NOT_FOUND', gone: true });
    });
  });

  describe('APNs', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let server: Awaited<ReturnType<typeof h2Server>>;
    let apns: ApnsProvider;
    const token = 'a'.repeat(64);
    before(async () => {
      server = await h2Server((s) =>
        s.headers[':path'] === `/3/device/${'b'.repeat(64)}` ? { status: 410, body: JSON.stringify({ reason: 'Unregistered', timestamp: 1 }) } : { status: 200, headers: { 'apns-id': 'EC1BF194-B3B2-424A-89A9-5A918A6E6B5B' } },
      );
      apns = new ApnsProvider({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, keyId: 'ABC123DEFG', teamId: 'DEF123GHIJ', topic: 'com.example.app', url: server.url });
    });
    after(async () => {
      apns.close();
      await server.close();
    });

    it('sends a VoIP push for a call and a background push for a message, with an ES256 provider token', async () => {
      const payload = wakeUp('call');
      const r = await apns.send({ provider: 'apns', prid: token, param: 'DEF123GHIJ.com.example.app.voip' }, { kind: 'call', payload, ttl: 30 });
      assert.deepEqual(r, { ok: true, id: 'EC1BF194-B3B2-424A-89A9-5A918A6E6B5B' });
      await apns.send({ provider: 'apns', prid: token, param: 'DEF123GHIJ.com.example.app.remote' }, { kind: 'message', payload: wakeUp('message'), ttl: 600 });
      const [call, msg] = server.seen;
      assert.equal(call!.headers[':method'], 'POST');
      assert.equal(call!.headers[':path'], `/3/device/${token}`);
      assert.equal(call!.headers['apns-topic'], 'com.example.app.voip');
      assert.equal(call!.headers['apns-push-type'], 'voip');
      assert.equal(call!.headers['apns-priority'], '10');
      const exp = Number(call!.headers['apns-expiration']);
      assert.ok(Math.abs(exp - (Math.floor(Date.now() / 1000) + 30)) <= 2);
      assert.deepEqual(JSON.parse(call!.body.toString()), { aps: {}, sb: payload.toString('base64url') });
      const jwt = String(call!.headers.authorization).replace(/^bearer /, '');
      assert.deepEqual(decodeProtectedHeader(jwt), { alg: 'ES256', kid: 'ABC123DEFG' });
      const { payload: claims } = await jwtVerify(jwt, publicKey, { issuer: 'DEF123GHIJ' });
      assert.ok(Math.abs(claims.iat! - Date.now() / 1000) < 5);
      assert.equal(msg!.headers['apns-topic'], 'com.example.app');
      assert.equal(msg!.headers['apns-push-type'], 'background');
      assert.equal(msg!.headers['apns-priority'], '5');
      assert.deepEqual(JSON.parse(msg!.body.toString()).aps, { 'content-available': 1 });
      assert.equal(msg!.headers.authorization, call!.headers.authorization, 'the provider token is reused');
    });

    it('reports an unregistered token as gone and refuses a malformed one without a request', async () => {
      const n = server.seen.length;
      assert.deepEqual(await apns.send({ provider: 'apns', prid: 'b'.repeat(64), param: null }, { kind: 'message', payload: wakeUp('message'), ttl: 60 }), { ok: false, status: 410, reason: 'Unregistered', gone: true });
      assert.equal((await apns.send({ provider: 'apns', prid: '../../x', param: null }, { kind: 'message', payload: wakeUp('message'), ttl: 60 })).ok, false);
      assert.equal(server.seen.length, n + 1);
    });
  });

  describe('Web Push', () => {
    let server: Awaited<ReturnType<typeof h2Server>>;
    let wp: WebPushProvider;
    const ua = createECDH('prime256v1');
    ua.generateKeys();
    const authSecret = randomBytes(16);
    before(async () => {
      server = await h2Server((s) => (s.headers[':path'] === '/push/gone' ? { status: 410 } : { status: 201, headers: { location: `/message/${randomBytes(4).toString('hex')}` } }));
      wp = new WebPushProvider({ vapid: vapidKeys(randomBytes(32)), subject: 'mailto:ops@example.test', allowedHosts: ['127.0.0.1'] });
    });
    after(async () => {
      wp.close();
      await server.close();
    });

    it('encrypts to the subscription (RFC 8291), decrypted here with its private key; VAPID verifies', async () => {
      const plaintext = Buffer.from(JSON.stringify({ v: 1, type: 'message', note: 'h\u00e9llo' }));
      const r = await wp.send(
        { provider: 'webpush', prid: `${server.url}/push/sub-1`, param: null, p256dh: ua.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') },
        { kind: 'message', payload: plaintext, ttl: 120 },
      );
      assert.equal(r.ok, true);
      const req = server.seen.at(-1)!;
      assert.equal(req.headers[':method'], 'POST');
      assert.equal(req.headers[':path'], '/push/sub-1');
      assert.equal(req.headers['content-encoding'], 'aes128gcm');
      assert.equal(req.headers.ttl, '120');
      assert.equal(req.headers.urgency, 'normal');
      assert.deepEqual(decryptWebPush(req.body, ua, authSecret), plaintext);
      const m = /^vapid t=([^,]+), k=([A-Za-z0-9_-]+)$/.exec(String(req.headers.authorization));
      assert.ok(m, String(req.headers.authorization));
      const k = Buffer.from(m[2]!, 'base64url');
      assert.equal(k.length, 65);
      const key = await importJWK({ kty: 'EC', crv: 'P-256', x: k.subarray(1, 33).toString('base64url'), y: k.subarray(33).toString('base64url') }, 'ES256');
      const { payload: claims, protectedHeader } = await jwtVerify(m[1]!, key, { audience: server.url });
      assert.equal(protectedHeader.alg, 'ES256');
      assert.equal(claims.sub, 'mailto:ops@example.test');
      assert.ok(claims.exp! - Date.now() / 1000 <= 24 * 3600, 'RFC 8292: at most 24 hours');
    });

    it('sends an empty wake-up without subscription keys; gone on 410; refuses hosts not allowed', async () => {
      await wp.send({ provider: 'webpush', prid: `${server.url}/push/sub-2`, param: null }, { kind: 'call', payload: wakeUp('call'), ttl: 30 });
      const req = server.seen.at(-1)!;
      assert.equal(req.body.length, 0);
      assert.equal(req.headers['content-encoding'], undefined);
      assert.equal(req.headers.urgency, 'high');
      assert.deepEqual(await wp.send({ provider: 'webpush', prid: `${server.url}/push/gone`, param: null }, { kind: 'message', payload: wakeUp('message'), ttl: 30 }), { ok: false, status: 410, reason: 'HTTP 410', gone: true });
      const n = server.seen.length;
      assert.equal((await wp.send({ provider: 'webpush', prid: 'https://169.254.169.254/latest', param: null }, { kind: 'message', payload: wakeUp('message'), ttl: 30 })).ok, false);
      assert.equal((await wp.send({ provider: 'webpush', prid: `http://localhost:${new URL(server.url).port}/x`, param: null }, { kind: 'message', payload: wakeUp('message'), ttl: 30 })).ok, false);
      assert.equal(server.seen.length, n, 'no request to a host not allowed');
    });
  });

  describe('payload', () => {
    it('is a content-free wake-up by default', () => {
      assert.deepEqual(JSON.parse(wakeUp('message').toString()), { v: 1, type: 'message' });
    });

    it('seals the details to the session key with the kid in clear, and drops a body that would not fit', () => {
      const key = randomBytes(32);
      const small = encryptedPayload({ type: 'message', id: 'm1', sender: 'sip:bob@example.test', contentType: 'text/plain', body: Buffer.from('hi').toString('base64') }, 'kid-1', key);
      assert.equal(JSON.parse(small.toString()).kid, 'kid-1');
      assert.ok(!small.toString().includes('bob'), 'no content in clear');
      assert.deepEqual(openPayload(small, key), { type: 'message', id: 'm1', sender: 'sip:bob@example.test', contentType: 'text/plain', body: 'aGk=', kid: 'kid-1' });
      assert.throws(() => openPayload(small, randomBytes(32)));
      const big = encryptedPayload({ type: 'message', id: 'm2', sender: 'sip:bob@example.test', body: randomBytes(5000).toString('base64') }, 'kid-1', key);
      assert.ok(big.length <= MAX_PUSH_PAYLOAD);
      assert.deepEqual(openPayload(big, key), { type: 'message', id: 'm2', sender: 'sip:bob@example.test', kid: 'kid-1' });
    });
  });
});
