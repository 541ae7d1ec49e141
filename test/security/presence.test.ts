// Attacks through presence, over real SIP (UDP) with Digest-authenticated watchers of the realm:
// (1) each device's contact (IP, port, transport) went into the PIDF every realm user could watch;
// (2) 404 to a SUBSCRIBE for an unknown presentity against 200 for an existing one told which accounts (phone
//     numbers) exist;
// (3) one watcher could subscribe without limit (state stored and notified for each).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PresencePeer } from '../helpers/presence.ts';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';
const users: Record<string, string> = {
  [`alice@${D}`]: 'pw-alice',
  [`carol@${D}`]: 'pw-carol',
  [`w1@${D}`]: 'pw-w1',
  [`w2@${D}`]: 'pw-w2',
  [`w3@${D}`]: 'pw-w3',
};
const acct = (user: string) => ({ user, password: users[`${user}@${D}`], domain: D });

describe('security: presence privacy and SUBSCRIBE rate', () => {
  let s: TestServer;
  const peers: PresencePeer[] = [];
  const peer = async (user: string) => {
    const p = await PresencePeer.open('UDP', s.sipPort, acct(user));
    peers.push(p);
    return p;
  };
  before(async () => {
    s = await startTestServer({ users, flags: { 'presence-subscribe-rate': '5/60', 'sip-transports': 'UDP' } });
  });
  after(async () => {
    for (const p of peers) p.close();
    await s.close();
  });

  it("the PIDF a realm watcher gets carries no device contact (address, port, transport)", async () => {
    const phone = await peer('alice');
    const reg = await register(phone.c, { user: 'alice', password: users[`alice@${D}`], domain: D, contact: '<sip:alice@192.0.2.30:5062;transport=tcp>', expires: 600 });
    assert.equal(reg.status, 200);
    const w = await peer('w1');
    const { res } = await w.subscribe(`alice@${D}`, { expires: 600 });
    assert.equal(res.status, 200);
    const n = await w.notify();
    assert.match(n.header('Subscription-State')!, /^active/);
    assert.match(n.body, /<basic>open<\/basic>/, 'registered: open');
    assert.doesNotMatch(n.body, /<contact/);
    assert.doesNotMatch(n.body, /192\.0\.2\.30|5062|transport=|127\.0\.0\.1/, "no trace of the device's address");
  });

  it('SUBSCRIBE to an unknown user and to an existing one the watcher may not see answer alike (200, pending, no body)', async () => {
    await s.presence.setPolicy(`carol@${D}`, 'nobody', []);
    const w = await peer('w2');
    const shape = async (presentity: string) => {
      const { res } = await w.subscribe(presentity, { expires: 600 });
      const n = await w.notify();
      return {
        status: res.status,
        headers: res.headers.map(([k]) => k.toLowerCase()).filter((k) => !['via', 'call-id', 'cseq', 'from', 'to'].includes(k)).sort(),
        expires: res.header('Expires'),
        state: n.header('Subscription-State')!.replace(/expires=\d+/, 'expires=N'),
        contentType: n.header('Content-Type') ?? null,
        body: n.body,
      };
    };
    const existing = await shape(`carol@${D}`);
    const unknown = await shape(`nobody-${Date.now()}@${D}`);
    assert.equal(existing.status, 200);
    assert.deepEqual(unknown, existing);
    assert.equal(unknown.state, 'pending;expires=N');
    assert.equal(unknown.body, '');
  });

  it("a watcher's SUBSCRIBE flood is refused past its bucket with 503 and Retry-After; other watchers are not", async () => {
    const w = await peer('w3');
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 8; i++) {
      const { res } = await w.subscribe(`nobody-${i}@${D}`, { expires: 0 });
      statuses.push(res.status);
      if (res.status === 503) retryAfter = res.header('Retry-After');
      // A fetch's NOTIFY, when there is one, is not in the way of the next response.
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
    assert.ok(Number(retryAfter) >= 1, `Retry-After: ${retryAfter}`);
    const other = await peer('w1');
    assert.equal((await other.subscribe(`alice@${D}`, { expires: 0 })).res.status, 200, 'another watcher keeps its own bucket');
  });
});
