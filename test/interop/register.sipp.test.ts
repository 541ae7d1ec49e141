// SIPp drives REGISTER over real UDP and TCP sockets (RFC 3261 §10.3 with Digest, RFC 7616/8760): every case checks
// what the server then holds (its location service and GET /v1/registrations), not only the status codes SIPp saw.
// The digest-offer matrix at the end records which challenge SIPp answers when several are offered
// (docs/digest-clients.md) and locks in the default.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { missingPeer } from '../helpers/peers.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';
import { register } from '../helpers/register.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';
import { explain, runSipp, type SippOptions } from '../helpers/sipp.ts';

const DOMAIN = 'example.test';
const CASES = ['digest', 'refresh', 'multi', 'star', 'brief', 'wrong', 'replay', 'query', 'owner', 'victim', 'cseq'];
const TRANSPORTS = [
  { sipp: 'u1', name: 'UDP' },
  { sipp: 't1', name: 'TCP' },
] as const;

/** One account per case and transport, so the cases never see each other's bindings. */
function userFor(kase: string, transport: string): string {
  return `${kase}-${transport.toLowerCase()}`;
}
const passwordOf = (user: string) => `pw-${user}`;

/** The binding's remaining lifetime in whole seconds. */
const remaining = (b: BindingRecord) => Math.round((b.expiresAt - Date.now()) / 1000);

