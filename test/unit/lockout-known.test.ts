// Known sources (src/identity/lockout.ts succeeded): a successful check makes its source known to the subject, written
// to the failure counter at most once a period per process, whether the check names what it authenticated (a cached
// credential, found by identity) or not; a new source is written at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { Lockout } from '../../src/identity/lockout.ts';
import { createLogger } from '../../src/log.ts';
import { MemoryFailureCounter } from '../../src/storage/memory/failure-counter.ts';

function lockout() {
  let now = 1_000_000;
  const failures = new MemoryFailureCounter(() => now);
  const written: string[] = [];
  const remember = failures.remember.bind(failures);
  failures.remember = (key, ttl) => {
    written.push(key);
    return remember(key, ttl);
  };
  const policy = loadConfig({ env: {} }).auth;
  const l = new Lockout({ failures, policy, log: createLogger('silent'), now: () => now });
  return { l, written, advance: (ms: number) => void (now += ms) };
}

describe('lockout: known sources', () => {
  it('writes a holder\u2019s source once a period, a new source at once, again after the period', () => {
    const { l, written, advance } = lockout();
    const credential = { authUser: 'alice' };
    for (let i = 0; i < 5; i++) l.succeeded(l.keys('alice@example.test', '192.0.2.1'), credential);
    assert.deepEqual(written, ['known:alice@example.test|192.0.2.1']);
    l.succeeded(l.keys('alice@example.test', '192.0.2.2'), credential);
    assert.equal(written.length, 2, 'a new source is written');
    advance(86_400_001);
    l.succeeded(l.keys('alice@example.test', '192.0.2.2'), credential);
    assert.equal(written.length, 3, 'rewritten after a day');
  });

  it('holds marks for many holders and still writes each holder once', () => {
    const { l, written } = lockout();
    const holders = Array.from({ length: 1000 }, (_, i) => ({ authUser: `u${i}` }));
    for (let round = 0; round < 3; round++) holders.forEach((h, i) => l.succeeded(l.keys(`u${i}@example.test`, '192.0.2.9'), h));
    assert.equal(written.length, 1000);
  });

  it('is bounded: past 100,000 holders the marks start over, so a flood of credentials is not held', () => {
    const { l, written } = lockout();
    const first = { authUser: 'u0' };
    l.succeeded(l.keys('u0@example.test', '192.0.2.9'), first);
    for (let i = 1; i <= 100_000; i++) l.succeeded(l.keys(`u${i}@example.test`, '192.0.2.9'), { authUser: `u${i}` });
    assert.equal(written.length, 100_001);
    // Its mark went with the others: the first holder's source is written again rather than remembered for ever.
    l.succeeded(l.keys('u0@example.test', '192.0.2.9'), first);
    assert.equal(written.length, 100_002);
  });

  it('answers a check without a holder from the pair\u2019s own mark', () => {
    const { l, written } = lockout();
    for (let i = 0; i < 3; i++) l.succeeded(l.keys('bob@example.test', '198.51.100.7'));
    assert.deepEqual(written, ['known:bob@example.test|198.51.100.7']);
  });
});
