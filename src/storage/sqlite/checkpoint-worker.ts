// The WAL checkpointer's thread (checkpointer.ts): a connection of its own that copies committed log frames into
// the database file every interval, PASSIVE (never waits for or blocks the server's writer), and a second one that
// holds a read mark at the log's end so that the writer does not start the log over after every checkpoint.
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

const { file, intervalMs, restartFrames, idleIntervals } = workerData as { file: string; intervalMs: number; restartFrames: number; idleIntervals: number };
const db = new DatabaseSync(file);
db.exec('PRAGMA busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');
const dataVersion = db.prepare('PRAGMA data_version');

/**
 * The pin: a read transaction on a connection of its own, begun at the log's end just before each checkpoint.
 * SQLite starts the log over at the first commit after a checkpoint has copied all of it (the writer finds every
 * frame copied and takes read mark 0), and a log started over begins with its header written and **fsynced by the
 * committing connection**, synchronous=NORMAL or not (wal.c, walFrames: syncHeader). With a checkpoint every 100 ms
 * after a commit, that was an fsync on the event loop ten times a second under load: at 3,181 REGISTERs a second
 * (2-vCPU AMD VM, 2026-12-08) 136 in 10 s on the server's main thread, p50 0.37 ms, max 3.4 ms, and every request
 * arriving meanwhile waited; a lone PUBLISH's commit took 0.7 ms instead of 0.07. A reader holding a mark other
 * than 0 makes the writer skip the restart (it needs those marks exclusively) and append instead; the checkpoint
 * still copies everything up to the pin's mark, which is everything committed before it was taken. The log then
 * grows until restartFrames; there the pin is let go until the writer has started the log over: one fsync a
 * restartFrames of log instead of one a checkpoint. An idle server lets go of the pin too (idleIntervals without a
 * commit), so that the log can start over and other tools' TRUNCATE checkpoints are not held up.
 */
const pin = new DatabaseSync(file);
pin.exec('PRAGMA busy_timeout = 0');
const pinRead = pin.prepare('SELECT 1 FROM sqlite_schema LIMIT 1');

/** Ends the pin's read transaction, whatever state a failed repin left it in. */
function unpin(): void {
  if (pin.isTransaction) pin.exec('COMMIT');
}

/**
 * A new pin at the log's end. False when it could not be taken (the database busy, say): none is held then, and the
 * caller leaves the checkpoint to the next interval, since one without the pin would let the writer start the log
 * over.
 */
function repin(): boolean {
  try {
    unpin();
    pin.exec('BEGIN');
    pinRead.get(); // a deferred transaction reads, and takes its read mark, at its first statement
    return true;
  } catch {
    try {
      unpin();
    } catch {
      // Nothing held.
    }
    return false;
  }
}

let version = -1;
let idle = 0;
/** The log reached restartFrames: no pin until the writer has started it over (its frame count goes down). */
let lettingGo = false;
let checkpoints = 0;
let frames = 0;
let last = { log: 0, checkpointed: 0 };

function run(): void {
  try {
    // Only after another connection committed: a checkpoint with nothing to copy still takes the log's locks.
    const v = (dataVersion.get() as { data_version: number }).data_version;
    if (v === version) {
      if (++idle === idleIntervals) unpin();
      return;
    }
    version = v;
    idle = 0;
    // Taken while the log has frames not yet copied, so the pin's mark is not 0 (mark 0 means "the log is all
    // copied, read the database file", which would not hold the writer back from starting it over).
    if (!lettingGo && !repin()) {
      version = -1; // the next interval tries again, commit or not
      return;
    }
    // log: frames in the WAL; checkpointed: how many of them are in the database file now (both start over when
    // the log restarts).
    const r = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    if (r.log < last.log) lettingGo = false; // started over
    if (r.log === last.log && r.checkpointed === last.checkpointed) return;
    if (r.log >= restartFrames && r.checkpointed === r.log && !lettingGo) {
      // Long enough: the pin goes, and the writer starts the log over at its next commit. Not a RESTART checkpoint
      // here: it holds the write lock while it sees the readers off, and the writer's COMMIT meeting it waits in
      // SQLite's busy handler (sleeps of 1 ms on the event loop, three in 20 s at 4,771 REGISTERs a second).
      unpin();
      lettingGo = true;
    } else if (r.log >= 2 * restartFrames && r.checkpointed === r.log) {
      // SQLite starts the log over only if no checkpoint holds the log's read marks at the instant of that commit;
      // a log that has missed the moment for another restartFrames gets a RESTART checkpoint (nothing left to copy,
      // busy_timeout 0: if the writer is busy, a later interval tries again).
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
    try {
      unpin();
    } catch {
      // The pin's COMMIT ends a read: nothing to lose.
    }
    pin.close();
    db.close();
    parentPort!.close();
  }
});
