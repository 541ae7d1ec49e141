// How long a journal compaction holds the event loop: USERS bindings, refreshed until the journal holds enough
// garbage to compact, then one compaction while a ticker (setImmediate after setImmediate) records the longest gap
// between its turns, i.e. the longest stretch a REGISTER arriving meanwhile would wait.
//
//   node bench/tools/compaction-stalls.ts [users=20000] [refreshes per user=3] [writes per journal row=50]
// (a row is one group commit: an event-loop turn's writes, 1–10 of them at 5,000 REGISTERs a second)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { WalCheckpointer } from '../../src/storage/sqlite/checkpointer.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqliteLocationStore } from '../../src/storage/sqlite/location-store.ts';
import { MemoryLocationIndex } from '../../src/storage/memory/location-index.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';

const USERS = Number(process.argv[2] ?? 20_000);
const REFRESHES = Number(process.argv[3] ?? 3);
const PER_ROW = Number(process.argv[4] ?? 50);
const dir = mkdtempSync(join(tmpdir(), 'sb-compaction-'));
// As the server: checkpoints in the WalCheckpointer's thread (SQLite's own, inside a COMMIT, are 10 ms turns here).
const db = openDatabase({ file: join(dir, 'sb.db'), durability: 'os', checkpointsElsewhere: true });
const checkpointer = new WalCheckpointer(join(dir, 'sb.db'));
const store = new SqliteLocationStore(db);
const index = new MemoryLocationIndex();

function binding(i: number, n: number): BindingRecord {
  const aor = `user${i}@bench.test`;
  const now = Date.now();
  return {
    aor, key: `sip:user${i}@127.0.0.1:5061;transport=udp`, contact: `sip:user${i}@127.0.0.1:5061;transport=udp`, params: '',
    q: null, expiresAt: now + 3_600_000, callId: `${i}-${n}-1234@127.0.0.1`, cseq: n + 2, path: [], instanceId: null,
    regId: null, transport: 'UDP', sourceAddress: '127.0.0.1', sourcePort: 5061, localAddress: '127.0.0.1', localPort: 5060,
    connectionId: null, node: 'n1', userAgent: 'SIPp', createdAt: now, updatedAt: now, accountId: `acct-${i}`,
  };
}

for (let n = 0; n < REFRESHES; n++) {
  for (let i = 0; i < USERS; i += PER_ROW) {
    const ws = [];
    for (let j = i; j < Math.min(USERS, i + PER_ROW); j++) {
      const b = binding(j, n);
      index.load([b], b.aor);
      ws.push({ op: 'put' as const, binding: b });
    }
    await store.write(ws);
  }
}
console.log(`journal: ${store.journalWrites} writes for ${index.counts().bindings} bindings`);

let last = performance.now();
let longest = 0;
const gaps: number[] = [];
let ticking = true;
const tick = () => {
  const now = performance.now();
  gaps.push(now - last);
  longest = Math.max(longest, now - last);
  last = now;
  if (ticking) setImmediate(tick);
};
setImmediate(tick);
const t0 = performance.now();
await store.compact({ count: index.counts().bindings, all: () => index.walk!() });
ticking = false;
const total = performance.now() - t0;
const order = [...gaps];
gaps.sort((a, b) => b - a);
console.log(`turns in order: ${order.map((g) => g.toFixed(1)).join(' ')}`);
console.log(`compaction: ${total.toFixed(1)} ms in ${gaps.length} turns; longest turns ${gaps.slice(0, 5).map((g) => g.toFixed(1)).join(', ')} ms; journal now ${store.journalWrites} writes`);
await checkpointer.close();
db.close();
rmSync(dir, { recursive: true, force: true });