describe('REGISTER with SIPp', { skip: missingPeer('sipp') }, () => {
  let server: TestServer;
  let token: string; // GET /v1/registrations is for admins
  const users: Record<string, string> = {};
  for (const kase of CASES) for (const t of TRANSPORTS) users[`${userFor(kase, t.name)}@${DOMAIN}`] = passwordOf(userFor(kase, t.name));

  before(async () => {
    // The default configuration throughout: what a fresh install offers is what these clients meet.
    server = await startTestServer({ users });
    token = await adminToken(server);
  });
  after(() => server.close());

  const bindings = async (user: string) => (await server.location.lookup(`${user}@${DOMAIN}`));
  async function overHttp(user: string): Promise<{ total: number; registrations: Array<{ aor: string; bindings: Array<{ contact: string; expires: number }> }> }> {
    const res = await fetch(`${server.httpUrl}/v1/registrations?realm=${DOMAIN}&user=${encodeURIComponent(user)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    return (await res.json()) as never;
  }
  function sipp(scenario: string, transport: SippOptions['transport'], user: string, extra: SippOptions = {}) {
    return runSipp(scenario, server.sipPort, {
      transport,
      keys: { domain: DOMAIN, user, ...extra.keys },
      auth: extra.auth ?? { username: user, password: passwordOf(user) },
      ...(extra.timeoutSeconds ? { timeoutSeconds: extra.timeoutSeconds } : {}),
    });
  }

  for (const t of TRANSPORTS) {
    describe(`over ${t.name}`, () => {
      it('registers with digest: 401, then 200 listing the contact with its expires', async () => {
        const user = userFor('digest', t.name);
        const r = await sipp('register.xml', t.sipp, user);
        assert.equal(r.code, 0, explain(r));
        const [b, ...more] = (await bindings(user));
        assert.equal(more.length, 0, 'exactly one binding');
        assert.match(b.contact, new RegExp(`^sip:${user}@127\\.0\\.0\\.1:\\d+;transport=${t.name}$`));
        assert.equal(b.transport, t.name);
        assert.equal(b.cseq, 2);
        assert.equal(b.userAgent, 'SIPp');
        assert.ok(remaining(b) > 590 && remaining(b) <= 600, `expires in ${remaining(b)} s`);
        const http = await overHttp(user);
        assert.equal(http.total, 1);
        assert.deepEqual(http.registrations[0].bindings.map((x) => x.contact), [b.contact]);
      });

      it('refresh (same Call-ID, higher CSeq) keeps one binding with the new lifetime', async () => {
        const user = userFor('refresh', t.name);
        const r = await sipp('register-refresh.xml', t.sipp, user);
        assert.equal(r.code, 0, explain(r));
        const list = (await bindings(user));
        assert.equal(list.length, 1, JSON.stringify(list));
        assert.equal(list[0].cseq, 3);
        assert.ok(remaining(list[0]) > 1190 && remaining(list[0]) <= 1200, `expires in ${remaining(list[0])} s`);
        assert.ok(list[0].createdAt <= list[0].updatedAt);
      });

      it('two contacts with q-values, then one unregistered (expires=0) leaves the other', async () => {
        const user = userFor('multi', t.name);
        const r = await sipp('register-two-contacts.xml', t.sipp, user);
        assert.equal(r.code, 0, explain(r));
        const list = (await bindings(user));
        assert.equal(list.length, 1, JSON.stringify(list));
        assert.match(list[0].contact, /^sip:mobile@/);
        assert.equal(list[0].q, 0.1);
      });

      it('Contact: * needs Expires: 0 (else 400, nothing removed), and then removes every binding', async () => {
        const user = userFor('star', t.name);
        const r = await sipp('register-star.xml', t.sipp, user);
        assert.equal(r.code, 0, explain(r));
        assert.deepEqual((await bindings(user)), []);
        assert.equal((await overHttp(user)).total, 0);
      });

      it('Expires below the minimum gets 423 with Min-Expires, and no binding', async () => {
        const user = userFor('brief', t.name);
        const r = await sipp('register-brief.xml', t.sipp, user);
        assert.equal(r.code, 0, explain(r));
        assert.deepEqual((await bindings(user)), []);
      });

      it('a wrong password is re-challenged (401) and binds nothing', async () => {
        const user = userFor('wrong', t.name);
        const r = await sipp('register-wrong-password.xml', t.sipp, user, { auth: { username: user, password: 'not-the-password' } });
        assert.equal(r.code, 0, explain(r));
        assert.equal((await overHttp(user)).total, 0);
        assert.deepEqual((await bindings(user)), []);
      });

      it('the same Authorization sent again in a new transaction (replayed nonce-count) is refused with 401', async () => {
        const user = userFor('replay', t.name);
        // A challenge fetched by the raw client; SIPp then sends one hand-built answer to it twice.
        const client = await SipTestClient.open(t.name, server.sipPort);
        let authz: string;
        try {
          const ch = await client.request(
            buildRequest(client, { method: 'REGISTER', uri: `sip:${DOMAIN}`, from: `<sip:${user}@${DOMAIN}>`, to: `<sip:${user}@${DOMAIN}>` }),
          );
          assert.equal(ch.status, 401);
          authz = digestAuthorization(parseChallenge(ch.header('WWW-Authenticate')!), {
            username: user,
            password: passwordOf(user),
            method: 'REGISTER',
            uri: `sip:${DOMAIN}`,
          });
        } finally {
          client.close();
        }
        const r = await sipp('register-replay.xml', t.sipp, user, { keys: { authz } });
        assert.equal(r.code, 0, explain(r));
        const list = (await bindings(user));
        assert.deepEqual(list.map((b) => b.contact.replace(/@.*/, '')), ['sip:genuine'], 'the replayed request bound nothing');
        assert.equal(list[0].cseq, 1);
      });

      it('REGISTER without Contact is a query: 200 listing the bindings, changing none', async () => {
        const user = userFor('query', t.name);
        const client = await SipTestClient.open(t.name, server.sipPort);
        try {
          const res = await register(client, {
            user,
            password: passwordOf(user),
            domain: DOMAIN,
            contact: ['<sip:desk@192.0.2.10:5060>;q=0.9', '<sip:mobile@192.0.2.11:5060>;q=0.1'],
            expires: 900,
            callId: `query-setup-${t.name}`,
            cseq: 1,
          });
          assert.equal(res.status, 200, res.raw);
        } finally {
          client.close();
        }
        const before = (await bindings(user)).map((b) => ({ ...b }));
        assert.equal(before.length, 2);
        const r = await sipp('register-query.xml', t.sipp, user);
        assert.equal(r.code, 0, explain(r));
        assert.deepEqual((await bindings(user)), before, 'a query changes nothing');
        const http = await overHttp(user);
        assert.deepEqual(http.registrations[0].bindings.map((b) => b.contact).sort(), ['sip:desk@192.0.2.10:5060', 'sip:mobile@192.0.2.11:5060']);
      });

      it('an address of record the authenticated identity does not own gets 403', async () => {
        const owner = userFor('owner', t.name);
        const victim = userFor('victim', t.name);
        const r = await sipp('register-forbidden.xml', t.sipp, victim, { auth: { username: owner, password: passwordOf(owner) } });
        assert.equal(r.code, 0, explain(r));
        assert.deepEqual((await bindings(victim)), []);
        assert.deepEqual((await bindings(owner)), []);
      });

      it('a domain not served gets 404', async () => {
        const r = await sipp('register-not-served.xml', t.sipp, 'digest', { keys: { domain: 'elsewhere.test' } });
        assert.equal(r.code, 0, explain(r));
        assert.deepEqual((await server.location.lookup('digest@elsewhere.test')), []);
      });

      it('same Call-ID with a CSeq not above the binding’s is refused with 400, leaving the binding as it was', async () => {
        // Raw client: SIPp 3.6 cannot expect a response to a request whose CSeq is not above its last one.
        const user = userFor('cseq', t.name);
        const client = await SipTestClient.open(t.name, server.sipPort);
        try {
          const callId = `cseq-${t.name}`;
          const o = { user, password: passwordOf(user), domain: DOMAIN, contact: '<sip:phone@192.0.2.20:5060>', callId };
          const ok = await register(client, { ...o, expires: 600, cseq: 10 });
          assert.equal(ok.status, 200, ok.raw);
          const before = (await bindings(user)).map((b) => ({ ...b }));
          assert.equal(before.length, 1);
          assert.equal(before[0].cseq, 11);
          // CSeq 5 then 6: both at or below 11.
          const stale = await register(client, { ...o, expires: 1800, cseq: 5 });
          assert.equal(stale.status, 400, stale.raw);
          assert.deepEqual((await bindings(user)), before);
        } finally {
          client.close();
        }
      });
    });
  }
});

// Which of several Digest challenges SIPp answers (docs/digest-clients.md). SIPp 3.6.1 answers the first
// WWW-Authenticate only, and only MD5 (or AKAv1-MD5): any offer that does not start with MD5 fails.
describe('SIPp and the Digest challenges offered', { skip: missingPeer('sipp') }, () => {
  const user = 'matrix';
  const users = { [`${user}@${DOMAIN}`]: passwordOf(user) };

  it('the default offer is MD5 alone (the strongest every tested client accepts)', () => {
    assert.deepEqual(loadConfig({ env: {} }).digest.algorithms, ['MD5']);
  });

  const offers: Array<{ algorithms: string | null; registers: boolean }> = [
    { algorithms: null, registers: true }, // the default
    { algorithms: 'SHA-512-256,SHA-256,MD5', registers: false },
    { algorithms: 'SHA-256,MD5', registers: false },
    { algorithms: 'MD5', registers: true },
    { algorithms: 'MD5,SHA-256', registers: true },
  ];
  for (const o of offers) {
    it(`offered ${o.algorithms ?? 'the default'}: SIPp ${o.registers ? 'registers (answering MD5)' : 'cannot answer the first challenge'}`, async () => {
      const server = await startTestServer({ users, flags: o.algorithms ? { 'digest-algorithms': o.algorithms } : {} });
      try {
        const r = await runSipp('register.xml', server.sipPort, {
          keys: { domain: DOMAIN, user },
          auth: { username: user, password: passwordOf(user) },
          timeoutSeconds: 10,
        });
        const bound = (await server.location.lookup(`${user}@${DOMAIN}`));
        if (o.registers) {
          assert.equal(r.code, 0, explain(r));
          assert.equal(bound.length, 1);
          assert.match(r.messages, /Authorization: Digest [^\r\n]*algorithm=MD5/);
        } else {
          assert.notEqual(r.code, 0, explain(r));
          assert.match(r.errors, /authentication must use MD5/);
          assert.deepEqual(bound, []);
        }
      } finally {
        await server.close();
      }
    });
  }
});
