// SSRF through linked accounts: the server a user names must not let a connector reach this deployment's insides.
// The policy itself (ranges, allow, deny, names); the HTTP refusal at linking (a clear 400 from the catalogue, for an
// address, a name resolving to loopback, the metadata service, and a type no connector serves); and the connector's
// own check right before it connects, against a real listening socket: refused, the socket sees no connection and
// the link says `unreachable: address not allowed`; allowed, it connects to the address it checked, not the name.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Connector } from '../../src/bridge/connector.ts';
import { PROTOCOLS } from '../../src/bridge/registry.ts';
import { seal } from '../../src/bridge/sealed-box.ts';
import { ServerPolicy, splitServer } from '../../src/bridge/server-policy.ts';
import { sessionBoxAad, TOPIC, type StateReport } from '../../src/bridge/wire.ts';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { createLogger } from '../../src/log.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { http, type Json } from '../messaging/helpers.ts';
import { passwordSession } from './helpers.ts';

const log = createLogger('silent');
const policy = (o: Partial<ConstructorParameters<typeof ServerPolicy>[0]> = {}) => new ServerPolicy({ allow: [], deny: [], listen: [], ...o });
const names = (table: Record<string, string[]>) => async (host: string) => {
  if (!(host in table)) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  return table[host];
};

describe('bridge server policy: the ranges, allow and deny', () => {
  it('refuses loopback, private, ULA, link-local, CGNAT, multicast, unspecified and IPv4-mapped forms of them; lets public addresses through', async () => {
    const p = policy();
    for (const s of ['127.0.0.1:6379', '127.8.9.10', '10.1.2.3:5222', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '100.127.255.254', '224.0.0.1', '0.0.0.0', '[::1]:5222', '[::]', '[fc00::1]', '[fd12:3456::1]', '[fe80::1]', '[ff02::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]:6379', '[::ffff:169.254.169.254]:80']) {
      const r = await p.check(s);
      assert.equal(r.ok, false, `${s} refused`);
      assert.match(!r.ok ? r.reason : '', /^address not allowed/);
    }
    for (const s of ['93.184.216.34:5222', '100.128.0.1', '172.32.0.1', '[2001:4860::8888]:5222']) assert.equal((await p.check(s)).ok, true, `${s} allowed`);
  });

  it('checks every address a name resolves to: one refused address refuses the name', async () => {
    const p = policy({ resolve: names({ 'mixed.example': ['93.184.216.34', '127.0.0.1'], 'public.example': ['93.184.216.34'] }) });
    const mixed = await p.check('mixed.example:5222');
    assert.equal(mixed.ok, false);
    assert.match(!mixed.ok ? mixed.reason : '', /mixed\.example resolves to 127\.0\.0\.1/);
    assert.deepEqual(await p.check('public.example'), { ok: true, host: 'public.example', port: null, addresses: ['93.184.216.34'] });
    const missing = await p.check('nowhere.example');
    assert.equal(missing.ok, false);
    assert.match(!missing.ok ? missing.reason : '', /does not resolve \(ENOTFOUND\)/);
  });

  it('--bridge-allow-servers (CIDRs, names) lets through; --bridge-deny-servers wins; own listen addresses are refused', async () => {
    const resolve = names({ 'xmpp.corp.example': ['10.9.8.7'], 'other.corp.example': ['10.9.8.8'], 'blocked.example': ['93.184.216.34'] });
    const p = policy({ allow: ['127.0.0.1', '10.9.0.0/16', 'other.corp.example'], deny: ['10.9.8.7', 'blocked.example', '198.51.100.0/24'], listen: ['203.0.113.5'], resolve });
    assert.equal((await p.check('127.0.0.1:5222')).ok, true);
    assert.equal((await p.check('127.0.0.2:5222')).ok, false, 'only the allowed address of loopback');
    assert.equal((await p.check('10.9.1.1')).ok, true, 'in the allowed CIDR');
    assert.equal((await p.check('other.corp.example')).ok, true, 'an allowed name');
    assert.equal((await p.check('xmpp.corp.example')).ok, false, 'allowed by CIDR, but its address is denied');
    assert.equal((await p.check('blocked.example')).ok, false, 'a denied name');
    assert.equal((await p.check('198.51.100.7')).ok, false, 'a denied CIDR');
    const own = await p.check('203.0.113.5:8080');
    assert.match(!own.ok ? own.reason : '', /an address of this deployment/);
    assert.throws(() => policy({ allow: ['10.0.0.0/33'] }), /--bridge-allow-servers/);
  });

  it('splits host, host:port and bracketed IPv6 forms, and nothing else', () => {
    assert.deepEqual(splitServer('Jabber.Example.ORG'), { host: 'jabber.example.org', port: null });
    assert.deepEqual(splitServer('[2001:db8::1]:5222'), { host: '2001:db8::1', port: 5222 });
    assert.equal(splitServer('a:b:c'), null);
    assert.equal(splitServer('host:99999'), null);
  });
});

