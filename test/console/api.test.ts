// What the browser pages need from the HTTP server, over HTTP: the pages and SIP.js with their security headers
// (and nothing outside their roots), the client configuration, the registration filters (transport, User-Agent,
// expiring soon), an account's devices for admins, and the live event stream (auth, topics, token expiry,
// shutdown).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { InProcessBus } from '../../src/bus/in-process.ts';
import type { Authenticator } from '../../src/http/authenticate.ts';
import { eventRoutes } from '../../src/http/routes/events.ts';
import { TokenError } from '../../src/identity/tokens.ts';
import { createLogger } from '../../src/log.ts';
import { startPhoneServer, signUp, nextNumber } from '../phone/helpers.ts';
import { register } from '../helpers/register.ts';
import { adminToken, startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

const D = 'example.test';

/** A raw GET (no URL normalisation, unlike fetch). */
function rawGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Reads server-sent events from a response until `until` says stop (or the stream ends). */
async function readEvents(res: Response, until: (events: Array<{ event: string; data: string }>) => boolean, ms = 5000) {
  const events: Array<{ event: string; data: string }> = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => reader.cancel(), ms);
  let buf = '';
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event) events.push({ event, data: data ?? '' });
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return events;
}

describe('console HTTP', () => {
  let s: TestServer;
  let admin: string;
  let userToken: string;
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  before(async () => {
    s = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
    admin = await adminToken(s);
    const bob = await s.accounts.findByName('bob', D);
    userToken = (await s.tokens.issue(bob!)).token;
  });
  after(() => s.close());

  describe('pages', () => {
    it('serves the console and the softphone with a strict Content-Security-Policy and no inline script', async () => {
      for (const path of ['/console/', '/phone/']) {
        const res = await fetch(`${s.httpUrl}${path}`);
        assert.equal(res.status, 200, path);
        assert.match(res.headers.get('content-type')!, /^text\/html/);
        const csp = res.headers.get('content-security-policy')!;
        assert.match(csp, /default-src 'none'/);
        assert.match(csp, /script-src 'self';/);
        assert.match(csp, /style-src 'self';/);
        assert.ok(csp.includes(`connect-src 'self' wss://127.0.0.1:${s.portOf('WSS')};`), csp);
        assert.match(csp, /frame-ancestors 'none'/);
        assert.doesNotMatch(csp, /unsafe/);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
        assert.equal(res.headers.get('x-frame-options'), 'DENY');
        const html = await res.text();
        for (const tag of html.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /\bsrc="\/[^"]+"/, `inline script: ${tag}`);
        assert.doesNotMatch(html, /\sstyle=|<style|\son[a-z]+=/i, 'no inline style or handler');
        assert.doesNotMatch(html, /https?:\/\//, 'nothing from elsewhere');
      }
    });

    it('redirects /console and /phone to their directories, and answers If-None-Match with 304', async () => {
      const r = await fetch(`${s.httpUrl}/console`, { redirect: 'manual' });
      assert.equal(r.status, 301);
      assert.equal(r.headers.get('location'), '/console/');
      const js = await fetch(`${s.httpUrl}/phone/main.js`);
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type')!, /^text\/javascript/);
      const again = await fetch(`${s.httpUrl}/phone/main.js`, { headers: { 'if-none-match': js.headers.get('etag')! } });
      assert.equal(again.status, 304);
    });

    it('serves SIP.js\u2019s ES modules from node_modules, JavaScript only', async () => {
      const r = await fetch(`${s.httpUrl}/ui/vendor/sip.js/index.js`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type')!, /^text\/javascript/);
      assert.match(await r.text(), /export \* from "\.\/api\/index\.js"/);
      assert.equal((await fetch(`${s.httpUrl}/ui/vendor/sip.js/index.d.ts`)).status, 404);
    });

    it('never serves a file outside its roots', async () => {
      const port = s.http.port;
      for (const path of [
        '/ui/vendor/sip.js/../package.json',
        '/ui/vendor/sip.js/..%2fpackage.json',
        '/ui/vendor/sip.js/..%2f..%2f..%2fsrc%2fserver.ts',
        '/console/..%2f..%2froutes%2fconsole.ts',
        '/console/../../../package.json',
        '/phone/%2e%2e/%2e%2e/%2e%2e/%2e%2e/package.json',
        '/ui/shared/..%2f..%2f..%2f..%2f..%2fdata%2fswitchboard.db',
        '/console/%00index.html',
        '/console/..%5c..%5capp.ts',
        '/console/nothing-here.js',
      ]) {
        const r = await rawGet(port, path);
        assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
        assert.doesNotMatch(r.body, /"name": "switchboard"|import |SQLite/, path);
      }
    });

    it('tells clients the realms and the WSS port', async () => {
      const r = await fetch(`${s.httpUrl}/v1/client-config`);
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { realm: D, realms: [D], wssPort: s.portOf('WSS'), version: '0.1.0' });
    });
  });

  describe('registration filters', () => {
    let udp: SipTestClient;
    let tcp: SipTestClient;
    before(async () => {
      udp = await SipTestClient.open('UDP', s.sipPort);
      tcp = await SipTestClient.open('TCP', s.sipPort);
      const a = await register(udp, { user: 'alice', password: 'alice-pw', domain: D, expires: 600, headers: [['User-Agent', 'Phone-A/1.0']] });
      assert.equal(a.status, 200);
      const b = await register(tcp, { user: 'alice', password: 'alice-pw', domain: D, expires: 120, headers: [['User-Agent', 'Desk-B <lab>']] });
      assert.equal(b.status, 200);
      const c = await register(udp, { user: 'bob', password: 'bob-pw', domain: D, contact: '<sip:bob@192.0.2.7:5060>', expires: 3600, headers: [['User-Agent', 'Phone-A/2.0']] });
      assert.equal(c.status, 200);
    });
    after(() => {
      udp.close();
      tcp.close();
    });

    const list = async (q: string) => {
      const r = await fetch(`${s.httpUrl}/v1/registrations?${q}`, { headers: auth(admin) });
      assert.equal(r.status, 200, await r.clone().text());
      const body = (await r.json()) as { total: number; registrations: Array<{ aor: string; bindings: Array<{ transport: string; userAgent: string; expires: number }> }> };
      return { total: body.total, got: body.registrations.map((x) => [x.aor, x.bindings.map((b) => `${b.transport} ${b.userAgent}`)]) };
    };

    it('by transport, keeping only the matching bindings', async () => {
      assert.deepEqual(await list('transport=TCP'), { total: 1, got: [[`alice@${D}`, ['TCP Desk-B <lab>']]] });
      assert.deepEqual((await list('transport=UDP')).got, [[`alice@${D}`, ['UDP Phone-A/1.0']], [`bob@${D}`, ['UDP Phone-A/2.0']]]);
      assert.deepEqual(await list('transport=WSS'), { total: 0, got: [] });
    });

    it('by User-Agent substring, case-insensitive, with realm and user', async () => {
      assert.deepEqual((await list('userAgent=phone-a')).got, [[`alice@${D}`, ['UDP Phone-A/1.0']], [`bob@${D}`, ['UDP Phone-A/2.0']]]);
      assert.deepEqual((await list(`userAgent=PHONE-A&realm=${D}&user=bob`)).got, [[`bob@${D}`, ['UDP Phone-A/2.0']]]);
      assert.deepEqual(await list(`userAgent=nothing&realm=${D}&user=bob`), { total: 0, got: [] });
    });

    it('expiring within a number of seconds', async () => {
      assert.deepEqual((await list('expiringWithin=300')).got, [[`alice@${D}`, ['TCP Desk-B <lab>']]]);
      assert.deepEqual((await list('expiringWithin=900')).got.length, 1);
      assert.deepEqual((await list('expiringWithin=7200')).got.length, 2);
      assert.deepEqual((await list('expiringWithin=300&transport=UDP')).got, []);
    });

    it('refuses unknown transports and values out of range', async () => {
      for (const q of ['transport=SCTP', 'expiringWithin=-1', 'userAgent=', 'agent=x']) {
        const r = await fetch(`${s.httpUrl}/v1/registrations?${q}`, { headers: auth(admin) });
        assert.equal(r.status, 400, q);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'HTTP_ERR_VALIDATION');
      }
    });
  });

  describe('live events', () => {
    it('needs an admin or an API key with events.read', async () => {
      const none = await fetch(`${s.httpUrl}/v1/events`);
      assert.equal(none.status, 401);
      assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'HTTP_ERR_UNAUTHORIZED');
      const user = await fetch(`${s.httpUrl}/v1/events`, { headers: auth(userToken) });
      assert.equal(user.status, 403);
      const bad = await fetch(`${s.httpUrl}/v1/events?topics=binding.%7B`, { headers: auth(admin) });
      assert.equal(bad.status, 400);
      const adminAccount = await s.accounts.findByName('admin', D);
      const mk = async (permissions: string[]) => {
        const r = await fetch(`${s.httpUrl}/users/${adminAccount!.id}/api-keys`, { method: 'POST', headers: { ...auth(admin), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'feed', permissions }) });
        assert.equal(r.status, 201);
        return ((await r.json()) as { key: string }).key;
      };
      const withoutPermission = await fetch(`${s.httpUrl}/v1/events`, { headers: auth(await mk(['registrations.read'])) });
      assert.equal(withoutPermission.status, 403);
      const key = await fetch(`${s.httpUrl}/v1/events`, { headers: auth(await mk(['events.read'])) });
      assert.equal(key.status, 200);
      assert.match(key.headers.get('content-type')!, /^text\/event-stream/);
      const events = await readEvents(key, (e) => e.length >= 1);
      assert.equal(events[0].event, 'ready');
      // A non-admin cannot grant events.read to its own keys.
      const bob = await s.accounts.findByName('bob', D);
      const own = await fetch(`${s.httpUrl}/users/${bob!.id}/api-keys`, { method: 'POST', headers: { ...auth(userToken), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', permissions: ['events.read'] }) });
      assert.equal(own.status, 403);
    });

    it('streams binding and presence events, filtered by topic patterns', async () => {
      const all = await fetch(`${s.httpUrl}/v1/events`, { headers: auth(admin) });
      const presenceOnly = await fetch(`${s.httpUrl}/v1/events?topics=presence.%23`, { headers: auth(admin) });
      assert.equal(all.status, 200);
      const allEvents = readEvents(all, (e) => e.some((x) => x.event === 'presence.changed'));
      const presenceEvents = readEvents(presenceOnly, (e) => e.some((x) => x.event === 'presence.changed'));
      await new Promise((r) => setTimeout(r, 100));
      const c = await SipTestClient.open('UDP', s.sipPort);
      try {
        const r = await register(c, { user: 'bob', password: 'bob-pw', domain: D, contact: '<sip:bob@192.0.2.8:5060>', expires: 600, headers: [['User-Agent', 'evt']] });
        assert.equal(r.status, 200);
      } finally {
        c.close();
      }
      const bob = await s.accounts.findByName('bob', D);
      const put = await fetch(`${s.httpUrl}/users/${bob!.id}/presence`, { method: 'PUT', headers: { ...auth(admin), 'content-type': 'application/json' }, body: JSON.stringify({ basic: 'open', activities: ['busy'] }) });
      assert.equal(put.status, 200);
      const got = await allEvents;
      const added = got.find((e) => e.event.startsWith('binding.added.'));
      assert.ok(added, JSON.stringify(got));
      const data = JSON.parse(added.data) as { topic: string; at: number; payload: { aor: string; contact: string; userAgent: string } };
      assert.equal(data.topic, 'binding.added.example%2Etest.bob', 'binding.<event>.<domain>.<user>');
      assert.equal(data.payload.aor, `bob@${D}`);
      assert.equal(data.payload.contact, 'sip:bob@192.0.2.8:5060');
      assert.ok(Math.abs(data.at - Date.now()) < 10_000);
      const onlyPresence = await presenceEvents;
      assert.ok(onlyPresence.some((e) => e.event === 'presence.changed'));
      assert.ok(onlyPresence.every((e) => e.event === 'ready' || e.event.startsWith('presence.')), JSON.stringify(onlyPresence));
    });
  });

  describe('devices', () => {
    it('lists an account\u2019s devices for admins (none for an account without phone sign-up)', async () => {
      const bob = await s.accounts.findByName('bob', D);
      const r = await fetch(`${s.httpUrl}/users/${bob!.id}/devices`, { headers: auth(admin) });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { devices: [] });
      const self = await fetch(`${s.httpUrl}/users/${bob!.id}/devices`, { headers: auth(userToken) });
      assert.equal(self.status, 200);
      const alice = await s.accounts.findByName('alice', D);
      const other = await fetch(`${s.httpUrl}/users/${alice!.id}/devices`, { headers: auth(userToken) });
      assert.equal(other.status, 403);
      assert.equal((await fetch(`${s.httpUrl}/users/${alice!.id}/devices`)).status, 401);
    });

    it('lists a phone account\u2019s devices', async () => {
      const p = await startPhoneServer();
      try {
        const number = nextNumber();
        const up = await signUp(p, number, { attributes: { name: 'Pixel' } });
        const token = await adminToken(p, `admin@${D}`);
        const r = await fetch(`${p.httpUrl}/users/${up.uuid}/devices`, { headers: auth(token) });
        assert.equal(r.status, 200);
        const { devices } = (await r.json()) as { devices: Array<{ id: number; name: string | null; created: number; lastSeen: number }> };
        assert.equal(devices.length, 1);
        assert.equal(devices[0].id, 1);
        assert.equal(devices[0].name, 'Pixel');
        assert.ok(devices[0].created > 0 && devices[0].lastSeen > 0);
      } finally {
        await p.close();
      }
    });
  });
});

