// GRUU (RFC 5627) over real UDP sockets with the raw client: a REGISTER with `Supported: gruu` and `+sip.instance`
// gets pub-gruu and temp-gruu on its Contact in the 200 OK (one without Supported: gruu gets neither); an INVITE to
// one device's pub-gruu rings that device only, of two; a MESSAGE to the other's temp-gruu reaches only it (200);
// an in-dialog NOTIFY to a pub-gruu goes to that device; a forged temp-gruu gets 404; a pub-gruu of an instance that is not registered gets 480.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { parseRequest, responseTo } from '../helpers/presence.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';

const D = 'example.test';

describe('GRUU (RFC 5627)', () => {
  let server: TestServer;
  let bob: SipTestClient;
  let a1: SipTestClient;
  let a2: SipTestClient;
  const devices = [`<urn:uuid:${randomUUID()}>`, `<urn:uuid:${randomUUID()}>`];
  const gruus: Array<{ pub: string; temp: string }> = [];

  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
    bob = await SipTestClient.open('UDP', server.sipPort);
    a1 = await SipTestClient.open('UDP', server.sipPort);
    a2 = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    for (const c of [a1, a2, bob]) c.close();
    await server.close();
  });

  /** Bob's request to `uri`, answering the 407 (an INVITE's 407 and final are ACKed as RFC 3261 §17.1.1.3 says). */
  const send = async (method: 'INVITE' | 'MESSAGE', uri: string, body: string): Promise<SipResponseView> => {
    const callId = `g-${Math.random()}@test`;
    const spec = { method, uri, from: `<sip:bob@${D}>`, to: `<${uri}>`, callId, headers: [['Content-Type', method === 'INVITE' ? 'application/sdp' : 'text/plain']] as Array<[string, string]>, body };
    const first = buildRequest(bob, { ...spec, cseq: 1 });
    const challenged = await bob.request(first);
    assert.equal(challenged.status, 407);
    if (method === 'INVITE') bob.send(ackFor(first, challenged));
    const auth = digestAuthorization(parseChallenge(challenged.header('Proxy-Authenticate')!), { username: 'bob', password: 'bob-pw', method, uri });
    const second = buildRequest(bob, { ...spec, cseq: 2, headers: [...spec.headers, ['Proxy-Authorization', auth]] });
    const res = await bob.request(second, 10_000);
    if (method === 'INVITE') bob.send(ackFor(second, res));
    return res;
  };

  it('REGISTER with Supported: gruu and +sip.instance gets pub-gruu and temp-gruu', async () => {
    for (const [i, c] of [a1, a2].entries()) {
      const res = await register(c, { user: 'alice', password: 'alice-pw', domain: D, expires: 600, headers: [['Supported', 'path, gruu']], contact: `<sip:alice@127.0.0.1:${c.localPort}>;+sip.instance="${devices[i]}"` });
      assert.equal(res.status, 200);
      const mine = res.all('Contact').flatMap((v) => v.split(/,(?=\s*<)/)).find((v) => v.includes(`:${c.localPort}>`))!;
      const pub = /;pub-gruu="([^"]+)"/.exec(mine)?.[1];
      const temp = /;temp-gruu="([^"]+)"/.exec(mine)?.[1];
      assert.equal(pub, `sip:alice@${D};gr=${devices[i].slice(1, -1)}`);
      assert.match(temp ?? '', /^sip:tgruu\.[A-Za-z0-9_-]{40,}@example\.test;gr$/);
      gruus[i] = { pub: pub!, temp: temp! };
    }
    // A client that did not say it supports GRUU gets none (and the registrar does none of the work).
    const plain = await register(a1, { user: 'alice', password: 'alice-pw', domain: D, expires: 600, contact: `<sip:alice@127.0.0.1:${a1.localPort}>;+sip.instance="${devices[0]}"` });
    assert.equal(plain.status, 200);
    assert.doesNotMatch(plain.raw, /pub-gruu|temp-gruu/);
  });

  it('an INVITE to a pub-gruu rings that device only', async () => {
    const call = send('INVITE', gruus[0].pub, 'v=0\r\n');
    const invite = parseRequest(await a1.next(5000));
    assert.equal(invite.method, 'INVITE');
    assert.equal(invite.uri, `sip:alice@127.0.0.1:${a1.localPort}`);
    a1.send(responseTo(invite, 486, 'Busy Here').replace(/^(To: [^\r]*)/m, '$1;tag=a1busy'));
    assert.equal((await call).status, 486);
    let ack = parseRequest(await a1.next(5000));
    while (ack.method === 'INVITE') ack = parseRequest(await a1.next(5000)); // a UDP retransmission that crossed our 486
    assert.equal(ack.method, 'ACK');
    assert.ok(await a2.silent(500), 'the other device of the AOR is not rung');
  });

  it('a MESSAGE to a temp-gruu reaches that device only (200)', async () => {
    const sent = send('MESSAGE', gruus[1].temp, 'to the second phone');
    const m = parseRequest(await a2.next(5000));
    assert.equal(m.method, 'MESSAGE');
    assert.equal(m.body, 'to the second phone');
    a2.send(responseTo(m, 200, 'OK'));
    assert.equal((await sent).status, 200);
    assert.ok(await a1.silent(500), 'the other device gets nothing');
  });

  it('an in-dialog NOTIFY to a pub-gruu (the device\'s remote target, no Route) reaches that device', async () => {
    const notify = buildRequest(bob, { method: 'NOTIFY', uri: gruus[1].pub, from: `<sip:bob@${D}>`, to: `<sip:alice@${D}>;tag=dlg1`, headers: [['Event', 'presence'], ['Subscription-State', 'active;expires=60']] });
    const sent = bob.request(notify, 5000);
    const n = parseRequest(await a2.next(5000));
    assert.equal(n.method, 'NOTIFY');
    assert.equal(n.uri, `sip:alice@127.0.0.1:${a2.localPort}`);
    a2.send(responseTo(n, 200, 'OK'));
    assert.equal((await sent).status, 200);
    assert.ok(await a1.silent(300));
  });

  it('a forged temp-gruu gets 404; a pub-gruu of an instance not registered gets 480', async () => {
    const token = gruus[1].temp.slice('sip:tgruu.'.length, gruus[1].temp.indexOf('@'));
    const forged = `sip:tgruu.${token.slice(0, 10)}${token[10] === 'x' ? 'y' : 'x'}${token.slice(11)}@${D};gr`;
    assert.equal((await send('MESSAGE', forged, 'forged')).status, 404);
    assert.equal((await send('INVITE', forged, 'v=0\r\n')).status, 404);
    const absent = `sip:alice@${D};gr=urn:uuid:${randomUUID()}`;
    assert.equal((await send('MESSAGE', absent, 'nobody')).status, 480);
    assert.equal((await send('INVITE', absent, 'v=0\r\n')).status, 480);
    assert.ok(await a1.silent(300));
    assert.ok(await a2.silent(300));
  });
});

/** The ACK for a non-2xx final to `invite` (same branch, From and Call-ID; the response's To). */
function ackFor(invite: string, res: SipResponseView): string {
  const h = (n: string) => new RegExp(`^${n}: (.*)$`, 'mi').exec(invite)![1];
  const uri = invite.slice(invite.indexOf(' ') + 1, invite.indexOf(' SIP/2.0'));
  const seq = h('CSeq').split(' ')[0];
  return [`ACK ${uri} SIP/2.0`, `Via: ${h('Via')}`, 'Max-Forwards: 70', `From: ${h('From')}`, `To: ${res.header('To')}`, `Call-ID: ${h('Call-ID')}`, `CSeq: ${seq} ACK`, 'Content-Length: 0', '', ''].join('\r\n');
}
