// A real IRC network with services for the IRC link's SASL and NickServ tests: Debian's InspIRCd 3 (m_sasl,
// m_services_account) linked to Atheme (SaslServ with PLAIN, NickServ), both installed by .ci/run, each with its
// own configuration in a temp dir and ports from the kernel. ngircd (ngircd.ts) has no SASL and no services.
// Atheme refuses to run as root: under root it runs as nobody (setpriv, which execs, so the pid is Atheme's).

import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { kernelPort, waitAccepting } from './ngircd.ts';
import { missingPeer } from './peers.ts';

/** Debian puts Atheme's modules under the multiarch lib directory (/usr/lib/<triplet>/atheme/modules). */
function athemeModules(): string {
  for (const d of ['', ...readdirSync('/usr/lib')]) {
    const m = path.join('/usr/lib', d, 'atheme/modules');
    if (existsSync(m)) return m;
  }
  throw new Error('Atheme modules not found under /usr/lib');
}
const NOBODY = 65534;

export function inspircdMissing(): string | false {
  return missingPeer('inspircd', 'atheme-services', 'setpriv');
}

export interface IrcNetwork {
  port: number;
  log(): string;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], out: { text: string }): { proc: ChildProcess; exited: Promise<void> } {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (out.text += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out.text += d.toString()));
  return { proc, exited: new Promise<void>((r) => proc.once('exit', () => r())) };
}

export async function startInspircdWithServices(): Promise<IrcNetwork> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-inspircd-'));
  const root = process.getuid?.() === 0;
  if (root) chownSync(dir, NOBODY, NOBODY); // Atheme writes its database here
  const port = await kernelPort();
  const linkPort = await kernelPort();
  const linkPass = `link-${process.pid}-${Date.now()}`;
  writeFileSync(path.join(dir, 'inspircd.conf'), `<server name="irc.test.invalid" description="test" network="TestNet" id="1SB">
<admin name="test" nick="test" email="test@test.invalid">
<bind address="127.0.0.1" port="${port}" type="clients">
<bind address="127.0.0.1" port="${linkPort}" type="servers">
<connect name="main" allow="*" timeout="60" pingfreq="120" sendq="262144" recvq="8192" threshold="100" commandrate="100000" fakelag="no" localmax="1000" globalmax="1000" useident="no" limit="5000" maxconnwarn="off">
<module name="spanningtree">
<module name="sasl">
<module name="services_account">
<module name="cap">
<link name="services.test.invalid" ipaddr="127.0.0.1" port="${linkPort}" allowmask="127.0.0.0/8" hidden="no" sendpass="${linkPass}" recvpass="${linkPass}">
<uline server="services.test.invalid" silent="yes">
<sasl target="services.test.invalid">
<pid file="${dir}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="${dir}/inspircd.log">
<dns timeout="1">
`);
  const mods = ['protocol/inspircd', 'backend/opensex', 'crypto/pbkdf2v2', 'nickserv/main', 'nickserv/identify', 'nickserv/register', 'saslserv/main', 'saslserv/plain'];
  const modules = athemeModules();
  writeFileSync(path.join(dir, 'atheme.conf'), `${mods.map((m) => `loadmodule "${modules}/${m}";`).join('\n')}
serverinfo {
  name = "services.test.invalid"; desc = "services"; numeric = "00A"; recontime = 2; netname = "TestNet";
  hidehostsuffix = "users.test"; adminname = "test"; adminemail = "test@test.invalid"; registeremail = "test@test.invalid";
  mta = "/bin/true"; loglevel = { error; info; }; maxlogins = 5; maxusers = 50; mdlimit = 30; emaillimit = 10;
  emailtime = 300; auth = none; casemapping = rfc1459;
};
uplink "irc.test.invalid" { host = "127.0.0.1"; password = "${linkPass}"; port = ${linkPort}; };
nickserv { nick = "NickServ"; user = "NickServ"; host = "services.test"; real = "Nickname Services"; maxnicks = 5; expire = 30; };
saslserv { nick = "SaslServ"; user = "SaslServ"; host = "services.test"; real = "SASL"; };
general {
  flood_msgs = 100; flood_time = 10; ratelimit_uses = 100; ratelimit_period = 60; kline_time = 7; commit_interval = 5;
  uplink_sendq_limit = 1048576; language = "en"; immune_level = immune;
};
`);
  const out = { text: '' };
  const ircd = run('inspircd', [...(root ? ['--runasroot'] : []), '--nofork', `--config=${dir}/inspircd.conf`], out);
  const athemeArgs = ['-n', '-c', `${dir}/atheme.conf`, '-D', dir, '-l', `${dir}/atheme.log`, '-p', `${dir}/atheme.pid`];
  let services: ReturnType<typeof run> | null = null;
  const stop = async () => {
    for (const p of [services, ircd]) {
      if (p && p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
      await p?.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitAccepting(port, Date.now() + 15_000);
    services = root
      ? run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'atheme-services', ...athemeArgs], out)
      : run('atheme-services', athemeArgs, out);
    // Services are there once Atheme has finished its burst with InspIRCd.
    for (const deadline = Date.now() + 15_000; !/finished synching with uplink/.test(out.text); ) {
      if (Date.now() > deadline) throw new Error('Atheme did not link to InspIRCd');
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${out.text}`, { cause: err });
  }
  return { port, log: () => out.text, stop };
}
