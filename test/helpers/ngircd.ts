// A real ngircd (Debian's ngircd, installed by .ci/run) for the IRC link's tests: its own configuration in a temp
// dir, a port from the kernel, a server password so a wrong one can be shown, and optionally a TLS port with a
// self-signed certificate. Never the system instance.

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { selfSignedCertificate } from '../../src/certificates.ts';
import { missingPeer } from './peers.ts';

export interface Ngircd {
  port: number;
  tlsPort: number | null;
  password: string;
  /** What ngircd wrote (stderr: its log with -n). */
  log(): string;
  /** SIGKILL: the server vanishes as after a crash. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export function ngircdMissing(): string | false {
  return missingPeer('ngircd');
}

/** A free TCP port on 127.0.0.1, from the kernel (bind 0, close). */
export async function kernelPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port; throws after `deadline` (ms since the epoch). */
export async function waitAccepting(port: number, deadline: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing accepting on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNgircd(o: { password?: string; tls?: boolean } = {}): Promise<Ngircd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-ngircd-'));
  chmodSync(dir, 0o755); // ngircd drops root for "nobody" and still reads its files
  const port = await kernelPort();
  const tlsPort = o.tls ? await kernelPort() : null;
  const password = o.password ?? 'server-pass';
  let ssl = '';
  if (tlsPort !== null) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(dir, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o644 });
    writeFileSync(path.join(dir, 'cert.pem'), selfSignedCertificate(privateKey, ['localhost', '127.0.0.1'], 1));
    ssl = `[SSL]\n\tCertFile = ${dir}/cert.pem\n\tKeyFile = ${dir}/key.pem\n\tPorts = ${tlsPort}\n`;
  }
  const conf = path.join(dir, 'ngircd.conf');
  writeFileSync(conf, `[Global]
\tName = irc.test.invalid
\tInfo = Switchboard test server
\tAdminInfo1 = test
\tAdminInfo2 = test
\tAdminEMail = test@test.invalid
\tListen = 127.0.0.1
\tPorts = ${port}
\tPassword = ${password}
\tPidFile = ${dir}/ngircd.pid
\tMotdPhrase = "test"
[Limits]
\tMaxConnectionsIP = 0
\tMaxNickLength = 30
\tPingTimeout = 120
\tPongTimeout = 20
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
${ssl}`);
  const proc: ChildProcess = spawn('ngircd', ['--nodaemon', '--config', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    await waitAccepting(port, Date.now() + 10_000);
    if (tlsPort !== null) await waitAccepting(tlsPort, Date.now() + 10_000);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${out}`, { cause: err });
  }
  const end = async (signal: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  return {
    port,
    tlsPort,
    password,
    log: () => out,
    kill: () => end('SIGKILL'),
    stop: async () => {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
