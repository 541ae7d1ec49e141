// SIP MESSAGE from sipsak (issue 18's "Done when"): to a user whose baresip is registered, baresip shows the text
// and sipsak gets 200; to a user with no device, 202 Accepted and the message waits in the store; the server is
// killed with SIGKILL after that 202 and started again, and when the user's baresip registers it shows the text and
// the message is gone from the store.
//
// sipsak 0.9.8.1 (Debian) segfaults in its message mode (-M) before it sends anything, with any server or none
// (seen against this server, a SIPp UAS and a closed port): for -M it builds, besides the MESSAGE, the 200 OK it
// would answer to itself into its reply buffer, which only the usrloc mode (-U) allocates, and sprintf writes to
// NULL (gdb: __vsprintf_internal, string=0x0, format "%s%ssip:sipsak@%s:%i;tag=%x\r\n%ssip:%s%s;tag=%o%o..." from
// create_msg's REQ_MES case). -U -M registers sipsak itself and messages itself, which is not this test. So the
// MESSAGE is sipsak's shoot mode (-f, the request from a file), which answers the 407 with -u/-a like any request.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBaresip, type Baresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { addUsers, spawnServer, startTestServer, storeQuery, tempDir, testConfig, type ChildServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

/** sipsak's shoot mode: bob's MESSAGE to `to` (a file sipsak sends, CR inserted), the final response line it saw. */
function sipsakMessage(port: number, dir: string, to: string, text: string): Promise<{ code: number | null; output: string }> {
  const file = path.join(dir, `${to}-${Math.random().toString(36).slice(2)}.sip`);
  const head = [
    `MESSAGE sip:${to}@${D} SIP/2.0`,
    `From: <sip:bob@${D}>;tag=sipsak${Math.random().toString(36).slice(2, 8)}`,
    `To: <sip:${to}@${D}>`,
    `Call-ID: sipsak-${Math.random().toString(36).slice(2)}@127.0.0.1`,
    'CSeq: 1 MESSAGE',
    'Max-Forwards: 70',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(text)}`,
  ];
  writeFileSync(file, `${head.join('\n')}\n\n${text}`);
  return new Promise((resolve) => {
    const proc = spawn('sipsak', ['-vvv', '-f', file, '-s', `sip:${to}@127.0.0.1:${port}`, '-u', 'bob', '-a', 'bob-pw'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The status of the last response sipsak printed. */
const finalStatus = (output: string) => Number([...output.matchAll(/^SIP\/2\.0 (\d{3}) /gm)].at(-1)?.[1]);

describe('SIP MESSAGE from sipsak', { skip: missingPeer('sipsak', 'baresip') }, () => {
  let server: TestServer;
  let alice: Baresip;
  let dir: string;
  before(async () => {
    dir = tempDir('sb-sipsak-msg-');
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw' } });
    alice = startBaresip({ port: server.sipPort, user: 'alice', password: 'alice-pw', domain: D, transport: 'udp', modules: ['menu.so'] });
    await alice.waitFor(/200 OK \(Switchboard\) \[1 binding\]/, 15_000);
  });
  after(async () => {
    await alice?.stop();
    await server.close();
  });

  const waiting = async () => Number((await storeQuery<{ n: number }>(server.dataDir, 'SELECT COUNT(*) AS n FROM messages WHERE delivered_at IS NULL'))[0]!.n);

  it('to a user whose baresip is registered: baresip shows the text, sipsak gets 200', async () => {
    const r = await sipsakMessage(server.sipPort, dir, 'alice', 'hello from sipsak');
    assert.equal(r.code, 0, r.output.slice(-3000));
    assert.match(r.output, /SIP\/2\.0 407 /, 'challenged like a caller');
    assert.equal(finalStatus(r.output), 200, r.output.slice(-3000));
    await alice.waitFor(/hello from sipsak/, 10_000);
    assert.equal(await waiting(), 0);
  });

  it('to a user with no device: 202, and the message waits in the store', async () => {
    const r = await sipsakMessage(server.sipPort, dir, 'carol', 'for later');
    assert.equal(finalStatus(r.output), 202, r.output.slice(-3000));
    assert.equal(await waiting(), 1);
  });

  it('SIGKILL between the 202 and the delivery loses nothing: the user’s baresip registers after the restart and shows it', async () => {
    const dataDir = tempDir('sb-sipsak-kill-');
    await addUsers(testConfig(dataDir), { [`bob@${D}`]: 'bob-pw', [`dave@${D}`]: 'dave-pw' });
    const pending = async () => Number((await storeQuery<{ n: number }>(dataDir, 'SELECT COUNT(*) AS n FROM messages WHERE delivered_at IS NULL'))[0]!.n);
    let child: ChildServer | null = await spawnServer(dataDir);
    let dave: Baresip | null = null;
    try {
      const r = await sipsakMessage(child.sipPort, dir, 'dave', 'kept across a kill');
      assert.equal(finalStatus(r.output), 202, r.output.slice(-3000));
      await child.kill('SIGKILL');
      child = await spawnServer(dataDir);
      assert.equal(await pending(), 1, 'still in the store after SIGKILL');
      dave = startBaresip({ port: child.sipPort, user: 'dave', password: 'dave-pw', domain: D, transport: 'udp', modules: ['menu.so'] });
      await dave.waitFor(/kept across a kill/, 15_000);
      for (let i = 0; (await pending()) > 0 && i < 50; i++) await new Promise((res) => setTimeout(res, 100));
      assert.equal(await pending(), 0, 'gone from the store once delivered');
    } finally {
      await dave?.stop();
      await child?.kill('SIGTERM');
    }
  });
});
