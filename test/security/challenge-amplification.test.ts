// Issue 15, amplification: a REGISTER flood with a forged UDP source turns into 401s (larger than the requests) at
// whoever owns that address. Beyond a burst and rate per source the challenges are dropped, not sent; other sources,
// and TCP (whose peer address is proven by the handshake), are still answered. Over real UDP and TCP; the flood comes
// from this machine's non-loopback address (loopback cannot be forged from outside and is not limited).
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';
const BURST = 20;
/** A local non-loopback IPv4 address to send from (to the server on 127.0.0.1). */
const EXTERNAL = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

/** Sends `n` credential-less REGISTERs and counts the 401s that come back before the line goes quiet. */
async function flood(c: SipTestClient, n: number): Promise<number> {
  for (let i = 0; i < n; i++) c.send(buildRequest(c, { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:victim@${D}>`, to: `<sip:victim@${D}>` }));
  let got = 0;
  for (;;) {
    try {
      const r = await c.response(1500);
      assert.equal(r.status, 401);
      got++;
    } catch {
      return got;
    }
  }
}

describe('401s per UDP source are bounded', () => {
  let s: TestServer;
  const clients: SipTestClient[] = [];
  const open = async (transport: 'UDP' | 'TCP', bind: string) => {
    const c = await SipTestClient.open(transport, s.sipPort, '127.0.0.1', bind);
    clients.push(c);
    return c;
  };
  before(async () => {
    s = await startTestServer({ flags: { 'auth-challenge-burst': String(BURST), 'auth-challenge-rate': '1' }, users: { [`alice@${D}`]: 'alice-secret-1' } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await s.close();
  });

  it('drops challenges to a flooding source beyond its burst, silently', { skip: EXTERNAL ? false : 'no non-loopback IPv4 address on this machine' }, async () => {
    const victim = await open('UDP', EXTERNAL!);
    const got = await flood(victim, 200);
    // The burst, plus what the rate refills while the flood lasts (1/s: a few at most, even on a slow machine).
    assert.ok(got >= BURST && got <= BURST + 10, `${got} of 200 REGISTERs were answered`);
    assert.match(await s.metrics.registry.metrics(), /switchboard_auth_failures_total\{reason="challenge-limited"\} [1-9]/);
  });

  it('still answers other sources, and TCP from the same address', async () => {
    const other = await open('UDP', '127.0.0.2');
    assert.equal((await register(other, { user: 'alice', password: 'alice-secret-1', domain: D })).status, 200, 'a phone elsewhere registers');
    assert.ok((await flood(other, BURST * 2)) === BURST * 2, 'loopback is never limited (load tests, a local SBC)');
    const tcp = await open('TCP', EXTERNAL ?? '127.0.0.1');
    assert.equal((await register(tcp, { user: 'alice', password: 'alice-secret-1', domain: D })).status, 200, 'TCP is not limited: its peer is proven');
  });
});
