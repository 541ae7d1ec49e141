// Issue 15, "Unbounded negative credential cache, filled before the lockout check": Digest answers with long and
// random usernames and unknown realms, over real UDP. Oversized directives get 400 and are never looked up; thousands
// of random names leave the credential cache within its byte bound; a locked source causes no store lookup at all.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';
const BYTES = 65536;

/** A nonce from a first REGISTER's challenge. */
async function challenge(c: SipTestClient): Promise<Record<string, string>> {
  const r = await c.request(buildRequest(c, { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:x@${D}>`, to: `<sip:x@${D}>` }));
  assert.equal(r.status, 401);
  return parseChallenge(r.header('WWW-Authenticate')!);
}

function answer(c: SipTestClient, ch: Record<string, string>, username: string, o: { realm?: string; cnonce?: string } = {}): string {
  let auth = digestAuthorization({ ...ch, realm: o.realm ?? ch.realm }, { username, password: 'guess', method: 'REGISTER', uri: `sip:${D}`, cnonce: o.cnonce });
  if (o.realm) auth = auth.replace(`realm="${ch.realm}"`, `realm="${o.realm}"`);
  return buildRequest(c, { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:x@${D}>`, to: `<sip:x@${D}>`, headers: [['Authorization', auth]] });
}

/** Sends the requests in windows of 100 and collects one response each (UDP on loopback: none is lost). */
async function flood(c: SipTestClient, requests: string[]): Promise<SipResponseView[]> {
  const out: SipResponseView[] = [];
  for (let i = 0; i < requests.length; i += 100) {
    const batch = requests.slice(i, i + 100);
    for (const r of batch) c.send(r);
    for (let j = 0; j < batch.length; j++) out.push(await c.response(10_000));
  }
  return out;
}

const randomName = (n: number) => randomBytes(n).toString('hex').slice(0, n);

describe('credential lookups under a flood of junk names', () => {
  const servers: TestServer[] = [];
  const clients: SipTestClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.close();
  });
  const start = async (flags: Record<string, string>) => {
    const s = await startTestServer({ flags: { 'credential-cache-bytes': String(BYTES), ...flags }, users: { [`alice@${D}`]: 'alice-secret-1' } });
    servers.push(s);
    const c = await SipTestClient.open('UDP', s.sipPort);
    clients.push(c);
    return { s, c };
  };

  it('refuses oversized directives with 400 and looks nothing up; an unknown realm is only challenged', async () => {
    const { s, c } = await start({ 'auth-address-failures': '1000000', 'auth-account-failures': '1000000', 'auth-account-address-failures': '1000000', 'auth-challenge-burst': '0' });
    const ch = await challenge(c);
    const loads = s.credentials.loads;
    const long = await c.request(answer(c, ch, 'u'.repeat(300)));
    assert.equal(long.status, 400);
    assert.match(long.reason, /username longer than 256 bytes/);
    const longCnonce = await c.request(answer(c, ch, 'alice', { cnonce: 'c'.repeat(1000) }));
    assert.equal(longCnonce.status, 400);
    assert.match(longCnonce.reason, /cnonce longer than 256 bytes/);
    const otherRealm = await c.request(answer(c, ch, 'alice', { realm: 'r'.repeat(200) + '.invalid' }));
    assert.equal(otherRealm.status, 401, 'credentials for a realm we did not ask for are no answer: challenged again');
    assert.equal(s.credentials.loads, loads, 'no lookup for any of them');
  });

  it('keeps the cache within its byte bound through 3,000 random 200-byte usernames', async () => {
    const { s, c } = await start({ 'auth-address-failures': '1000000', 'auth-account-failures': '1000000', 'auth-account-address-failures': '1000000', 'auth-challenge-burst': '0' });
    const ch = await challenge(c);
    const replies = await flood(c, Array.from({ length: 3000 }, () => answer(c, ch, randomName(200))));
    assert.ok(replies.every((r) => r.status === 401), 'every unknown name challenged again');
    assert.ok(s.credentials.loads >= 3000, 'they were looked up (an unlocked source)');
    assert.ok(s.credentials.bytes <= BYTES, `cache holds ${s.credentials.bytes} bytes, bound ${BYTES}`);
    assert.ok(s.credentials.size < 3000, `${s.credentials.size} entries kept`);
  });

  it('looks nothing up for a locked source', async () => {
    const { s, c } = await start({ 'auth-address-failures': '5', 'auth-lockout': '300' });
    const ch = await challenge(c);
    const first = await flood(c, Array.from({ length: 5 }, () => answer(c, ch, randomName(40))));
    assert.ok(first.every((r) => r.status === 401));
    const loads = s.credentials.loads;
    const size = s.credentials.size;
    const replies = await flood(c, Array.from({ length: 1000 }, () => answer(c, ch, randomName(200))));
    assert.ok(replies.every((r) => r.status === 403), 'the locked source is refused');
    assert.equal(s.credentials.loads, loads, 'with no store lookup');
    assert.equal(s.credentials.size, size, 'and no cache entry');
  });
});