describe('bridge server policy over HTTP and in the connector', () => {
  let server: TestServer;
  let open: TestServer;
  let listener: Server;
  let port: number;
  let accepted = 0;

  before(async () => {
    listener = createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    port = (listener.address() as { port: number }).port;
    server = await startTestServer({ users: { 'carol@example.test': 'carol-password-1' }, flags: { 'bridge-connectors': ['xmpp'] } });
    open = await startTestServer({ users: { 'carol@example.test': 'carol-password-1' }, flags: { 'bridge-allow-servers': '127.0.0.1' } });
  });
  after(async () => {
    await server?.close();
    await open?.close();
    await new Promise((r) => listener?.close(r));
  });

  const link = (t: TestServer, auth: string, body: Record<string, unknown>) =>
    http(t.httpUrl, 'POST', '/v1/linked-accounts', { auth, body: { type: 'xmpp', username: 'alice@example.org', password: 'pw-1', ...body } });

  it('refuses at linking 127.0.0.1, a name resolving to it, the metadata service and a private address: 400 from the catalogue, no connection', async () => {
    const s = await passwordSession(server.httpUrl, 'carol@example.test', 'carol-password-1');
    for (const target of [`127.0.0.1:${port}`, `localhost:${port}`, '169.254.169.254', '10.0.0.1:5222', `[::1]:${port}`]) {
      const r = await link(server, s.auth, { server: target });
      assert.equal(r.status, 400, `${target}: ${JSON.stringify(r.json)}`);
      assert.equal((r.json.error as Json).code, 'BRIDGE_ERR_SERVER_NOT_ALLOWED', target);
      assert.match(String((r.json.error as Json).message), /address not allowed/);
    }
    const list = await http(server.httpUrl, 'GET', '/v1/linked-accounts', { auth: s.auth });
    assert.deepEqual(list.json.linkedAccounts, [], 'nothing stored');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(accepted, 0, 'no connection reached the listener');
  });

  it('refuses at linking a type no connector of this deployment serves (sip, with --bridge-connectors xmpp), naming the served ones', async () => {
    const s = await passwordSession(server.httpUrl, 'carol@example.test', 'carol-password-1');
    const r = await link(server, s.auth, { type: 'sip', server: 'sip.example.org' });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal((r.json.error as Json).code, 'BRIDGE_ERR_TYPE_NOT_SERVED');
    assert.match(String((r.json.error as Json).message), /no connector serves sip here; served: xmpp/);
  });

  it('with --bridge-allow-servers 127.0.0.1 the same link is made, and its connector connects', async () => {
    const s = await passwordSession(open.httpUrl, 'carol@example.test', 'carol-password-1');
    const before = accepted;
    const r = await link(open, s.auth, { server: `127.0.0.1:${port}` });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const until = Date.now() + 10_000;
    while (accepted === before && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
    assert.ok(accepted > before, 'the connector connected to the allowed server');
    assert.equal((await http(open.httpUrl, 'DELETE', `/v1/linked-accounts/${r.json.id as string}`, { auth: s.auth })).status, 204);
  });

  /** A connector on a bus of its own, handed one Connection Request; its state reports. */
  async function connectWith(p: ServerPolicy, server: string): Promise<{ states: StateReport[]; stop(): Promise<void> }> {
    const bus = new InProcessBus(log);
    const connector = new Connector({ bus, master: Buffer.alloc(32, 7), types: ['xmpp'], protocols: PROTOCOLS, policy: p, node: 'test', log });
    const states: StateReport[] = [];
    bus.subscribe(TOPIC.state, (m) => void states.push(m.payload as unknown as StateReport));
    await connector.start();
    const ids = { accountId: 'acct-1', linkedAccountId: 'link-1' };
    const sealed = seal(connector.announcement().publicKey, Buffer.from('pw-1'), sessionBoxAad(connector.id, ids));
    bus.publish(TOPIC.connect(connector.id), { ...ids, type: 'xmpp', server, username: 'alice@example.org', options: {}, sealed, via: 'session' });
    return { states, stop: () => connector.stop() };
  }

  it('the connector checks again right before connecting: refused, the link is unreachable "address not allowed" and no connection is made', async () => {
    const before = accepted;
    const c = await connectWith(policy(), `127.0.0.1:${port}`);
    try {
      const until = Date.now() + 5000;
      while (!c.states.some((s) => s.state === 'unreachable') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const s = c.states.find((x) => x.state === 'unreachable');
      assert.ok(s, JSON.stringify(c.states));
      assert.match(String(s.reason), /^address not allowed: 127\.0\.0\.1 is a loopback/);
      assert.ok(!c.states.some((x) => x.state === 'connecting'), 'no attempt began');
      await new Promise((r) => setTimeout(r, 1500)); // past the first backoff retry (1 s): refused again, still no connection
      assert.equal(accepted, before, 'the listening socket saw no connection');
    } finally {
      await c.stop();
    }
  });

  it('allowed, it connects to the address it checked, not to the name resolved again (a name only the policy knows)', async () => {
    const before = accepted;
    const c = await connectWith(policy({ allow: ['127.0.0.1'], resolve: names({ 'xmpp.rebind.invalid': ['127.0.0.1'] }) }), `xmpp.rebind.invalid:${port}`);
    try {
      const until = Date.now() + 10_000;
      while (accepted === before && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.ok(accepted > before, `the listener saw the connection to the checked address (${JSON.stringify(c.states)})`);
    } finally {
      await c.stop();
    }
  });
});
