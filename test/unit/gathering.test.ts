// When a PostgreSQL group (commit, credential query) waits for company: only after a group that showed load, once,
// and never when it is big enough already.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gathering } from '../../src/storage/postgres/gathering.ts';

describe('Gathering', () => {
  it('never holds a group while the previous one was small (a lone REGISTER goes at once)', () => {
    const g = new Gathering(2, 4, 64);
    assert.equal(g.wait(1), false);
    g.sent(1);
    assert.equal(g.wait(3), false);
    g.sent(3);
    assert.equal(g.wait(1), false);
  });

  it('under load holds a group once, then lets it go', () => {
    const g = new Gathering(2, 4, 64);
    g.sent(4);
    assert.equal(g.wait(2), true, 'the previous group showed load');
    assert.equal(g.wait(9), false, 'it waited once: now it goes');
    g.sent(9);
    assert.equal(g.wait(1), true, 'the next group waits again');
  });

  it('lets a group that is big enough go at once', () => {
    const g = new Gathering(2, 4, 64);
    g.sent(40);
    assert.equal(g.wait(64), false);
    assert.equal(g.wait(10), true);
  });
});
