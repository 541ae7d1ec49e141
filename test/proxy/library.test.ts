// The library entry (src/index.ts): the package imported by its name (self-reference through package.json
// `exports`), a server created and listening in a few lines, its calls routed by `server.onRoute` with the
// --routing-module contract: targets rung (a raw UDP desk phone that never registered), a rejection, 'default'.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createServer, type RouteCall, type Server } from 'switchboard';
import { addUsers, tempDir, testConfig } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, reply, waitFor } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw' };

describe("createServer from 'switchboard', calls routed by onRoute", () => {
  const dir = tempDir('sb-library-');
  const open: SipTestClient[] = [];
  const seen: RouteCall[] = [];
  let server: Server;
  let sipPort: number;
  let desk: SipTestClient;

  const call = (c: SipTestClient, callee: string) =>
    new Call(c, { from: `<sip:alice@${D}>`, to: `<sip:${callee}@${D}>`, uri: `sip:${callee}@${D}`, user: 'alice', password: users[`alice@${D}`] });
  const client = async () => {
    const c = await SipTestClient.open('UDP', sipPort);
    open.push(c);
    return c;
  };

  before(async () => {
    // The embedded store whatever the test pass: this is about the entry point, not the adapters.
    await addUsers(testConfig(dir, { database: 'sqlite', cache: 'memory', bus: 'memory' }), users);
    server = createServer({
      config: {
        dataDir: dir,
        realms: [D],
        logLevel: process.env.SWITCHBOARD_TEST_LOG ?? 'silent',
        sip: { hosts: ['127.0.0.1'], port: 0, transports: ['UDP'] },
        http: { host: '127.0.0.1', port: 0 },
        storage: { database: 'sqlite', cache: 'memory' },
        bus: { url: 'memory' },
      },
      env: {},
    });
    server.onRoute(async (c) => {
      seen.push(c);
      if (c.callee === `desk@${D}`) return { targets: [`sip:desk@127.0.0.1:${desk.localPort}`] };
      if (c.callee === `blocked@${D}`) return { reject: 603, reason: 'Declined' };
      return 'default';
    });
    const running = await server.listen();
    assert.equal(server.running, running);
    sipPort = running.sip[0].port;
    desk = await client();
  });
  after(async () => {
    for (const c of open) c.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('rings the targets the hook returns: the desk phone answers and the caller gets its 200', async () => {
    const c = await client();
    const k = call(c, 'desk');
    await k.start();
    const invite = await waitFor(desk, isRequest('INVITE'));
    assert.equal(invite.startLine, `INVITE sip:desk@127.0.0.1:${desk.localPort} SIP/2.0`);
    desk.send(reply(invite, 200, { toTag: 'desk', headers: [['Contact', `<sip:desk@127.0.0.1:${desk.localPort}>`]] }));
    const ok = await k.response((s) => s === 200);
    assert.match(ok.header('To')!, /tag=desk/);
    const asked = seen.find((s) => s.callId === k.callId)!;
    assert.equal(asked.caller.authenticated, true);
    assert.equal(asked.caller.identity, `alice@${D}`);
    assert.equal(asked.from, `alice@${D}`);
  });

  it("answers the hook's rejection, and 'default' leaves the call to the location service (404 for an unknown user)", async () => {
    const c = await client();
    const blocked = call(c, 'blocked');
    await blocked.start();
    const r = await blocked.response((s) => s >= 200);
    assert.equal(r.status, 603);
    assert.match(r.startLine, /Declined/);
    c.send(blocked.ackFor(r));
    const nobody = call(c, 'nobody');
    await nobody.start();
    assert.equal((await nobody.response((s) => s >= 200)).status, 404);
  });
});
