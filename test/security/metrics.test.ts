// Attacks on /metrics. (1) Label explosion: every request's method became a Prometheus label before the request
// was validated; 300 UDP requests with random 2,000-character methods grew /metrics from 12 KB to 10.5 MB.
// Unknown methods now count under `other`. (2) Unauthenticated scrapes from anywhere: only the networks of
// --metrics-open-to (loopback by default) scrape without credentials; elsewhere an admin token or an API key with
// metrics.read is needed. A client bound to 127.0.0.2 stands for a remote scraper, with 127.0.0.1/32 as the open
// network; --metrics-listen moves the open scrape to a listener of its own.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

/** GET over node:http from a chosen source address. */
function get(port: number, path: string, o: { from?: string; auth?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, localAddress: o.from, headers: o.auth ? { authorization: o.auth } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function junkMethod(): string {
  // Token characters (RFC 3261 §25.1), upper-case letters: a syntactically valid, unknown method.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const b = randomBytes(2000);
  let m = '';
  for (const x of b) m += alphabet[x % 26];
  return m;
}

async function flood(sipPort: number, n: number): Promise<number> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  let answers = 0;
  sock.on('message', () => answers++);
  for (let i = 0; i < n; i++) {
    const m = junkMethod();
    const msg = [
      `${m} sip:x@${D} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${randomBytes(8).toString('hex')};rport`,
      `From: <sip:a@${D}>;tag=${randomBytes(4).toString('hex')}`,
      `To: <sip:x@${D}>`,
      `Call-ID: ${randomBytes(8).toString('hex')}@junk`,
      `CSeq: 1 ${m}`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    sock.send(msg, sipPort, '127.0.0.1');
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 20));
  }
  const deadline = Date.now() + 10_000;
  while (answers < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  sock.close();
  return answers;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('security: /metrics', () => {
  let s: TestServer;
  let admin: string;
  let user: string;
  before(async () => {
    s = await startTestServer({ flags: { 'metrics-open-to': '127.0.0.1/32', 'sip-transports': 'UDP' }, users: { [`bob@${D}`]: 'bob-password' } });
    admin = `Bearer ${await adminToken(s)}`;
    const bob = (await s.accounts.findByName('bob', D))!;
    user = `Bearer ${(await s.tokens.issue(bob)).token}`;
  });
  after(() => s.close());

  it('300 requests with random 2,000-character methods count under method="other" and leave /metrics small', async () => {
    const before = await get(s.http.port, '/metrics');
    assert.equal(before.status, 200);
    const answered = await flood(s.sipPort, 300);
    // UDP: a few datagrams may be lost on a busy machine either way.
    assert.ok(answered >= 250, `junk requests are answered (405/501): ${answered} of 300`);
    const m = await get(s.http.port, '/metrics');
    assert.equal(m.status, 200);
    const counted = Number(/^switchboard_sip_requests_total\{method="other"\} (\d+)$/m.exec(m.body)?.[1]);
    assert.ok(counted >= answered && counted <= 300, `counted under "other": ${counted}`);
    assert.match(m.body, /^switchboard_sip_responses_total\{method="other",status="\d{3}"\} \d+$/m);
    assert.doesNotMatch(m.body, /[A-Z]{100}/, 'no method name in any label');
    // Measured: 12.5 KB before, 13.8 KB after (the new `other` series); 10.6 MB after without the fix.
    assert.ok(m.body.length < before.body.length + 4096, `/metrics grew from ${before.body.length} to ${m.body.length} bytes`);
  });

  it('from outside --metrics-open-to: 401 without credentials, 403 for a plain user, 200 for an admin or a metrics.read key', async () => {
    const anon = await get(s.http.port, '/metrics', { from: '127.0.0.2' });
    assert.equal(anon.status, 401);
    assert.equal((JSON.parse(anon.body) as { error: { code: string } }).error.code, 'HTTP_ERR_UNAUTHORIZED');
    assert.match(String(anon.headers['www-authenticate']), /^Bearer/);
    assert.doesNotMatch(anon.body, /switchboard_/);

    assert.equal((await get(s.http.port, '/metrics', { from: '127.0.0.2', auth: user })).status, 403);
    assert.equal((await get(s.http.port, '/metrics', { from: '127.0.0.2', auth: 'Bearer sbk_forged_key' })).status, 401);
    const asAdmin = await get(s.http.port, '/metrics', { from: '127.0.0.2', auth: admin });
    assert.equal(asAdmin.status, 200);
    assert.match(asAdmin.body, /^switchboard_bindings_active /m);

    const adminAccount = (await s.accounts.findByName('admin', D))!;
    const mk = async (permissions: string[]) => {
      const r = await fetch(`${s.httpUrl}/users/${adminAccount.id}/api-keys`, { method: 'POST', headers: { authorization: admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'scraper', permissions }) });
      assert.equal(r.status, 201);
      return `Bearer ${((await r.json()) as { key: string }).key}`;
    };
    assert.equal((await get(s.http.port, '/metrics', { from: '127.0.0.2', auth: await mk(['registrations.read']) })).status, 403);
    const scraper = await get(s.http.port, '/metrics', { from: '127.0.0.2', auth: await mk(['metrics.read']) });
    assert.equal(scraper.status, 200);
    assert.match(scraper.body, /^switchboard_sip_requests_total/m);
    // A non-admin cannot give itself the permission.
    const bob = (await s.accounts.findByName('bob', D))!;
    const own = await fetch(`${s.httpUrl}/users/${bob.id}/api-keys`, { method: 'POST', headers: { authorization: user, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', permissions: ['metrics.read'] }) });
    assert.equal(own.status, 403);
  });

  it('--metrics-listen: open scrapes on its own address only; the HTTP port wants credentials', async () => {
    const port = await freePort();
    const t = await startTestServer({ flags: { 'metrics-listen': `127.0.0.1:${port}`, 'sip-transports': 'UDP' } });
    try {
      const own = await get(port, '/metrics');
      assert.equal(own.status, 200);
      assert.match(own.body, /^switchboard_bindings_active /m);
      assert.equal((await get(port, '/users')).status, 404, 'nothing but /metrics there');
      assert.equal((await get(t.http.port, '/metrics')).status, 401);
      assert.equal((await get(t.http.port, '/metrics', { auth: `Bearer ${await adminToken(t)}` })).status, 200);
    } finally {
      await t.close();
    }
  });

  it('--metrics-open-to none: credentials even from loopback', async () => {
    const t = await startTestServer({ flags: { 'metrics-open-to': 'none', 'sip-transports': 'UDP' } });
    try {
      assert.equal((await get(t.http.port, '/metrics')).status, 401);
      assert.equal((await get(t.http.port, '/metrics', { auth: `Bearer ${await adminToken(t)}` })).status, 200);
    } finally {
      await t.close();
    }
  });
});
