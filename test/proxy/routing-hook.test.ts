// The routing hook over real sockets: --routing-module (a module file) and server.onRoute (the library API) decide
// a call's targets or its rejection before the default routing; 'default' leaves the call to the location
// service; a hook that throws or answers nonsense fails the call with 500 rather than routing it by default.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, reply, waitFor } from '../helpers/sip-ua.ts';

const D = 'example.test';
const users: Record<string, string> = { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' };

describe('the call routing hook', () => {
  let server: TestServer;
  let desk: SipTestClient;
  let caller: SipTestClient;
  let dir: string;
  const seen: string[] = [];
  before(async () => {
    desk = await SipTestClient.open('UDP', 9);
    dir = mkdtempSync(path.join(tmpdir(), 'route-'));
    const file = path.join(dir, 'route.mjs');
    writeFileSync(file, [
      'export function route(call) {',
      `  if (call.callee === 'support@${D}') return { targets: ['sip:desk@127.0.0.1:${desk.localPort}'] };`,
      `  if (call.callee === 'blocked@${D}') return { reject: 603, reason: 'Declined by policy' };`,
      `  if (call.callee === 'broken@${D}') throw new Error('bug in the hook');`,
      `  if (call.callee === 'nonsense@${D}') return { targets: ['sip:pbx.example.net'] };`,
      "  return 'default';",
      '}',
    ].join('\n'));
    server = await startTestServer({ users, flags: { 'routing-module': file } });
    server.onRoute((call) => {
      seen.push(`${call.from}>${call.callee}:${call.caller.identity}`);
      return call.callee === `later@${D}` ? { reject: 480, reason: 'Gone fishing' } : 'default';
    });
    caller = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    for (const c of [desk, caller]) c.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const dial = async (callee: string) => {
    const k = new Call(caller, { from: `<sip:alice@${D}>`, to: `<sip:${callee}@${D}>`, uri: `sip:${callee}@${D}`, user: 'alice', password: users[`alice@${D}`] });
    await k.start();
    return k;
  };
  const final = async (k: Call) => {
    const r = await k.response((s) => s >= 200);
    if (r.status >= 300) caller.send(k.ackFor(r));
    return r;
  };

  it('rings the targets the module returns (a user that does not exist here)', async () => {
    const k = await dial('support');
    const inv = await waitFor(desk, isRequest('INVITE'));
    assert.match(inv.startLine, /^INVITE sip:desk@127\.0\.0\.1:\d+ SIP\/2\.0/);
    assert.ok(inv.header('Record-Route'), 'Record-Routed as any call');
    desk.sendTo(reply(inv, 486, { toTag: 'd' }), server.sipPort);
    assert.equal((await final(k)).status, 486);
  });

  it("answers the module's rejection, and the library hook's when the module says default", async () => {
    const blocked = await final(await dial('blocked'));
    assert.equal(blocked.status, 603);
    assert.match(blocked.startLine, /Declined by policy/);
    const later = await final(await dial('later'));
    assert.equal(later.status, 480);
    assert.ok(seen.includes(`alice@${D}>later@${D}:alice@${D}`), 'the library hook saw the authenticated caller');
  });

  it('leaves other calls to the default routing', async () => {
    const phone = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(phone, { user: 'bob', password: users[`bob@${D}`], domain: D, expires: 300 })).status, 200);
      const k = await dial('bob');
      const inv = await waitFor(phone, isRequest('INVITE'));
      phone.send(reply(inv, 486, { toTag: 'b' }));
      assert.equal((await final(k)).status, 486);
      assert.equal((await final(await dial('nobody'))).status, 404);
    } finally {
      phone.close();
    }
  });

  it('fails the call with 500 when the hook throws or returns a target with a host name', async () => {
    assert.equal((await final(await dial('broken'))).status, 500);
    assert.equal((await final(await dial('nonsense'))).status, 500);
  });
});
