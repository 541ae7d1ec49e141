// WAL checkpoints off the event loop (src/storage/sqlite/checkpointer.ts) on a real database file: the server's
// connection never checkpoints, the worker thread copies the log into the database file, and the log restarts
// from its start rather than growing with every commit, but not after every checkpoint (each start costs the
// committing connection an fsync of the log's header).
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, rmSync, statSync } from 'node:fs';
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

  /** The log's checkpoint sequence number (WAL header bytes 12–15): SQLite adds one each time it starts the log over. */
  const logGeneration = (file: string): number => {
    const fd = openSync(`${file}-wal`, 'r');
    try {
      const b = Buffer.alloc(16);
      readSync(fd, b, 0, 16, 0);
      return b.readUInt32BE(12);
    } finally {
      closeSync(fd);
    }
  };

  it('keeps the writer from starting the log over after each checkpoint, and lets it once the server is idle', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'db.sqlite');
    const db = openDatabase({ file, durability: 'os', checkpointsElsewhere: true });
    const checkpointer = new WalCheckpointer(file, { intervalMs: 10, idleIntervals: 20 });
    const insert = db.prepare('INSERT INTO binding_journal (writes) VALUES (?)');
    const caughtUp = async () => {
      const seen = checkpointer.checkpoints;
      for (let t = 0; t < 300 && (checkpointer.checkpoints === seen || checkpointer.walCheckpointed !== checkpointer.walFrames); t++) await sleep(5);
      assert.equal(checkpointer.walCheckpointed, checkpointer.walFrames, 'the checkpoint copied the whole log');
    };
    try {
      insert.run('["first"]');
      await caughtUp();
      const generation = logGeneration(file);
      const frames0 = checkpointer.walFrames;
      // Ten commits, each after a checkpoint that copied everything: each would have started the log over.
      for (let i = 0; i < 10; i++) {
        insert.run(JSON.stringify([`w${i}`]));
        await caughtUp();
      }
      assert.equal(logGeneration(file), generation, 'the log was not started over');
      assert.ok(checkpointer.walFrames >= frames0 + 10, `the log grew: ${frames0} → ${checkpointer.walFrames} frames`);
      // Idle for idleIntervals (20 × 10 ms, waited six times over for a loaded CI machine): the pin goes, and the
      // next commit starts the log over.
      await sleep(1200);
      insert.run('["after a pause"]');
      assert.equal(logGeneration(file), generation + 1, 'an idle server\u2019s log starts over at the next commit');
      await caughtUp();
    } finally {
      await checkpointer.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
