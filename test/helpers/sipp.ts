// Runs SIPp scenarios against a server and reports what happened. SIPp's exit code is 0 when every call
// succeeded, 1 when at least one failed; the error and message traces are kept for failing tests to print.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const SCENARIOS = path.resolve(import.meta.dirname, '../interop/scenarios');

export interface SippResult {
  code: number | null;
  stdout: string;
  errors: string;
  messages: string;
  /** Successful and failed calls from the final statistics. */
  successful: number;
  failed: number;
}

export interface SippOptions {
  transport?: 'u1' | 't1' | 'un' | 'tn';
  calls?: number;
  rate?: number;
  /** Injection file lines (the first line is SEQUENTIAL/RANDOM). */
  inject?: string[];
  /** -key name value pairs, visible in scenarios as [name]. */
  keys?: Record<string, string>;
  /** Credentials for the scenario's plain [authentication] keyword (-au / -ap). */
  auth?: { username: string; password: string };
  extra?: string[];
  timeoutSeconds?: number;
}

/**
 * A local port the kernel has just handed out as free, for SIPp's -p. With -p 0 SIPp picks its port itself, and
 * several SIPps started at once over TCP could pick the same one: "Unable to listen main socket, errno = 98"
 * (seen in the presence test's three watchers). An ephemeral port from the kernel is not handed out again at once.
 */
async function freePort(tcp: boolean): Promise<number> {
  if (tcp) {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  }
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function runSipp(scenario: string, port: number, o: SippOptions = {}): Promise<SippResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sipp-'));
  const localPort = await freePort((o.transport ?? 'u1').startsWith('t'));
  const file = path.isAbsolute(scenario) ? scenario : path.join(SCENARIOS, scenario);
  const args = [
    `127.0.0.1:${port}`, '-sf', file, '-m', String(o.calls ?? 1), '-r', String(o.rate ?? 10), '-t', o.transport ?? 'u1',
    '-i', '127.0.0.1', '-p', String(localPort), '-nostdin', '-timeout', String(o.timeoutSeconds ?? 30), '-timeout_error',
    '-trace_err', '-error_file', path.join(dir, 'errors.log'),
    '-trace_msg', '-message_file', path.join(dir, 'messages.log'),
    '-trace_stat', '-stf', path.join(dir, 'stats.csv'),
    '-recv_timeout', '5000', '-max_recv_loops', '10000',
  ];
  if (o.inject) {
    writeFileSync(path.join(dir, 'inject.csv'), o.inject.join('\n') + '\n');
    args.push('-inf', path.join(dir, 'inject.csv'));
  }
  for (const [k, v] of Object.entries(o.keys ?? {})) args.push('-key', k, v);
  if (o.auth) args.push('-au', o.auth.username, '-ap', o.auth.password);
  args.push(...(o.extra ?? []));
  const proc = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stdout += d));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  const read = (f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');
  const errors = read('errors.log');
  const messages = read('messages.log');
  const stats = read('stats.csv').trim().split('\n');
  // Everything needed is in the result now; each run's traces would otherwise pile up in the temp directory.
  rmSync(dir, { recursive: true, force: true });
  let successful = 0;
  let failed = 0;
  if (stats.length >= 2) {
    const head = stats[0].split(';');
    const last = stats[stats.length - 1].split(';');
    successful = Number(last[head.indexOf('SuccessfulCall(C)')] ?? 0);
    failed = Number(last[head.indexOf('FailedCall(C)')] ?? 0);
  }
  return { code, stdout, errors, messages, successful, failed };
}

/** A readable summary for assertion messages. */
export function explain(r: SippResult): string {
  return `sipp exit ${r.code}, ${r.successful} ok, ${r.failed} failed\n--- errors ---\n${r.errors.slice(-3000)}\n--- messages ---\n${r.messages.slice(-4000)}\n--- output ---\n${r.stdout.slice(-1500)}`;
}
