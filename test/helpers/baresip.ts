// baresip as a headless SIP peer for interop tests: a config directory with no audio, video or UI modules, one
// account registering through the server under test, optional modules (contact, presence) and ctrl_tcp to send it
// commands as a user would. `-s` prints the SIP trace, which the tests read.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface BaresipOptions {
  /** The server's SIP port on 127.0.0.1 (the account's outbound proxy). */
  port: number;
  user: string;
  password: string;
  domain: string;
  transport: 'udp' | 'tcp';
  regint?: number;
  /** Extra account parameters, e.g. ';pubint=60'. */
  accountParams?: string;
  /** Lines of the contacts file (address book), e.g. '"Bob" <sip:bob@example.test>;presence=p2p'. */
  contacts?: string[];
  /** Application modules loaded after account.so, e.g. ['contact.so', 'presence.so']. */
  modules?: string[];
  /** Listen for ctrl_tcp commands on this port (loads ctrl_tcp.so). */
  ctrlPort?: number;
  /** More config lines, e.g. 'audio_source\t\tausine,440' for calls. */
  config?: string[];
}

export interface Baresip {
  proc: ChildProcess;
  dir: string;
  output(): string;
  /** Resolves when the output matches, rejects after `ms`. */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  /** A command through ctrl_tcp (JSON in netstrings); resolves with the response's data text. */
  command(command: string, params?: string): Promise<string>;
  /** SIGINT (baresip then unregisters and quits); SIGKILL if it has not exited within `ms`. */
  stop(ms?: number): Promise<number | null>;
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export function startBaresip(o: BaresipOptions): Baresip {
  const dir = mkdtempSync(path.join(tmpdir(), 'baresip-'));
  const modules = [...(o.modules ?? []), ...(o.ctrlPort ? ['ctrl_tcp.so'] : [])];
  writeFileSync(
    path.join(dir, 'config'),
    [
      '# headless: no audio or video devices, no user interface; only SIP',
      'poll_method\t\tepoll',
      'sip_listen\t\t127.0.0.1:0',
      'module_path\t\t/usr/lib/baresip/modules',
      'module_app\t\taccount.so',
      ...modules.map((m) => `module_app\t\t${m}`),
      ...(o.ctrlPort ? [`ctrl_tcp_listen\t\t127.0.0.1:${o.ctrlPort}`] : []),
      ...(o.config ?? []),
      '',
    ].join('\n'),
  );
  const tp = o.transport === 'tcp' ? ';transport=tcp' : '';
  writeFileSync(
    path.join(dir, 'accounts'),
    `<sip:${o.user}@${o.domain}${tp}>;auth_pass=${o.password};outbound="sip:127.0.0.1:${o.port}${tp}";regint=${o.regint ?? 600}${o.accountParams ?? ''}\n`,
  );
  writeFileSync(path.join(dir, 'contacts'), (o.contacts ?? []).map((l) => l + '\n').join(''));
  const proc = spawn('baresip', ['-f', dir, '-s'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir } });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString('latin1');
    for (const l of listeners) l();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    dir,
    output: () => out,
    waitFor(re, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!re.test(out)) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`baresip output did not match ${re} within ${ms} ms:\n${out.slice(-4000)}`));
        }, ms);
        listeners.add(check);
        check();
      });
    },
    command(command, params = '') {
      const port = o.ctrlPort;
      if (!port) return Promise.reject(new Error('started without ctrlPort'));
      return new Promise((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1', () => {
          const json = JSON.stringify({ command, params, token: 'test' });
          c.write(`${Buffer.byteLength(json)}:${json},`);
        });
        let buf = '';
        const timer = setTimeout(() => {
          c.destroy();
          reject(new Error(`no answer to ${command} from baresip`));
        }, 5000);
        c.on('data', (d) => {
          buf += d.toString();
          // Netstrings: "<length>:<json>,"; events may come before the response.
          for (;;) {
            const colon = buf.indexOf(':');
            if (colon < 0) return;
            const len = Number(buf.slice(0, colon));
            if (buf.length < colon + 1 + len + 1) return;
            const msg = JSON.parse(buf.slice(colon + 1, colon + 1 + len)) as { response?: boolean; data?: string };
            buf = buf.slice(colon + 1 + len + 1);
            if (msg.response) {
              clearTimeout(timer);
              c.end();
              resolve(msg.data ?? '');
              return;
            }
          }
        });
        c.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    },
    async stop(ms = 10_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGINT');
        const t = setTimeout(() => proc.kill('SIGKILL'), ms);
        const code = await exited;
        clearTimeout(t);
        rmSync(dir, { recursive: true, force: true });
        return code;
      }
      rmSync(dir, { recursive: true, force: true });
      return proc.exitCode;
    },
  };
}
