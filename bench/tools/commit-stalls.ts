// How long the event loop is blocked in the location journal's COMMITs, with SQLite's own checkpoints (inside the
// COMMIT that crosses wal_autocheckpoint) or with the WalCheckpointer's worker thread.
//   node bench/tools/commit-stalls.ts [inline|worker] [seconds] [interval ms]
// Commits one 20-write journal row every 5 ms (4,000 REGISTERs a second in turns of 20, as the group commit does)
// and reports, per COMMIT, the time the thread was blocked: wall time minus the time it ran and the time it waited
// for a CPU (/proc/thread-self/schedstat), so other work on a shared machine does not count as a stall.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WalCheckpointer } from '../../src/storage/sqlite/checkpointer.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';

const mode = process.argv[2] === 'worker' ? 'worker' : 'inline';
const seconds = Number(process.argv[3] ?? 20);
const dir = mkdtempSync(path.join(tmpdir(), 'sb-stalls-'));
const file = path.join(dir, 'db.sqlite');
const db = openDatabase({ file, durability: 'os', checkpointsElsewhere: mode === 'worker' });
const checkpointer = mode === 'worker' ? new WalCheckpointer(file, { intervalMs: Number(process.argv[4] ?? 100) }) : null;
const insert = db.prepare('INSERT INTO binding_journal (writes) VALUES (?)');
const row = JSON.stringify(Array.from({ length: 20 }, (_, i) => ['p', `user${i}@bench.test`, 'k', 'sip:user@127.0.0.1:5060;transport=UDP', 1, 2, 3, 'x'.repeat(150)]));
const sched = () => readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ').map(Number);
const blocked: number[] = [];
let maxWal = 0;
const end = Date.now() + seconds * 1000;
while (Date.now() < end) {
  const a = sched();
  const t = performance.now();
  db.exec('BEGIN');
  insert.run(row);
  db.exec('COMMIT');
  const wall = performance.now() - t;
  const b = sched();
  blocked.push(wall - (b[0] - a[0]) / 1e6 - (b[1] - a[1]) / 1e6);
  if (blocked.length % 100 === 0) maxWal = Math.max(maxWal, statSync(`${file}-wal`).size);
  await sleep(5);
}
blocked.sort((x, y) => x - y);
const over = (ms: number) => blocked.filter((x) => x > ms).length;
console.log(
  `${mode}: ${blocked.length} commits; blocked p99.9 ${blocked[Math.floor(blocked.length * 0.999)].toFixed(2)} ms, max ${blocked.at(-1)!.toFixed(2)} ms, ` +
    `over 1 ms ${over(1)}, over 5 ms ${over(5)}; WAL at most ${(maxWal / 1e6).toFixed(1)} MB${checkpointer ? `; ${checkpointer.checkpoints} checkpoints` : ''}`,
);
await checkpointer?.close();
db.close();
rmSync(dir, { recursive: true, force: true });
