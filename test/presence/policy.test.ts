// Watcher policy: who sees a presentity's state at once, and whose subscription waits (pending).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/presence/policy.ts';
import type { WatcherPolicyRecord } from '../../src/storage/ports.ts';

const P = 'alice@example.test';
const policy = (mode: WatcherPolicyRecord['mode'], allow: string[] = []): WatcherPolicyRecord => ({ aor: P, mode, allow, updatedAt: 0 });

describe('watcher policy', () => {
  it('default (no policy): everyone in the realm, nobody from another', () => {
    assert.equal(decide(undefined, 'bob@example.test', P), 'active');
    assert.equal(decide(undefined, 'mallory@elsewhere.test', P), 'pending');
  });
  it('realm mode with an allow list admits the listed outsiders too', () => {
    assert.equal(decide(policy('realm', ['carol@elsewhere.test']), 'carol@elsewhere.test', P), 'active');
    assert.equal(decide(policy('realm', ['carol@elsewhere.test']), 'dave@elsewhere.test', P), 'pending');
  });
  it('allow-list mode: only the listed', () => {
    assert.equal(decide(policy('allow-list', ['bob@example.test']), 'bob@example.test', P), 'active');
    assert.equal(decide(policy('allow-list', ['bob@example.test']), 'carol@example.test', P), 'pending');
  });
  it('nobody: pending for everyone', () => {
    assert.equal(decide(policy('nobody'), 'bob@example.test', P), 'pending');
  });
  it('a presentity may always watch itself', () => {
    assert.equal(decide(policy('nobody'), P, P), 'active');
  });
});
