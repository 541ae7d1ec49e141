// The WAL checkpointer's thread (checkpointer.ts): a connection of its own that copies committed log frames into
// the database file every interval, PASSIVE (never waits for or blocks the server's writer).
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

const { file, intervalMs, restartFrames } = workerData as { file: string; intervalMs: number; restartFrames: number };
const db = new DatabaseSync(file);
db.exec('PRAGMA busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');
const dataVersion = db.prepare('PRAGMA data_version');
let version = -1;
let checkpoints = 0;
let frames = 0;
let last = { log: 0, checkpointed: 0 };

function run(): void {
  try {
    // Only after another connection committed: a checkpoint with nothing to copy still takes the log's locks, and
    // SQLite restarts the log only at the first commit after a complete checkpoint if no checkpoint holds them
    // then (checking every interval regardless, a 16 MB test kept missing the moment and the log grew to 20 MB).
    const v = (dataVersion.get() as { data_version: number }).data_version;
    if (v === version) return;
    version = v;
    // log: frames in the WAL; checkpointed: how many of them are in the database file now (both start over when
    // the log restarts).
    const r = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    if (r.log === last.log && r.checkpointed === last.checkpointed) return;
    if (r.log >= restartFrames && r.checkpointed === r.log) {
      // SQLite starts the log over at the first commit after a complete checkpoint, but only if no checkpoint
      // holds the log's read marks at that instant; under a steady load it can miss that moment for a while. A
      // log this long and fully copied gets a RESTART checkpoint: nothing left to copy, it holds the write lock
      // only to see the readers off (busy_timeout 0 here: if the writer is busy, the next interval tries again).
      restart.get();
    }
    checkpoints++;
    frames += r.log >= last.log ? r.checkpointed - Math.min(last.checkpointed, r.checkpointed) : r.checkpointed;
    last = r;
    parentPort!.postMessage({ checkpoints, frames, log: r.log, checkpointed: r.checkpointed });
  } catch {
    // Busy or locked (another process checkpointing, a migration): the next interval tries again.
  }
}

const timer = setInterval(run, intervalMs);
parentPort!.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    run();
    db.close();
    parentPort!.close();
  }
});
