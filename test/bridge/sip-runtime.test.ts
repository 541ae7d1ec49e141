// SIP through the whole bridge: an app logs in with its password (the vault opens) and links a SIP account at
// another provider (a second Switchboard serving remote.test) over HTTP; the in-process connector (the default
// --bridge-connectors now serves sip) registers it there; a MESSAGE from bob, a raw SIP UA at the provider, reaches the
// app's WebSocket with the linked account and bob's address; the app's POST /v1/messages reaches bob, and a delivery
// frame says sent; DELETE unregisters the account at the provider. A wrong password ends as bad_credentials.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';
import { isRequest, reply, waitFor } from '../helpers/sip-ua.ts';
import { http, openStream, queueEmpty, sessionOf, type Json, type Session, type Stream } from '../messaging/helpers.ts';
import { linkRefused } from './helpers.ts';

const D = 'example.test';
const R = 'remote.test';
const frameText = (f: Json) => Buffer.from(f.body as string, 'base64').toString();

describe('SIP through the bridge runtime', { timeout: 120_000 }, () => {
  let remote: TestServer;
  let server: TestServer;
  let bob: SipTestClient;
  let app: Session;
  let stream: Stream;

  before(async () => {
    remote = await startTestServer({ users: { [`alice@${R}`]: 'remote-pw', [`bob@${R}`]: 'bob-pw' }, flags: { realm: [R] } });
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-password' }, flags: { 'bridge-allow-servers': ['127.0.0.1'] } });
    bob = await SipTestClient.open('UDP', remote.sipPort);
    assert.equal((await register(bob, { user: 'bob', password: 'bob-pw', domain: R, expires: 600 })).status, 200);
    const s = await http(server.httpUrl, 'POST', '/v1/sessions', { body: { username: `alice@${D}`, password: 'alice-password' } });
    assert.equal(s.status, 200, JSON.stringify(s.json));
    app = sessionOf(s.json);
    stream = await openStream(server.httpUrl, app);
    await stream.waitFor(queueEmpty, 'the empty backlog');
  });
  after(async () => {
    await stream?.close();
    bob?.close();
    await server?.close();
    await remote?.close();
  });

  it('links over HTTP, registers at the provider, and messages flow both ways', async () => {
    const linked = await http(server.httpUrl, 'POST', '/v1/linked-accounts', {
      auth: app.auth,
      body: { type: 'sip', server: `127.0.0.1:${remote.sipPort}`, username: 'alice', password: 'remote-pw', options: { domain: R } },
    });
    assert.equal(linked.status, 201, JSON.stringify(linked.json));
    const id = linked.json.id as string;
    assert.equal(JSON.stringify(linked.json).includes('remote-pw'), false, 'no password in the reply');
    await stream.waitFor((f) => f.some((x) => x.type === 'link-state' && x.linkedAccount === id && x.state === 'connected'), 'link-state connected');
    assert.equal((await remote.location.lookup(`alice@${R}`)).length, 1, 'registered at the provider');

    // Bob's MESSAGE to alice at the provider reaches the app's socket, naming the linked account and bob.
    const spec = { method: 'MESSAGE', uri: `sip:alice@${R}`, from: `<sip:bob@${R}>`, to: `<sip:alice@${R}>`, callId: 'rt-1@test', headers: [['Content-Type', 'text/plain']] as Array<[string, string]>, body: Buffer.from('hello over SIP ✓').toString('latin1') };
    const challenge = await bob.request(buildRequest(bob, { ...spec, cseq: 1 }));
    assert.equal(challenge.status, 407);
    const auth = digestAuthorization(parseChallenge(challenge.header('Proxy-Authenticate')!), { username: 'bob', password: 'bob-pw', method: 'MESSAGE', uri: spec.uri });
    const delivered = await bob.request(buildRequest(bob, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] }), 10_000);
    assert.equal(delivered.status, 200, 'the link took it');
    await stream.waitFor((f) => f.some((x) => x.type === 'message' && frameText(x) === 'hello over SIP ✓'), 'the MESSAGE on the stream');
    const m = stream.frames.find((x) => x.type === 'message' && frameText(x) === 'hello over SIP ✓')!;
    assert.equal(m.linkedAccount, id);
    assert.equal(m.remote, `bob@${R}`);
    stream.ack(m.id as string);

    // The app answers through the linked account: bob gets it from alice at the provider.
    const sent = await http(server.httpUrl, 'POST', '/v1/messages', { auth: app.auth, body: { linkedAccount: id, to: m.remote, body: Buffer.from('hi bob, from the app').toString('base64') } });
    assert.equal(sent.status, 202, JSON.stringify(sent.json));
    const got = await waitFor(bob, isRequest('MESSAGE'), 10_000);
    bob.send(reply(got, 200, { toTag: 'bob' }));
    assert.ok(got.raw.endsWith('\r\n\r\nhi bob, from the app'), got.raw);
    assert.match(got.header('From')!, /^<sip:alice@remote\.test>/);
    await stream.waitFor((f) => f.some((x) => x.type === 'delivery' && x.id === sent.json.id && x.status === 'sent'), 'the delivery frame');

    // A bad address fails the delivery, not the link.
    const bad = await http(server.httpUrl, 'POST', '/v1/messages', { auth: app.auth, body: { linkedAccount: id, to: 'bob', body: Buffer.from('x').toString('base64') } });
    assert.equal(bad.status, 202);
    await stream.waitFor((f) => f.some((x) => x.type === 'delivery' && x.id === bad.json.id && x.status === 'failed'), 'a failed delivery');

    // DELETE: unregistered at the provider.
    assert.equal((await http(server.httpUrl, 'DELETE', `/v1/linked-accounts/${id}`, { auth: app.auth })).status, 204);
    for (let i = 0; (await remote.location.lookup(`alice@${R}`)).length > 0 && i < 50; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await remote.location.lookup(`alice@${R}`), [], 'the binding is gone after DELETE');
  });

  it('a wrong password → bad_credentials over HTTP', async () => {
    const rec = await linkRefused(server.httpUrl, app, stream, { type: 'sip', server: `127.0.0.1:${remote.sipPort}`, username: 'alice', password: 'not-it', options: { domain: R } });
    assert.equal(rec.state, 'bad_credentials');
    assert.match(String(rec.reason), /401/);
  });
});
