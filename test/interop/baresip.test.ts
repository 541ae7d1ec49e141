// baresip as a real client over UDP and TCP: it registers with Digest, the server holds its binding, and when it
// is stopped (SIGINT, as from a terminal) it unregisters and the binding goes. It runs headless: a config
// directory with no audio or video modules, no UI module, listening on a free port.
//
// baresip 1.0.0 signs with libre 1.1.0's sip/auth.c, which refuses a 401 as soon as any of its WWW-Authenticate
// headers names an algorithm other than MD5 ("Function not implemented"), whatever their order; the matrix at the
// end records that (docs/digest-clients.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { startBaresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';

const DOMAIN = 'example.test';

/** Polls until `pred` holds (or fails after `ms`). */
async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('REGISTER with baresip', { skip: missingPeer('baresip') }, () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${DOMAIN}`]: 'alice-pw', [`bob@${DOMAIN}`]: 'bob-pw' } }); // default configuration
    token = await adminToken(server);
  });
  /** GET /v1/registrations for one user (an admin's request). */
  async function registered(user: string): Promise<number> {
    const res = await fetch(`${server.httpUrl}/v1/registrations?realm=${DOMAIN}&user=${user}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { total: number }).total;
  }
  after(() => server.close());

  for (const [transport, user] of [
    ['udp', 'alice'],
    ['tcp', 'bob'],
  ] as const) {
    it(`registers over ${transport.toUpperCase()}, and unregisters when stopped`, async () => {
      const aor = `${user}@${DOMAIN}`;
      const ua = startBaresip({ port: server.sipPort, user, password: `${user}-pw`, domain: DOMAIN, transport });
      let bound: BindingRecord[] = [];
      try {
        await until(async () => (bound = (await server.location.lookup(aor))).length > 0, `a binding for ${aor}\n${ua.output().slice(-3000)}`);
        await ua.waitFor(/200 OK \(Switchboard\) \[1 binding\]/);
        assert.equal(bound.length, 1);
        const [b] = bound;
        assert.match(b.contact, new RegExp(`^sip:${user}-[^@]+@127\\.0\\.0\\.1:\\d+${transport === 'tcp' ? ';transport=tcp' : ''}$`));
        assert.equal(b.transport, transport.toUpperCase());
        assert.match(b.userAgent ?? '', /^baresip /);
        const left = Math.round((b.expiresAt - Date.now()) / 1000);
        assert.ok(left > 590 && left <= 600, `expires in ${left} s`);
        // It answered the (single, MD5) challenge: no algorithm parameter means MD5.
        assert.match(ua.output(), /Authorization: Digest username="[^"]+"/);
        assert.equal(await registered(user), 1);
      } finally {
        await ua.stop();
      }
      // On exit baresip sends REGISTER with expires=0 (challenged and answered like the first).
      assert.match(ua.output(), /;expires=0/);
      await until(async () => (await server.location.lookup(aor)).length === 0, `${aor} to be unregistered\n${ua.output().slice(-3000)}`);
      assert.equal(await registered(user), 0);
    });
  }
});

// Which of several Digest challenges baresip answers (docs/digest-clients.md).
describe('baresip and the Digest challenges offered', { skip: missingPeer('baresip') }, () => {
  const offers: Array<{ algorithms: string | null; bearer?: boolean; registers: boolean; error?: RegExp }> = [
    { algorithms: null, registers: true }, // the default
    { algorithms: 'SHA-512-256,SHA-256,MD5', registers: false },
    { algorithms: 'SHA-256,MD5', registers: false },
    { algorithms: 'MD5', registers: true },
    { algorithms: 'MD5,SHA-256', registers: false }, // MD5 first does not help: any non-MD5 challenge fails it
    // Nor does a Bearer challenge after it (RFC 8898): libre cannot parse it as Digest. Hence --sip-bearer accept.
    { algorithms: 'MD5', bearer: true, registers: false, error: /Register: Bad message/ },
  ];
  for (const o of offers) {
    const what = (o.algorithms ?? 'the default') + (o.bearer ? ' + Bearer' : '');
    const error = o.error ?? /Register: Function not implemented/;
    it(`offered ${what}: baresip ${o.registers ? 'registers (answering MD5)' : `fails (${error.source.replace('Register: ', '')})`}`, async () => {
      const flags = { ...(o.algorithms ? { 'digest-algorithms': o.algorithms } : {}), ...(o.bearer ? { 'sip-bearer': 'offer' } : {}) };
      const server = await startTestServer({ users: { [`carol@${DOMAIN}`]: 'carol-pw' }, flags });
      const ua = startBaresip({ port: server.sipPort, user: 'carol', password: 'carol-pw', domain: DOMAIN, transport: 'udp' });
      try {
        if (o.registers) {
          await until(async () => (await server.location.lookup(`carol@${DOMAIN}`)).length > 0, `a binding\n${ua.output().slice(-3000)}`);
        } else {
          await ua.waitFor(error);
          assert.deepEqual((await server.location.lookup(`carol@${DOMAIN}`)), []);
          assert.doesNotMatch(ua.output(), /Authorization:/);
        }
      } finally {
        await ua.stop();
        await server.close();
      }
    });
  }
});
