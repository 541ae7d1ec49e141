// `--workers N|auto`: several Switchboard processes on one host, one per core, each a full node (its own node id
// `<node>-w<n>`) sharing the SIP and HTTP ports through SO_REUSEPORT and the state through PostgreSQL, Redis and
// RabbitMQ: the same mechanism as several machines, so one machine uses every core. The kernel spreads UDP
// datagrams by source address and port, and TCP connections as they arrive, so a phone keeps talking to one
// worker while it keeps its address.
//
// This supervising process serves nothing itself. It prepares what workers would otherwise race to create (the
// master key file, the database schema, the first JWT signing key, a self-signed certificate), starts the workers,
// restarts one that dies (its successor, under the same node id, removes the connection-bound bindings the dead
// one left), and on SIGTERM/SIGINT stops them all and waits for them.

import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism, hostname } from 'node:os';
import { openDurable } from './adapters.ts';
import { loadTlsFiles } from './certificates.ts';
import type { Config } from './config.ts';
import { KeyRing } from './identity/keys.ts';
import { Sealer } from './identity/seal.ts';
import type { Logger } from './log.ts';
import { deriveKey, loadMasterKey } from './secrets.ts';

/** The environment variable that tells a forked process which worker it is (1-based). */
export const WORKER_ENV = 'SWITCHBOARD_WORKER';

/** How many processes `--workers` asks for. */
export function workerCount(setting: string): number {
  return setting === 'auto' ? availableParallelism() : Number(setting);
}

/** This process's worker number, or null when it is not a worker. */
export function workerNumber(env: NodeJS.ProcessEnv = process.env): number | null {
  const n = Number(env[WORKER_ENV]);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** The node id of worker `n`: the configured or host name, suffixed so that each worker's bindings are its own. */
export function workerNodeId(config: Config, n: number): string {
  return `${config.cluster.nodeId ?? hostname()}-w${n}`;
}

/** Creates once what every worker needs and would otherwise race to create. */
async function prepare(config: Config): Promise<void> {
  const master = loadMasterKey(config.dataDir);
  if (config.sip.transports.includes('TLS') || config.sip.transports.includes('WSS')) {
    loadTlsFiles({ dataDir: config.dataDir, certPath: config.tls.cert, keyPath: config.tls.key });
  }
  const durable = await openDurable(config); // runs the migrations under their advisory lock
  try {
    const keys = new KeyRing({ store: durable.tokens, sealer: new Sealer(deriveKey(master, 'jwt-signing-keys'), 'jwt-private-key'), alg: config.tokens.algorithm, tokenTtlSeconds: config.tokens.accessTtl });
    await keys.load(); // creates the first signing key if there is none
  } finally {
    await durable.close();
  }
}

interface WorkerReady {
  sip: string[];
  http: string;
}

/** Runs the workers until a signal stops them; resolves with the exit code for the supervising process. */
export async function superviseWorkers(config: Config, count: number, argv: string[], log: Logger): Promise<number> {
  await prepare(config);
  const children = new Map<number, ChildProcess>();
  const restarts: number[] = [];
  let stopping = false;
  let announced = false;
  const ready = new Map<number, WorkerReady>();

  let exitCode = 0;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const exitWhenAllGone = () => {
    if (children.size === 0) resolveDone(exitCode);
  };

  const start = (n: number) => {
    const child = fork(argv[0], argv.slice(1), { env: { ...process.env, [WORKER_ENV]: String(n) }, stdio: 'inherit' });
    children.set(n, child);
    child.on('message', (m: unknown) => {
      const msg = m as { ready?: WorkerReady } | null;
      if (!msg?.ready) return;
      ready.set(n, msg.ready);
      if (!announced && ready.size === count) {
        announced = true;
        const first = ready.get(1) ?? msg.ready;
        log.info({ workers: count, sip: first.sip, http: first.http }, 'Switchboard started');
      } else if (announced) log.info({ worker: n }, 'worker restarted');
    });
    child.on('exit', (code, signal) => {
      children.delete(n);
      ready.delete(n);
      if (stopping) return exitWhenAllGone();
      log.error({ worker: n, code, signal }, 'worker exited');
      const now = Date.now();
      restarts.push(now);
      while (restarts.length && restarts[0] < now - 60_000) restarts.shift();
      if (restarts.length > 5 * count) {
        // A crash loop is not fixed by restarting faster: stop and let the service manager report it.
        log.fatal({ restarts: restarts.length }, 'workers keep dying; giving up');
        exitCode = 1;
        stopping = true;
        stop('SIGTERM');
        exitWhenAllGone();
        return;
      }
      setTimeout(() => {
        if (!stopping) start(n);
      }, 1000).unref();
    });
  };

  const stop = (signal: NodeJS.Signals) => {
    for (const c of children.values()) c.kill(signal);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      stop('SIGKILL');
      return;
    }
    stopping = true;
    log.info({ signal, workers: children.size }, 'stopping workers');
    stop('SIGTERM');
    exitWhenAllGone();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  for (let n = 1; n <= count; n++) start(n);
  return done;
}
