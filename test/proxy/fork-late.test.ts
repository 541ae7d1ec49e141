// Fork late (RFC 8599 §5.3, Flexisip's "fork late"; proxy/fork-late.ts): a device registers over TCP with pn-*
// parameters for FCM and drops its connection; an INVITE (or a MESSAGE) to its user pushes it through a local
// HTTP/2 stand-in of FCM HTTP v1 (the request checked field by field: a content-free wake-up), waits, and when the
// device registers again from a new connection, rings it (delivers it) on the same transaction: the caller gets the
// device's 200. Nobody coming back: 480 for the INVITE, 202 (stored) for the MESSAGE. The caller's CANCEL ends the
// wait (487, and a device registering afterwards gets nothing).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { startTestServer, tempDir, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, reply, waitFor } from '../helpers/sip-ua.ts';
import { h2Server } from '../messaging/push-servers.ts';

const D = 'example.test';

describe('fork late: a request to a push-only device waits for its re-REGISTER', () => {
  let server: TestServer;
  let fcm: Awaited<ReturnType<typeof h2Server>>;
  const users: Record<string, string> = { [`bob@${D}`]: 'bob-pw' };
  for (let i = 0; i < 6; i++) users[`alice${i}@${D}`] = 'alice-pw';
  const open: SipTestClient[] = [];
  const client = async (t: 'UDP' | 'TCP') => {
    const c = await SipTestClient.open(t, server.sipPort);
    open.push(c);
    return c;
  };

  before(async () => {
    fcm = await h2Server((s) => (s.headers[':path'] === '/token' ? { status: 200, body: JSON.stringify({ access_token: 'ya29.local', expires_in: 3600 }) } : { status: 200, body: JSON.stringify({ name: 'projects/p/messages/1' }) }));
    const dir = tempDir('sb-forklate-');
    const account = path.join(dir, 'service-account.json');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(account, JSON.stringify({ type: 'service_account', project_id: 'p', client_email: 'sb@p.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), token_uri: `${fcm.url}/token` }));
    server = await startTestServer({ users, flags: { 'fcm-service-account': account, 'fcm-url': fcm.url, 'push-fork-late-timeout': '4', 'push-fork-late-message-timeout': '3' } });
  });
  after(async () => {
    for (const c of open) c.close();
    await server.close();
    await fcm.close();
  });

  const pushes = () => fcm.seen.filter((s) => s.headers[':path'] === '/v1/projects/p/messages:send');
  const until = async (what: string, check: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /**
   * A device of `user` registered over TCP with FCM push parameters (token `prid`); with `instance`, an RFC 5626
   * outbound flow (+sip.instance and reg-id: a binding that lives with its connection, unless a push can wake it).
   */
  const pushDevice = async (user: string, prid: string, instance?: string) => {
    const c = await client('TCP');
    const outbound = instance ? `;+sip.instance="<urn:uuid:${instance}>";reg-id=1` : '';
    const contact = `<sip:${user}@127.0.0.1:${c.localPort};transport=tcp;pn-provider=fcm;pn-prid=${prid};pn-param=p;ob>${outbound}`;
    const headers: Array<[string, string]> = instance ? [['Supported', 'outbound, path']] : [];
    const r = await register(c, { user, password: 'alice-pw', domain: D, contact, expires: 600, headers });
    assert.equal(r.status, 200);
    return c;
  };
  /** The device drops its connection, and the server has seen it close. */
  const drop = async (c: SipTestClient) => {
    c.close();
    await new Promise((r) => setTimeout(r, 200));
  };
  const call = (c: SipTestClient, callee: string) => new Call(c, { from: `<sip:bob@${D}>`, to: `<sip:${callee}@${D}>`, uri: `sip:${callee}@${D}`, user: 'bob', password: 'bob-pw' });
  /** The FCM push for `prid`, checked field by field against FCM HTTP v1's messages:send. */
  const checkPush = (prid: string, kind: 'call' | 'message') => {
    const p = pushes().find((s) => (JSON.parse(s.body.toString()) as { message: { token: string } }).message.token === prid);
    assert.ok(p, `a push to ${prid}`);
    assert.equal(p.headers[':method'], 'POST');
    assert.equal(p.headers.authorization, 'Bearer ya29.local');
    const body = JSON.parse(p.body.toString()) as { message: { token: string; data: { type: string; sb: string }; android: { priority: string; ttl: string } } };
    assert.deepEqual(Object.keys(body.message).sort(), ['android', 'data', 'token']);
    assert.equal(body.message.data.type, kind);
    assert.deepEqual(JSON.parse(Buffer.from(body.message.data.sb, 'base64url').toString()), { v: 1, type: kind }, 'a content-free wake-up');
    assert.equal(body.message.android.priority, kind === 'call' ? 'high' : 'normal');
  };

  it('an INVITE to a push-only device rings it after its re-REGISTER', async () => {
    await drop(await pushDevice('alice0', 'tok-a0'));
    const c = await client('UDP');
    const k = call(c, 'alice0');
    await k.start();
    await until('the push', () => pushes().length === 1);
    checkPush('tok-a0', 'call');
    const back = await pushDevice('alice0', 'tok-a0');
    const inv = await waitFor(back, isRequest('INVITE'), 8000);
    assert.match(inv.startLine, new RegExp(`^INVITE sip:alice0@127\\.0\\.0\\.1:${back.localPort};`), 'to the new contact');
    back.send(reply(inv, 200, { toTag: 'late', headers: [['Contact', `<sip:alice0@127.0.0.1:${back.localPort};transport=tcp>`]] }));
    const ok = await k.response((s) => s >= 200, 8000);
    assert.equal(ok.status, 200);
    assert.match(ok.header('To')!, /tag=late/);
  });

  it('an RFC 5626 outbound device with pn-* outlives its connection: pushed, rung on its new flow, and the old flow is no branch', async () => {
    const instance = '6f1a2b3c-0000-4000-8000-00000000a005';
    await drop(await pushDevice('alice5', 'tok-a5', instance));
    const before = pushes().length;
    const c = await client('UDP');
    const k = call(c, 'alice5');
    await k.start();
    await until('the push', () => pushes().length === before + 1);
    checkPush('tok-a5', 'call');
    const back = await pushDevice('alice5', 'tok-a5', instance);
    const inv = await waitFor(back, isRequest('INVITE'), 8000);
    assert.match(inv.startLine, new RegExp(`^INVITE sip:alice5@127\\.0\\.0\\.1:${back.localPort};`), 'to the new flow');
    back.send(reply(inv, 200, { toTag: 'late5', headers: [['Contact', `<sip:alice5@127.0.0.1:${back.localPort};transport=tcp>`]] }));
    const ok = await k.response((s) => s >= 200, 8000);
    assert.equal(ok.status, 200);
    assert.match(ok.header('To')!, /tag=late5/);
    c.send(k.ackFor(ok));
    // Registered again on a live flow: the next call rings it at once, no push.
    const k2 = call(c, 'alice5');
    await k2.start();
    const inv2 = await waitFor(back, (m) => isRequest('INVITE')(m) && m.header('Call-ID') !== inv.header('Call-ID'), 8000);
    back.send(reply(inv2, 486));
    assert.equal((await k2.response((s) => s >= 200, 8000)).status, 486);
    assert.equal(pushes().length, before + 1, 'no second push');
  });

  it('a MESSAGE to a push-only device is delivered after its re-REGISTER (200, nothing stored)', async () => {
    await drop(await pushDevice('alice1', 'tok-a1'));
    const before = pushes().length;
    const c = await client('UDP');
    const spec = { method: 'MESSAGE', uri: `sip:alice1@${D}`, from: `<sip:bob@${D}>`, to: `<sip:alice1@${D}>`, callId: `fl-${Math.random()}@test`, headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: 'wake up' };
    const first = await c.request(buildRequest(c, { ...spec, cseq: 1 }));
    assert.equal(first.status, 407);
    const auth = digestAuthorization(parseChallenge(first.header('Proxy-Authenticate')!), { username: 'bob', password: 'bob-pw', method: 'MESSAGE', uri: spec.uri });
    const answer = c.request(buildRequest(c, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }), 15_000);
    await until('the push', () => pushes().length === before + 1);
    checkPush('tok-a1', 'message');
    const back = await pushDevice('alice1', 'tok-a1');
    const msg = await waitFor(back, isRequest('MESSAGE'), 8000);
    assert.equal(msg.raw.split('\r\n\r\n')[1], 'wake up');
    back.send(reply(msg, 200));
    assert.equal((await answer).status, 200);
  });

  it('nobody comes back: the INVITE gets 480, the MESSAGE is stored (202)', async () => {
    await drop(await pushDevice('alice2', 'tok-a2'));
    const c = await client('UDP');
    const k = call(c, 'alice2');
    const t0 = Date.now();
    await k.start();
    const r = await k.response((s) => s >= 200, 10_000);
    assert.equal(r.status, 480);
    assert.ok(Date.now() - t0 >= 3500, 'after the fork-late wait');
    c.send(k.ackFor(r));
    checkPush('tok-a2', 'call');

    const spec = { method: 'MESSAGE', uri: `sip:alice2@${D}`, from: `<sip:bob@${D}>`, to: `<sip:alice2@${D}>`, callId: `fl-${Math.random()}@test`, headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: 'later' };
    const first = await c.request(buildRequest(c, { ...spec, cseq: 1 }));
    const auth = digestAuthorization(parseChallenge(first.header('Proxy-Authenticate')!), { username: 'bob', password: 'bob-pw', method: 'MESSAGE', uri: spec.uri });
    assert.equal((await c.request(buildRequest(c, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }), 15_000)).status, 202);
  });

  it('the caller\u2019s CANCEL ends the wait: 487, and the device that registers afterwards is not rung', async () => {
    await drop(await pushDevice('alice3', 'tok-a3'));
    const before = pushes().length;
    const c = await client('UDP');
    const k = call(c, 'alice3');
    await k.start();
    await until('the push', () => pushes().length === before + 1);
    c.send(k.cancel());
    const r = await k.response((s) => s >= 200, 5000);
    assert.equal(r.status, 487);
    const back = await pushDevice('alice3', 'tok-a3');
    assert.ok(await back.silent(1000), 'no INVITE after the CANCEL');
  });
});
