// linphonec (Debian linphone-cli, liblinphone 5.1) as a callee through the proxy, called by baresip (issue 17).
// Why it "did not send a REGISTER" in a first try: liblinphone 5 opens its database under
// $HOME/.local/share/linphone and, when that directory is missing, gives up starting its core without a word on
// stdout (the log says "Unable to open linphone database"), so no account ever registers. With the directory
// created it registers, auto-answers (-a), and the call is up with media until the caller hangs up.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startBaresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('calls to linphonec', { skip: missingPeer('linphonec', 'baresip') }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`carol@${D}`]: 'carol-pw' } });
  });
  after(() => server.close());

  it('baresip calls linphonec, which registered with Digest and auto-answers; the caller hangs up', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'linphonec-'));
    mkdirSync(path.join(dir, '.local/share/linphone'), { recursive: true }); // without it: no core, no REGISTER
    writeFileSync(path.join(dir, 'rc'), [
      '[sip]', 'sip_port=-1', 'default_proxy=0', '',
      '[proxy_0]', `reg_proxy=<sip:127.0.0.1:${server.sipPort};transport=udp>`, `reg_identity=sip:carol@${D}`, 'reg_expires=600', 'reg_sendregister=1', '',
      '[auth_info_0]', 'username=carol', 'passwd=carol-pw', `realm=${D}`, `domain=${D}`, '',
    ].join('\n'));
    const callee: ChildProcess = spawn('linphonec', ['-c', path.join(dir, 'rc'), '-a', '-d', '0'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: dir } });
    let out = '';
    callee.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    callee.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const caller = startBaresip({
      port: server.sipPort, user: 'alice', password: 'alice-pw', domain: D, transport: 'udp',
      modules: ['opus.so', 'g711.so', 'ausine.so', 'aufile.so', 'menu.so'],
      config: ['audio_source\t\tausine,440', 'audio_player\t\taufile,/dev/null', 'audio_alert\t\taufile,/dev/null'],
      ctrlPort: await freePort(),
    });
    try {
      await until(async () => (await server.location.lookup(`carol@${D}`)).some((b) => /^Linphonec\//.test(b.userAgent ?? '')), 'linphonec to register');
      await caller.waitFor(/200 OK \(Switchboard\)/);
      await caller.command('dial', `sip:carol@${D}`);
      await until(async () => /ESTABLISHED/.test(await caller.command('listcalls')), 'the call to be established');
      await until(() => /Media streams established with sip:alice@example\.test/.test(out), 'linphonec to start media');
      await caller.command('hangup');
      await until(async () => /Active calls \(0\)/.test(await caller.command('listcalls')), 'the call to end');
      await until(() => /Call \d+ with sip:alice@example\.test ended/.test(out), 'linphonec to see the BYE');
      assert.match(out, /auto answering/);
    } finally {
      callee.stdin!.write('quit\n');
      await new Promise((r) => setTimeout(r, 500));
      callee.kill('SIGKILL');
      await caller.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
