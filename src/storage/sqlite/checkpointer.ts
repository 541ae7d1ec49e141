// WAL checkpoints off the event loop.
//
// In WAL mode a COMMIT appends to the -wal file; a checkpoint copies the log back into the database file and, at
// synchronous=NORMAL, is the only moment SQLite calls fsync (the log before copying, the database after). Left to
// SQLite (wal_autocheckpoint, every 1,000 pages) it runs inside whichever COMMIT crosses the mark, on the event
// loop: measured on this project's 2-vCPU VM, 20,000 commits of a 20-binding journal row, p50 0.03 ms but
// p99.9 14–19 ms and single commits of 27–39 ms, every few seconds at 4,000 REGISTERs a second; every request that
// arrived meanwhile waited for it (issue 20: REGISTER p99 12–64 ms at half load). Here the server's connection
// never checkpoints (wal_autocheckpoint = 0) and a worker thread with a connection of its own runs PASSIVE
// checkpoints, which copy what is committed without taking the write lock: commits on the event loop go on during
// the copy and its fsyncs. A COMMIT is as durable as before (the log reaches the OS before it returns; FULL also
// fsyncs it there); only the copy into the database file moved. The worker also keeps the writer from starting the
// log over after every checkpoint (checkpoint-worker.ts, the pin: each start costs the writer an fsync), so under
// load the log grows to restartFrames and is started over then.

import { Worker } from 'node:worker_threads';

export interface CheckpointerOptions {
  /** How often the worker checkpoints (ms). */
  intervalMs?: number;
  /**
   * Frames the log may grow to before the worker lets the writer start it over (the pin goes; a RESTART checkpoint
   * only at twice this, for a log that missed the moment); 16,384 (64 MiB of 4 KiB pages).
   */
  restartFrames?: number;
  /** Intervals without a commit after which the worker lets the log start over at the next commit (the pin goes). */
  idleIntervals?: number;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** Checkpoints that copied something and the WAL frames they copied, as the worker last reported them. */
  checkpoints = 0;
  framesCopied = 0;
  /** Frames in the log and how many of them the database file holds, at the last checkpoint. */
  walFrames = 0;
  walCheckpointed = 0;

  constructor(file: string, opts: CheckpointerOptions = {}) {
    this.worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url), {
      workerData: { file, intervalMs: opts.intervalMs ?? 100, restartFrames: opts.restartFrames ?? 16_384, idleIntervals: opts.idleIntervals ?? 10 },
    });
    this.worker.on('message', (m: { checkpoints: number; frames: number; log: number; checkpointed: number }) => {
      this.checkpoints = m.checkpoints;
      this.framesCopied = m.frames;
      this.walFrames = m.log;
      this.walCheckpointed = m.checkpointed;
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    // A checkpoint failure is not a lost write (the log holds it); the worker reports it and the next one retries.
    this.worker.on('error', () => undefined);
    this.worker.unref();
  }

  /** Stops the worker after a last checkpoint. */
  async close(): Promise<void> {
    this.worker.ref();
    this.worker.postMessage('stop');
    await this.exited;
  }
}
