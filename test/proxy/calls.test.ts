// Calls through the proxy over real sockets (RFC 3261 §16): raw SIP devices registered with Digest, a caller that
// authenticates with 407. Forking (parallel within a q, serial across), first answer wins and the others get
// CANCEL with Reason, best response, caller CANCEL, 404/480/483, Record-Route and loose routing of ACK and BYE,
// a UDP caller to a TCP callee (double Record-Route).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { collectEvents } from '../helpers/events.ts';
import { pidf, PresencePeer } from '../helpers/presence.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, isResponse, reply, waitFor, type Msg } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw', [`dave@${D}`]: 'dave-pw' };

describe('calls through the proxy', () => {
  let server: TestServer;
  const open: SipTestClient[] = [];
  const client = async (t: 'UDP' | 'TCP' = 'UDP') => {
    const c = await SipTestClient.open(t, server.sipPort);
    open.push(c);
    return c;
  };
  /** A device of `user` registered with Digest (q as given). */
  const device = async (user: string, q?: number, t: 'UDP' | 'TCP' = 'UDP') => {
    const c = await client(t);
    const contact = `<sip:${user}@127.0.0.1:${c.localPort};transport=${t.toLowerCase()}>${q === undefined ? '' : `;q=${q}`}`;
    const r = await register(c, { user, password: users[`${user}@${D}`], domain: D, contact, expires: 300 });
    assert.equal(r.status, 200);
    return c;
  };
  const unregister = async (c: SipTestClient, user: string) => {
    const r = await register(c, { user, password: users[`${user}@${D}`], domain: D, contact: '*', expires: 0 });
    assert.equal(r.status, 200);
  };
  const call = (c: SipTestClient, callee: string, caller = 'alice') =>
    new Call(c, { from: `<sip:${caller}@${D}>`, to: `<sip:${callee}@${D}>`, uri: `sip:${callee}@${D}`, user: caller, password: users[`${caller}@${D}`] });

  before(async () => {
    server = await startTestServer({ users, flags: { 'call-serial-timeout': '10' } });
  });
  after(async () => {
    for (const c of open) c.close();
    await server.close();
  });

  it('challenges a caller of ours with 407 Proxy-Authenticate, and the ACK for it is absorbed', async () => {
    const c = await client();
    const k = call(c, 'bob');
    c.send(k.invite());
    const r = await waitFor(c, isResponse('INVITE', 407));
    assert.match(r.header('Proxy-Authenticate')!, /^Digest realm="example\.test"/);
    c.send(k.ackFor(r));
    assert.ok(await c.silent(700), 'no retransmission of the 407 (sent statelessly) and nothing for the ACK');
  });

  it('rings both devices of a user; the first to answer gets the call, the other gets CANCEL; ACK and BYE follow the Record-Route', async () => {
    const d1 = await device('bob');
    const d2 = await device('bob');
    const c = await client();
    const events = await collectEvents(server.bus, 'call.*.example%2Etest.bob');
    const k = call(c, 'bob');
    await k.start();
    const [i1, i2] = await Promise.all([waitFor(d1, isRequest('INVITE')), waitFor(d2, isRequest('INVITE'))]);
    assert.match(i1.header('Record-Route')!, /;lr;/);
    assert.equal(i1.header('Proxy-Authorization'), undefined, 'credentials for the proxy are consumed');
    assert.equal(i1.header('Max-Forwards'), '69');
    d1.send(reply(i1, 180, { toTag: 'd1' }));
    d2.send(reply(i2, 180, { toTag: 'd2' }));
    assert.equal((await k.response((s) => s === 180)).status, 180);
    d1.send(reply(i1, 200, { toTag: 'd1', headers: [['Contact', `<sip:bob@127.0.0.1:${d1.localPort}>`]] }));
    const cancel = await waitFor(d2, isRequest('CANCEL'));
    assert.match(cancel.header('Reason')!, /^SIP;cause=200;text="Call completed elsewhere"/);
    d2.send(reply(cancel, 200));
    d2.send(reply(i2, 487, { toTag: 'd2' }));
    const ack487 = await waitFor(d2, isRequest('ACK'));
    assert.match(ack487.header('To')!, /tag=d2/);
    const ok = await k.response((s) => s === 200);
    assert.equal(ok.all('Via').length, 1, 'our Via removed');
    k.established(ok);
    assert.ok(k.routeSet.length >= 1);
    c.send(k.inDialog('ACK'));
    const ack = await waitFor(d1, isRequest('ACK'));
    assert.equal(ack.header('Route'), undefined, 'our Route popped');
    c.send(k.inDialog('BYE'));
    const bye = await waitFor(d1, isRequest('BYE'));
    d1.send(reply(bye, 200));
    assert.equal((await waitFor(c, isResponse('BYE'))).status, 200);
    await unregister(d1, 'bob');
    // Accounting: the call's events on the bus and its metrics.
    await events.waitFor((e) => e.some((x) => x.topic.startsWith('call.ended.')), 'call.ended');
    events.stop();
    const mine = events.events.filter((e) => e.payload.call_id === k.callId);
    assert.deepEqual(mine.map((e) => e.payload.event), ['started', 'answered', 'ended']);
    assert.equal(mine[0].payload.branches, 2);
    assert.equal(mine[0].payload.caller, `alice@${D}`);
    assert.equal(typeof mine[1].payload.setup_seconds, 'number');
    assert.equal(mine[2].payload.by, `alice@${D}`);
    assert.equal(typeof mine[2].payload.duration_seconds, 'number');
    const metrics = await server.metrics.registry.metrics();
    assert.match(metrics, /switchboard_calls_total\{outcome="answered"\} [1-9]/);
    assert.match(metrics, /switchboard_call_setup_seconds_count [1-9]/);
  });

  it('rings q=1.0 first and q=0.5 after it declines; every device busy gives 486', async () => {
    const hi = await device('carol', 1);
    const lo = await device('carol', 0.5);
    const c = await client();
    const k = call(c, 'carol');
    await k.start();
    const first = await waitFor(hi, isRequest('INVITE'));
    assert.ok(await lo.silent(400), 'the q=0.5 device does not ring yet');
    hi.send(reply(first, 486, { toTag: 'h' }));
    await waitFor(hi, isRequest('ACK'));
    const second = await waitFor(lo, isRequest('INVITE'));
    lo.send(reply(second, 486, { toTag: 'l' }));
    const busy = await k.response((s) => s >= 200);
    assert.equal(busy.status, 486);
    c.send(k.ackFor(busy));
  });

  it('cancels every branch when the caller cancels, and answers 487', async () => {
    const d1 = await device('dave');
    const d2 = await device('dave');
    const c = await client();
    const k = call(c, 'dave');
    await k.start();
    const [i1, i2] = await Promise.all([waitFor(d1, isRequest('INVITE')), waitFor(d2, isRequest('INVITE'))]);
    d1.send(reply(i1, 180, { toTag: 'a' }));
    d2.send(reply(i2, 180, { toTag: 'b' }));
    await k.response((s) => s === 180);
    c.send(k.cancel());
    const [c1, c2] = await Promise.all([waitFor(d1, isRequest('CANCEL')), waitFor(d2, isRequest('CANCEL'))]);
    for (const [d, cx, ix, tag] of [[d1, c1, i1, 'a'], [d2, c2, i2, 'b']] as Array<[SipTestClient, Msg, Msg, string]>) {
      d.send(reply(cx, 200));
      d.send(reply(ix, 487, { toTag: tag }));
    }
    const final = await k.response((s) => s >= 200);
    assert.equal(final.status, 487);
    c.send(k.ackFor(final));
  });

  it('answers an unknown user 404, a user without devices 480, Max-Forwards 0 with 483', async () => {
    const c = await client();
    const nobody = call(c, 'newcomer');
    await nobody.start();
    const nr = await nobody.response((s) => s >= 200);
    assert.equal(nr.status, 404, nr.raw);
    // The 404 answer is cached (no store read per INVITE), but creating the account clears it at once.
    await server.accountService.create(`newcomer@${D}`, 'newcomer-pw');
    const newcomer = call(c, 'newcomer');
    await newcomer.start();
    assert.equal((await newcomer.response((s) => s >= 200)).status, 480, 'known now, and without devices');
    const absent = call(c, 'alice', 'bob'); // alice has no device registered
    await absent.start();
    assert.equal((await absent.response((s) => s >= 200)).status, 480);
    const hops = call(c, 'bob');
    c.send(hops.invite().replace('Max-Forwards: 70', 'Max-Forwards: 0'));
    assert.equal((await hops.response((s) => s >= 200)).status, 483);
  });

  it('connects a UDP caller to a TCP callee over its connection, with a double Record-Route', async () => {
    const tcp = await device('bob', undefined, 'TCP');
    const c = await client('UDP');
    const k = call(c, 'bob');
    await k.start();
    const inv = await waitFor(tcp, isRequest('INVITE'));
    const rr = inv.all('Record-Route').flatMap((v) => v.split(/,(?![^<]*>)/));
    assert.equal(rr.length, 2, 'two Record-Route entries when the transports differ (RFC 5658)');
    assert.match(rr[0], /transport=tcp/);
    assert.match(rr[1], /transport=udp/);
    tcp.send(reply(inv, 200, { toTag: 't', headers: [['Contact', '<sip:bob@unreachable.invalid;transport=tcp>']] }));
    const ok = await k.response((s) => s === 200);
    k.established(ok);
    c.send(k.inDialog('ACK'));
    await waitFor(tcp, isRequest('ACK'));
    // The callee hangs up: its BYE follows the route set in order, to the caller's flow.
    const bye = [
      `BYE sip:alice@127.0.0.1:${c.localPort} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${tcp.localPort};branch=z9hG4bKbye${Date.now()}`,
      'Max-Forwards: 70',
      ...rr.map((r) => `Route: ${r.trim()}`),
      `From: ${ok.header('To')}`,
      `To: ${inv.header('From')}`,
      `Call-ID: ${k.callId}`,
      'CSeq: 1 BYE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    tcp.send(bye);
    const got = await waitFor(c, isRequest('BYE'));
    c.send(reply(got, 200));
    assert.equal((await waitFor(tcp, isResponse('BYE'))).status, 200);
    await unregister(tcp, 'bob');
  });
});

describe('calls out of our domains and to users without devices', () => {
  let server: TestServer;
  let trunk: SipTestClient;
  let voicemail: SipTestClient;
  let caller: SipTestClient;
  before(async () => {
    // Sockets standing for the trunk and the voicemail server; the proxy learns their ports from its flags, so they
    // are opened first (towards a placeholder port) and answer the proxy with sendTo.
    trunk = await SipTestClient.open('UDP', 9);
    voicemail = await SipTestClient.open('UDP', 9);
    server = await startTestServer({ users, flags: { 'outbound-proxy': `sip:127.0.0.1:${trunk.localPort}`, 'call-fallback-uri': `sip:vm@127.0.0.1:${voicemail.localPort}` } });
    caller = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    for (const c of [trunk, voicemail, caller]) c.close();
    await server.close();
  });

  it('sends a call of our user to another domain to --outbound-proxy, Request-URI unchanged', async () => {
    const k = new Call(caller, { from: `<sip:alice@${D}>`, to: '<sip:carol@carrier.example.net>', uri: 'sip:carol@carrier.example.net', user: 'alice', password: users[`alice@${D}`] });
    await k.start();
    const inv = await waitFor(trunk, isRequest('INVITE'));
    assert.match(inv.startLine, /^INVITE sip:carol@carrier\.example\.net SIP\/2\.0/);
    trunk.sendTo(reply(inv, 486, { toTag: 'tr' }), server.sipPort);
    assert.equal((await k.response((s) => s >= 200)).status, 486);
  });

  it('sends a call to a user without a device to --call-fallback-uri', async () => {
    const k = call(caller, 'bob');
    await k.start();
    const inv = await waitFor(voicemail, isRequest('INVITE'));
    assert.match(inv.startLine, /^INVITE sip:vm@127\.0\.0\.1:\d+ SIP\/2\.0/);
    voicemail.sendTo(reply(inv, 200, { toTag: 'vm', headers: [['Contact', `<sip:vm@127.0.0.1:${voicemail.localPort}>`]] }), server.sipPort);
    const ok = await k.response((s) => s === 200);
    k.established(ok);
    caller.send(k.inDialog('ACK'));
    await waitFor(voicemail, isRequest('ACK'));
  });

  const call = (c: SipTestClient, callee: string) =>
    new Call(c, { from: `<sip:alice@${D}>`, to: `<sip:${callee}@${D}>`, uri: `sip:${callee}@${D}`, user: 'alice', password: users[`alice@${D}`] });
});

describe('presence-aware routing (--call-presence-policy busy-to-fallback)', () => {
  let server: TestServer;
  let voicemail: SipTestClient;
  const clients: SipTestClient[] = [];
  before(async () => {
    voicemail = await SipTestClient.open('UDP', 9);
    server = await startTestServer({ users, flags: { 'call-presence-policy': 'busy-to-fallback', 'call-fallback-uri': `sip:vm@127.0.0.1:${voicemail.localPort}` } });
  });
  after(async () => {
    for (const c of [voicemail, ...clients]) c.close();
    await server.close();
  });

  it('rings a registered callee, then sends the call to voicemail once it published busy, and to its phone again when it is available', async () => {
    const phone = await SipTestClient.open('UDP', server.sipPort);
    const caller = await SipTestClient.open('UDP', server.sipPort);
    clients.push(phone, caller);
    assert.equal((await register(phone, { user: 'bob', password: users[`bob@${D}`], domain: D, expires: 300 })).status, 200);
    const peer = await PresencePeer.open('UDP', server.sipPort, { user: 'bob', password: users[`bob@${D}`], domain: D });
    try {
      const dial = async () => {
        const k = new Call(caller, { from: `<sip:alice@${D}>`, to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'alice', password: users[`alice@${D}`] });
        await k.start();
        return k;
      };
      // Only registered: presence derived from the registration does not stop a call.
      let k = await dial();
      let inv = await waitFor(phone, isRequest('INVITE'));
      phone.send(reply(inv, 486, { toTag: 'p' }));
      c(await k.response((s) => s >= 200), k);
      await waitFor(phone, isRequest('ACK'));
      // Busy (RPID): voicemail, the phone does not ring.
      // One publication (one SIP-ETag), modified as the phone's state changes (RFC 3903).
      const first = await peer.publish({ body: pidf(`sip:bob@${D}`, 'open', { activities: ['on-the-phone'] }) });
      assert.equal(first.status, 200);
      let etag = first.header('SIP-ETag')!;
      const change = async (body: string) => {
        const r = await peer.publish({ body, etag });
        assert.equal(r.status, 200);
        etag = r.header('SIP-ETag')!;
      };
      k = await dial();
      inv = await waitFor(voicemail, isRequest('INVITE'));
      assert.match(inv.startLine, /^INVITE sip:vm@/);
      voicemail.sendTo(reply(inv, 486, { toTag: 'v' }), server.sipPort);
      c(await k.response((s) => s >= 200), k);
      assert.ok(await phone.silent(300), 'the busy phone was not rung');
      // Do not disturb (closed with a note): voicemail too.
      await change(pidf(`sip:bob@${D}`, 'closed', { note: 'Do not disturb' }));
      k = await dial();
      inv = await waitFor(voicemail, isRequest('INVITE'));
      voicemail.sendTo(reply(inv, 486, { toTag: 'v2' }), server.sipPort);
      c(await k.response((s) => s >= 200), k);
      // Available again: the phone rings.
      await change(pidf(`sip:bob@${D}`, 'open'));
      k = await dial();
      inv = await waitFor(phone, isRequest('INVITE'));
      phone.send(reply(inv, 486, { toTag: 'p2' }));
      c(await k.response((s) => s >= 200), k);
    } finally {
      peer.close();
    }
    /** Acknowledges a final non-2xx. */
    function c(res: Msg, k: Call): void {
      assert.equal(res.status, 486);
      caller.send(k.ackFor(res));
    }
  });
});