describe('event stream lifecycle', () => {
  // A bare app with a fake authenticator whose answers the test flips.
  const setup = async () => {
    const bus = new InProcessBus(createLogger('silent'));
    let valid = true;
    const auth = {
      tokens: {
        verify: async (t: string) => {
          if (t !== 'good' || !valid) throw new TokenError('invalid_token', 'token expired');
          return { sub: 'a1', exp: Date.now() / 1000 + 60, roles: ['admin'] };
        },
      },
      apiKeys: { verify: async () => null },
    } as unknown as Authenticator;
    const app = Fastify();
    await app.register(eventRoutes, { bus, auth, recheckMs: 50, heartbeatMs: 30 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/events`;
    return { bus, app, url, expire: () => (valid = false) };
  };

  it('ends with auth-expired once the token no longer verifies, and sends keep-alives meanwhile', async () => {
    const { bus, app, url, expire } = await setup();
    try {
      const res = await fetch(url, { headers: { authorization: 'Bearer good' } });
      assert.equal(res.status, 200);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const deadline = Date.now() + 3000;
      bus.publish('binding.added', { aor: 'x@y' });
      while (!text.includes(': keep-alive') && Date.now() < deadline) text += (await reader.read()).value ?? '';
      assert.match(text, /event: binding\.added\ndata: \{"topic":"binding\.added","at":\d+,"payload":\{"aor":"x@y"\}\}/);
      expire();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      assert.match(text, /event: auth-expired\n/);
    } finally {
      await app.close();
      await bus.close();
    }
  });

  it('lets the server close while streams are open, and drops its bus subscription when the last one goes', async () => {
    const { bus, app, url } = await setup();
    const subs = () => bus.size;
    const a = await fetch(url, { headers: { authorization: 'Bearer good' } });
    const b = await fetch(url, { headers: { authorization: 'Bearer good' } });
    assert.equal(subs(), 1, 'one bus subscription for every stream');
    await b.body!.cancel();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(subs(), 1);
    const t0 = Date.now();
    const closing = app.close();
    const rest = await a.text();
    console.log('text', Date.now() - t0);
    assert.match(rest, /event: shutdown/);
    await closing;
    console.log('closed', Date.now() - t0);
    assert.equal(subs(), 0);
    await bus.close();
  });
});
