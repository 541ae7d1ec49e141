// sipsak (usrloc mode, -U) registers against the server over real UDP and TCP sockets with Digest: one contact,
// several contacts in one REGISTER, a query (no Contact), Contact: * with and without Expires: 0, and a run of
// accounts one after another. Each case checks the server's bindings, not only sipsak's exit code.
//
// Notes on sipsak 0.9.8.1 (Debian) that shape these tests (docs/digest-clients.md):
// - Without -u it answers the challenge with a wrong username ("alice@", or "user1@1" over a -b/-e range), so
//   every run passes -u; its range mode (-b/-e) therefore cannot authenticate, and the range is run one account
//   at a time instead (the last test shows the server refusing the range mode's username).
// - -S sends and receives on one port, so responses (sent to the source port, rport) reach it without raw sockets.
// - It answers only the first WWW-Authenticate, and only MD5.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { missingPeer } from '../helpers/peers.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

const DOMAIN = 'example.test';

interface SipsakResult {
  code: number | null;
  output: string;
}

/** Runs sipsak in usrloc mode against 127.0.0.1:port; `args` come after the common ones. */
function sipsak(port: number, user: string, args: string[], o: { password?: string; authUser?: string | null; transport?: 'udp' | 'tcp' } = {}): Promise<SipsakResult> {
  const all = ['-U', '-S', '-i', '-vvv', '-p', `127.0.0.1:${port}`, '-s', `sip:${user}@${DOMAIN}`, '-E', o.transport ?? 'udp'];
  if (o.password !== undefined) all.push('-a', o.password);
  if (o.authUser !== null) all.push('-u', o.authUser ?? user);
  all.push(...args);
  return new Promise((resolve) => {
    const proc = spawn('sipsak', all, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const explain = (r: SipsakResult) => `sipsak exit ${r.code}\n${r.output.slice(-4000)}`;

describe('REGISTER with sipsak', { skip: missingPeer('sipsak') }, () => {
  let server: TestServer;
  let token: string; // GET /v1/registrations is for admins
  const users: Record<string, string> = {};
  for (const name of ['one-udp', 'one-tcp', 'many-udp', 'many-tcp', 'range1', 'range2', 'range3', 'range4', 'range5']) {
    users[`${name}@${DOMAIN}`] = `pw-${name}`;
  }
  // sipsak's range mode takes one password for all its accounts.
  for (const name of ['user1', 'user2', 'user3']) users[`${name}@${DOMAIN}`] = 'pw-range';
  before(async () => {
    server = await startTestServer({ users }); // default configuration, default Digest offer
    token = await adminToken(server);
  });
  after(() => server.close());

  const bindings = async (user: string) => (await server.location.lookup(`${user}@${DOMAIN}`));

  for (const transport of ['udp', 'tcp'] as const) {
    it(`registers one contact with digest over ${transport.toUpperCase()}`, async () => {
      const user = `one-${transport}`;
      const r = await sipsak(server.sipPort, user, ['-C', `sip:${user}@192.0.2.1:5060`, '-x', '600'], { password: `pw-${user}`, transport });
      assert.equal(r.code, 0, explain(r));
      assert.match(r.output, /Authorization: Digest username="[^"]+"[^\n]*algorithm=MD5/);
      const list = (await bindings(user));
      assert.equal(list.length, 1, explain(r));
      assert.equal(list[0].contact, `sip:${user}@192.0.2.1:5060`);
      assert.equal(list[0].transport, transport.toUpperCase());
      assert.match(list[0].userAgent ?? '', /^sipsak /);
      const left = Math.round((list[0].expiresAt - Date.now()) / 1000);
      assert.ok(left > 590 && left <= 600, `expires in ${left} s`);
      const res = await fetch(`${server.httpUrl}/v1/registrations?realm=${DOMAIN}&user=${user}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      const http = (await res.json()) as { total: number };
      assert.equal(http.total, 1);
    });

    it(`several contacts in one REGISTER, a query, then Contact: * over ${transport.toUpperCase()}`, async () => {
      const user = `many-${transport}`;
      const pw = `pw-${user}`;
      // sipsak writes -C as given, so a comma-separated list is one Contact header with two values.
      const reg = await sipsak(server.sipPort, user, ['-C', `sip:${user}@192.0.2.1:5060, sip:${user}@192.0.2.2:5060;q=0.5`, '-x', '900'], { password: pw, transport });
      assert.equal(reg.code, 0, explain(reg));
      assert.deepEqual((await bindings(user)).map((b) => [b.contact, b.q]).sort(), [
        [`sip:${user}@192.0.2.1:5060`, null],
        [`sip:${user}@192.0.2.2:5060`, 0.5],
      ]);

      // -C none: no Contact header, a query; the 200 OK lists both.
      const query = await sipsak(server.sipPort, user, ['-C', 'none'], { password: pw, transport });
      assert.equal(query.code, 0, explain(query));
      const listed = query.output.slice(query.output.lastIndexOf('SIP/2.0 200'));
      assert.match(listed, new RegExp(`Contact: <sip:${user}@192\\.0\\.2\\.1:5060>;expires=\\d+`));
      assert.match(listed, new RegExp(`Contact: <sip:${user}@192\\.0\\.2\\.2:5060>;q=0\\.5;expires=\\d+`));
      assert.equal((await bindings(user)).length, 2);

      // Contact: * with a non-zero Expires: 400, nothing removed.
      const bad = await sipsak(server.sipPort, user, ['-C', 'star', '-x', '600'], { password: pw, transport });
      assert.equal(bad.code, 1, explain(bad));
      assert.match(bad.output, /SIP\/2\.0 400 /);
      assert.equal((await bindings(user)).length, 2);

      // Contact: * with Expires: 0 removes them all.
      const all = await sipsak(server.sipPort, user, ['-C', 'star', '-x', '0'], { password: pw, transport });
      assert.equal(all.code, 0, explain(all));
      assert.deepEqual((await bindings(user)), []);
    });
  }

  it('registers a run of accounts, one sipsak per account', async () => {
    for (let i = 1; i <= 5; i++) {
      const user = `range${i}`;
      const r = await sipsak(server.sipPort, user, ['-C', `sip:${user}@192.0.2.${i}:5060`, '-x', '600'], { password: `pw-${user}` });
      assert.equal(r.code, 0, explain(r));
    }
    for (let i = 1; i <= 5; i++) assert.deepEqual((await bindings(`range${i}`)).map((b) => b.contact), [`sip:range${i}@192.0.2.${i}:5060`]);
  });

  it('range mode (-b/-e) answers with a username the server refuses: 401 again, nothing bound', async () => {
    // sipsak -U -b 1 -e 3 -s sip:user@… registers user1…user3; 0.9.8.1 answers the challenge as "user1@1".
    const r = await sipsak(server.sipPort, 'user', ['-b', '1', '-e', '3', '-x', '600'], { password: 'pw-range', authUser: null });
    const answered = /Authorization: Digest username="([^"]*)"/.exec(r.output)?.[1];
    if (answered === 'user1') {
      // A fixed sipsak: then the range must register like any client.
      assert.equal(r.code, 0, explain(r));
      for (let i = 1; i <= 3; i++) assert.equal((await bindings(`user${i}`)).length, 1);
      return;
    }
    assert.notEqual(r.code, 0, explain(r));
    assert.match(r.output, /SIP\/2\.0 401 /);
    for (let i = 1; i <= 3; i++) assert.deepEqual((await bindings(`user${i}`)), []);
  });
});

// Which of several Digest challenges sipsak answers (docs/digest-clients.md): only the first, only MD5.
describe('sipsak and the Digest challenges offered', { skip: missingPeer('sipsak') }, () => {
  const offers: Array<{ algorithms: string | null; registers: boolean }> = [
    { algorithms: null, registers: true }, // the default
    { algorithms: 'SHA-512-256,SHA-256,MD5', registers: false },
    { algorithms: 'SHA-256,MD5', registers: false },
    { algorithms: 'MD5', registers: true },
    { algorithms: 'MD5,SHA-256', registers: true },
  ];
  for (const o of offers) {
    it(`offered ${o.algorithms ?? 'the default'}: sipsak ${o.registers ? 'registers (answering MD5)' : 'gives up: unsupported algorithm'}`, async () => {
      const server = await startTestServer({ users: { [`matrix@${DOMAIN}`]: 'pw-matrix' }, flags: o.algorithms ? { 'digest-algorithms': o.algorithms } : {} });
      try {
        const r = await sipsak(server.sipPort, 'matrix', ['-C', 'sip:matrix@192.0.2.9:5060', '-x', '600'], { password: 'pw-matrix' });
        const bound = (await server.location.lookup(`matrix@${DOMAIN}`));
        if (o.registers) {
          assert.equal(r.code, 0, explain(r));
          assert.equal(bound.length, 1);
          assert.match(r.output, /Authorization: Digest [^\n]*algorithm=MD5/);
        } else {
          assert.notEqual(r.code, 0, explain(r));
          assert.match(r.output, /unsupported authentication algorithm/);
          assert.deepEqual(bound, []);
        }
      } finally {
        await server.close();
      }
    });
  }
});
