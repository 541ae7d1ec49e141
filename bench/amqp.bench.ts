// authn_req round trips through the real broker: a Kazoo component (amqplib) publishes authn_req on callmgr and
// waits for authn_resp on its targeted queue; Switchboard runs as its own process (`switchboard start --bus amqp://…`)
// in a fresh vhost. Reports round trips per second and latency percentiles at several concurrencies, and the server's
// CPU per request. Run: npm run bench:amqp  (RabbitMQ at 127.0.0.1:5672, guest/guest; rabbitmqctl for the vhost)
//   BENCH_SECONDS=5 BENCH_USERS=2000 BENCH_CONCURRENCY=1,16,64 npm run bench:amqp

import { readFileSync, rmSync } from 'node:fs';
import { hostname, cpus } from 'node:os';
import { KazooPeer } from '../test/helpers/kazoo-peer.ts';
import { createVhost } from '../test/helpers/rabbitmq.ts';
import { addUsers, spawnServer, tempDir, testConfig } from '../test/helpers/server.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const USERS = Number(process.env.BENCH_USERS ?? 2000);
const LEVELS = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const tick = 100; // USER_HZ on Linux
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const vhost = await createVhost('sb-bench');
const dir = tempDir('sb-bench-');
const config = testConfig(dir, { realm: ['bench.test'] });
const users: Record<string, string> = {};
for (let i = 0; i < USERS; i++) users[`user${i}@bench.test`] = `pw${i}`;
await addUsers(config, users);
const server = await spawnServer(dir, { realm: 'bench.test', bus: vhost.url });
const pid = server.proc.pid!;
const peer = await KazooPeer.open(vhost.url);

async function round(concurrency: number, seconds: number): Promise<{ n: number; errors: number; secs: number; lat: number[]; cpu: number }> {
  const lat: number[] = [];
  let errors = 0;
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const i = Math.floor(Math.random() * USERS);
        const req = { ...peer.envelope('authn_req'), 'Auth-User': `user${i}`, 'Auth-Realm': 'bench.test', From: `sip:user${i}@bench.test`, To: `sip:user${i}@bench.test`, Method: 'REGISTER' };
        const s = performance.now();
        const [resp] = await peer.request('callmgr', 'authn.req.bench%2Etest', req, { ms: 5000 });
        lat.push(performance.now() - s);
        if (resp?.['Event-Name'] !== 'authn_resp') errors++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  return { n: lat.length, errors, secs, lat: lat.sort((a, b) => a - b), cpu: cpuMs(pid) - cpu0 };
}

try {
  await round(8, 1); // warm-up: JIT, credential cache
  const rows: string[] = [];
  for (const c of LEVELS) {
    const r = await round(c, SECONDS);
    const rate = r.n / r.secs;
    rows.push(
      `| ${c} | ${Math.round(rate).toLocaleString('en-US')} | ${pct(r.lat, 50).toFixed(2)} | ${pct(r.lat, 90).toFixed(2)} | ${pct(r.lat, 99).toFixed(2)} | ${r.lat[r.lat.length - 1].toFixed(2)} | ${Math.round((r.cpu * 1000) / r.n)} | ${r.errors} |`,
    );
  }
  console.log(`authn_req → authn_resp through RabbitMQ, ${USERS} users, ${SECONDS} s per row; ${new Date().toISOString()}, ${hostname()}, ${cpus().length} CPU ${cpus()[0]?.model ?? ''}, Node ${process.version}`);
  console.log('| in flight | round trips/s | p50 ms | p90 ms | p99 ms | max ms | server CPU µs/request | errors |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
} finally {
  await peer.close();
  await server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  await vhost.delete();
}
