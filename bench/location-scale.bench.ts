// The location service at scale (DESIGN target: 1,000,000 live bindings in one node within 1 GiB of heap,
// restart with them primed in under 10 s). Registers N bindings through the LocationService into a real
// SQLite journal, measures heap, then primes a fresh LocationService from that journal and times it.
// Run: node --expose-gc bench/location-scale.bench.ts [N]      (npm run bench:location)
import { rmSync } from 'node:fs';
import { InProcessBus } from '../src/bus/in-process.ts';
import { createLogger } from '../src/log.ts';
import { MemoryLocationIndex } from '../src/storage/memory/location-index.ts';
import { LocationService } from '../src/registrar/location-service.ts';
import { openDatabase } from '../src/storage/sqlite/database.ts';
import { SqliteLocationStore } from '../src/storage/sqlite/location-store.ts';
import { binding } from '../test/helpers/bindings.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const dir = `/tmp/sb-location-bench-${process.pid}`;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const log = createLogger('silent');
const heapMb = () => process.memoryUsage().heapUsed / 1048576;
const userAgents = ['Yealink SIP-T46S 66.86.0.15', 'Polycom VVX 400/6.4.3', 'Linphone/5.2.5', 'Zoiper rv2.10.20'];

rmSync(dir, { recursive: true, force: true });
{
  const db = openDatabase({ file: `${dir}/db`, durability: 'os' });
  const location = new LocationService({ index: new MemoryLocationIndex(), store: new SqliteLocationStore(db), bus: new InProcessBus(log), log, node: 'n1' });
  await location.prime();
  gc();
  const before = heapMb();
  const now = Date.now();
  const t = performance.now();
  for (let i = 0; i < N; i += 1000) {
    const done: Array<Promise<void>> = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) {
      const ip = `10.${(j >> 16) & 255}.${(j >> 8) & 255}.${j & 255}`;
      const aor = `user${j}@bench.test`;
      const b = binding(aor, `uri:sip:user${j}@${ip}:5060`, {
        contact: `sip:user${j}@${ip}:5060;transport=udp`, callId: `${j}-${now}@${ip}`, sourceAddress: ip, userAgent: userAgents[j % 4],
        accountId: `b3f1c2a4-0000-4000-8000-${String(j).padStart(12, '0')}`, expiresAt: now + 3_600_000 + (j % 3600) * 1000,
      });
      done.push(location.replace(aor, [b], [{ event: 'added', binding: b }]));
    }
    await Promise.all(done);
  }
  const secs = (performance.now() - t) / 1000;
  gc();
  const used = heapMb() - before;
  console.log(`registered ${N.toLocaleString('en')} bindings (durably, in group commits) in ${secs.toFixed(1)} s`);
  console.log(`heap held by them: ${used.toFixed(0)} MiB (${((used * 1048576) / N).toFixed(0)} bytes each)`);
  location.close();
  db.close();
}
gc();
{
  const db = openDatabase({ file: `${dir}/db`, durability: 'os' });
  const location = new LocationService({ index: new MemoryLocationIndex(), store: new SqliteLocationStore(db), bus: new InProcessBus(log), log, node: 'n1' });
  const t = performance.now();
  const primed = await location.prime();
  const secs = (performance.now() - t) / 1000;
  gc();
  console.log(`restart: primed ${primed.loaded.toLocaleString('en')} bindings from the journal in ${secs.toFixed(1)} s; heap ${heapMb().toFixed(0)} MiB`);
  location.close();
  db.close();
}
rmSync(dir, { recursive: true, force: true });
