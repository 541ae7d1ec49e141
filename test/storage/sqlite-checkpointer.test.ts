// WAL checkpoints off the event loop (src/storage/sqlite/checkpointer.ts) on a real database file: the server's
// connection never checkpoints, the worker thread copies the log into the database file, and the log restarts
// from its start rather than growing with every commit.
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { WalCheckpointer } from '../../src/storage/sqlite/checkpointer.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { tempDir } from '../helpers/server.ts';

describe('WalCheckpointer', () => {
  it('checkpoints from its own thread while the writer never does, and keeps the log from growing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'db.sqlite');
    const db = openDatabase({ file, durability: 'os', checkpointsElsewhere: true });
    const checkpointer = new WalCheckpointer(file, { intervalMs: 20, restartFrames: 1000 });
    try {
      assert.equal((db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint, 0);
      const insert = db.prepare('INSERT INTO binding_journal (writes) VALUES (?)');
      const row = JSON.stringify(['x'.repeat(4000)]);
      const dbSize0 = statSync(file).size;
      // 8,000 commits of a 4 KB row (32 MB of log in all), in bursts, each followed by a pause in which the
      // checkpointer catches up: SQLite then starts the log over at the next commit.
      let maxWal = 0;
      for (let burst = 0; burst < 40; burst++) {
        for (let i = 0; i < 200; i++) {
          db.exec('BEGIN');
          insert.run(row);
          db.exec('COMMIT');
        }
        maxWal = Math.max(maxWal, statSync(`${file}-wal`).size);
        const seen = checkpointer.checkpoints;
        for (let t = 0; t < 250 && (checkpointer.checkpoints === seen || checkpointer.walCheckpointed !== checkpointer.walFrames); t++) await sleep(20);
      }
      assert.ok(checkpointer.checkpoints > 0 && checkpointer.framesCopied > 0, `checkpoints ${checkpointer.checkpoints}, frames ${checkpointer.framesCopied}`);
      // The database file holds what the log held: only a checkpoint writes it.
      assert.ok(statSync(file).size > dbSize0 + 16_000_000, `database file ${statSync(file).size} bytes`);
      // Without checkpoints the log would hold all 32 MB; restarted, it holds a burst or a few (at 1,000 frames of
      // 4 KiB a RESTART checkpoint starts it over when SQLite has not).
      assert.ok(maxWal < 12_000_000, `WAL reached ${maxWal} bytes`);
    } finally {
      await checkpointer.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
