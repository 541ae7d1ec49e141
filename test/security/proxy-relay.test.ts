// The call proxy must not be an open relay (issue 17): INVITEs to other domains, initial requests with a Route
// elsewhere, in-dialog requests with a forged or foreign Route, and contacts pointing back at the proxy (a loop
// that Max-Forwards alone would let fork 2^70 times) are refused, and a "victim" socket at the address they name
// receives nothing. Callers from outside get through only as --calls-from says.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { startTestServer, type Flags, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, waitFor } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' };

/** A UDP socket on another loopback address: whatever reaches it was relayed. */
async function victim(): Promise<{ port: number; got: string[]; close(): void }> {
  const s = dgram.createSocket('udp4');
  const got: string[] = [];
  s.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => s.bind(0, '127.0.0.2', () => r()));
  return { port: s.address().port, got, close: () => s.close() };
}

async function withServer(flags: Flags, fn: (s: TestServer, open: () => Promise<SipTestClient>) => Promise<void>): Promise<void> {
  const s = await startTestServer({ users, flags });
  const clients: SipTestClient[] = [];
  try {
    await fn(s, async () => {
      const c = await SipTestClient.open('UDP', s.sipPort);
      clients.push(c);
      return c;
    });
  } finally {
    for (const c of clients) c.close();
    await s.close();
  }
}

const finalOf = async (k: Call) => (await k.response((s) => s >= 200)).status;

describe('the call proxy is no open relay', () => {
  let v: Awaited<ReturnType<typeof victim>>;
  before(async () => {
    v = await victim();
  });
  after(() => v.close());

  it('refuses a call to another domain, from our authenticated user (no --outbound-proxy) and from outside', async () => {
    await withServer({ 'calls-from': 'any' }, async (_s, open) => {
      const c = await open();
      const ours = new Call(c, { from: `<sip:alice@${D}>`, to: '<sip:x@127.0.0.2>', uri: `sip:x@127.0.0.2:${v.port}`, user: 'alice', password: 'alice-pw' });
      await ours.start();
      assert.equal(await finalOf(ours), 403);
      const outside = new Call(c, { from: '<sip:eve@evil.example.net>', to: '<sip:x@127.0.0.2>', uri: `sip:x@127.0.0.2:${v.port}`, user: 'eve', password: '' });
      await outside.start();
      assert.equal(await finalOf(outside), 403);
    });
    assert.deepEqual(v.got, [], 'nothing reached the victim');
  });

  it('refuses an initial INVITE with a Route elsewhere from an unauthenticated caller', async () => {
    await withServer({ 'calls-from': 'any' }, async (_s, open) => {
      const c = await open();
      const k = new Call(c, { from: '<sip:eve@evil.example.net>', to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'eve', password: '', headers: [['Route', `<sip:127.0.0.2:${v.port};lr>`]] });
      await k.start();
      assert.equal(await finalOf(k), 403);
    });
    assert.deepEqual(v.got, []);
  });

  it('refuses in-dialog requests whose Route is not one this proxy signed (foreign, or ours with a forged sb)', async () => {
    await withServer({ 'calls-from': 'any' }, async (s, open) => {
      const c = await open();
      const bye = (route: string) =>
        [
          `BYE sip:x@127.0.0.2:${v.port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${c.localPort};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
          'Max-Forwards: 70',
          `Route: ${route}`,
          '<sip:eve@evil.example.net>;tag=e1'.replace(/^/, 'From: '),
          `To: <sip:x@127.0.0.2>;tag=x1`,
          'Call-ID: forged@test',
          'CSeq: 2 BYE',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n');
      assert.equal((await c.request(bye(`<sip:127.0.0.2:${v.port};lr>`))).status, 481);
      const forged = `<sip:127.0.0.1:${s.sipPort};transport=udp;lr;ft=x;fc=VURQfDEyNy4wLjAuMnwxfHx4;fe=VURQfDEyNy4wLjAuMnwxfHx4;sb=AAAAAAAAAAAAAAAAAAAAAA>`;
      assert.equal((await c.request(bye(forged))).status, 481);
      const reinvite = new Call(c, { from: '<sip:eve@evil.example.net>', to: '<sip:x@127.0.0.2>;tag=x1', uri: `sip:x@127.0.0.2:${v.port}`, user: 'eve', password: '', headers: [['Route', forged]] });
      await reinvite.start();
      assert.equal(await finalOf(reinvite), 403);
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(v.got, []);
  });

  it('detects a loop (482) when a device sends the INVITE back, and answers Max-Forwards 0 with 483', async () => {
    await withServer({ 'calls-from': 'any' }, async (_s, open) => {
      const phone = await open();
      assert.equal((await register(phone, { user: 'bob', password: 'bob-pw', domain: D, expires: 300 })).status, 200);
      const c = await open();
      const k = new Call(c, { from: '<sip:eve@evil.example.net>', to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'eve', password: '' });
      await k.start();
      // The phone bounces every INVITE back to the proxy (a misconfigured forward): the first return is a spiral
      // (a new Request-URI), the second is the same request again, and the branch hash in our Via says so.
      let loop = null;
      for (let n = 0; n < 4 && !loop; n++) {
        const m = await waitFor(phone, (x) => (x.isRequest && x.method === 'INVITE') || (!x.isRequest && x.status === 482));
        if (!m.isRequest) loop = m;
        else phone.send(m.raw.replace('\r\n', `\r\nVia: SIP/2.0/UDP 127.0.0.1:${phone.localPort};branch=z9hG4bKbounce${n};rport\r\n`));
      }
      assert.ok(loop, 'the proxy answered 482 Loop Detected');
      const hops = new Call(c, { from: '<sip:eve@evil.example.net>', to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'eve', password: '' });
      c.send(hops.invite().replace('Max-Forwards: 70', 'Max-Forwards: 0'));
      assert.equal(await finalOf(hops), 483);
    });
  });

  it('refuses more Route values than it accepts (400)', async () => {
    await withServer({ 'calls-from': 'any' }, async (_s, open) => {
      const c = await open();
      const routes = Array.from({ length: 20 }, (_, i) => `<sip:10.0.0.${i};lr>`).join(', ');
      const k = new Call(c, { from: '<sip:eve@evil.example.net>', to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'eve', password: '', headers: [['Route', routes]] });
      await k.start();
      assert.equal(await finalOf(k), 400);
    });
  });

  it('lets callers from a trusted CIDR call our users without credentials, and no one else (--calls-from CIDRs)', async () => {
    await withServer({ 'calls-from': '127.0.0.3/32' }, async (s, open) => {
      const phone = await open();
      assert.equal((await register(phone, { user: 'bob', password: 'bob-pw', domain: D, expires: 300 })).status, 200);
      const untrusted = await open();
      const k = new Call(untrusted, { from: '<sip:trunk@carrier.example.net>', to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'trunk', password: '' });
      await k.start();
      assert.equal(await finalOf(k), 403);
      const trunk = await SipTestClient.open('UDP', s.sipPort, '127.0.0.1', '127.0.0.3');
      try {
        const t = new Call(trunk, { from: '<sip:trunk@carrier.example.net>', to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'trunk', password: '' });
        await t.start();
        await waitFor(phone, isRequest('INVITE'));
      } finally {
        trunk.close();
      }
    });
  });
});
