// CredentialValidity: an account's state decides whether its credentials are still accepted; cached (a Map hit on
// the REGISTER path), emptied by clear(), and never caching what a lookup read before a clear.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CredentialValidity } from '../../src/identity/credential-validity.ts';
import type { Account } from '../../src/storage/ports.ts';

function account(over: Partial<Account> = {}): Account {
  return { id: 'a1', username: 'alice', realm: 'example.test', aor: 'alice@example.test', roles: [], passwordHash: null, disabled: false, credentialsValidAfter: 0, createdAt: 0, updatedAt: 0, ...over };
}

function store(initial: Account | null) {
  let current = initial;
  let gate: Promise<void> | null = null;
  const s = {
    reads: 0,
    set(a: Account | null) {
      current = a;
    },
    hold(p: Promise<void>) {
      gate = p;
    },
    async findById(id: string) {
      s.reads++;
      const seen = current;
      if (gate) await gate;
      return seen && seen.id === id ? seen : null;
    },
    async findByName(username: string, realm: string) {
      s.reads++;
      return current && current.username === username && current.realm === realm ? current : null;
    },
  };
  return s;
}

describe('CredentialValidity', () => {
  it('exists(): an enabled local account of that name, cached; a missing name for 5 s at most; clear() reads again', async () => {
    const st = store(null);
    let now = 1_000_000;
    const v = new CredentialValidity(st, 60, { now: () => now });
    assert.equal(await v.exists('alice', 'example.test'), false);
    st.set(account());
    assert.equal(v.exists('alice', 'example.test'), false, 'the miss is cached');
    now += 5001;
    assert.equal(await v.exists('alice', 'example.test'), true, 'a miss is forgotten after 5 s');
    assert.equal(v.exists('alice', 'example.test'), true, 'a hit answered synchronously');
    assert.equal(st.reads, 2);
    st.set(account({ disabled: true }));
    now += 30_000;
    assert.equal(v.exists('alice', 'example.test'), true, 'a hit is kept for the TTL until cleared');
    v.clear();
    assert.equal(await v.exists('alice', 'example.test'), false, 'disabled');
    assert.equal(await v.exists('bob', 'example.test'), false);
  });

  it('accepts a live account’s credentials issued after its instant, from the cache after the first lookup', async () => {
    const st = store(account({ credentialsValidAfter: 5000 }));
    const v = new CredentialValidity(st, 60);
    assert.equal(await v.account('a1', 6000), true);
    assert.equal(v.account('a1', 7000), true, 'answered synchronously from the cache');
    assert.equal(v.account('a1', 5000), false, 'issued at the instant: refused');
    assert.equal(v.account('a1', 4000), false);
    assert.equal(st.reads, 1);
  });

  it('refuses every credential of a disabled or missing account; clear() reads the state again', async () => {
    const st = store(account());
    const v = new CredentialValidity(st, 60);
    assert.equal(await v.account('a1', 1), true);
    st.set(account({ disabled: true }));
    assert.equal(v.account('a1', 1), true, 'cached until cleared');
    v.clear();
    assert.equal(await v.account('a1', 1), false);
    st.set(null);
    v.clear();
    assert.equal(await v.account('a1', 1), false);
  });

  it('does not cache a state read before a clear', async () => {
    const st = store(account());
    const v = new CredentialValidity(st, 60);
    let release!: () => void;
    st.hold(new Promise<void>((r) => (release = r)));
    const pending = v.account('a1', 1);
    st.set(account({ disabled: true }));
    v.clear();
    release();
    assert.equal(await pending, true, 'the lookup answers with what it read');
    st.hold(Promise.resolve());
    assert.equal(await v.account('a1', 1), false, 'but the next one reads again');
  });

  it('expires cached states after the TTL', async () => {
    let now = 0;
    const st = store(account());
    const v = new CredentialValidity(st, 60, { now: () => now });
    assert.equal(await v.account('a1', 1), true);
    st.set(account({ disabled: true }));
    now += 61_000;
    assert.equal(await v.account('a1', 1), false);
  });

  it('remote users by name: live without a local account, refused when the local one is disabled or revoked them', async () => {
    const st = store(null);
    const v = new CredentialValidity(st, 60);
    assert.equal(await v.name('alice', 'example.test', 1000), true);
    st.set(account({ disabled: true }));
    v.clear();
    assert.equal(await v.name('alice', 'example.test', 1000), false);
    st.set(account({ credentialsValidAfter: 2000 }));
    v.clear();
    assert.equal(await v.name('alice', 'example.test', 1000), false);
    assert.equal(await v.name('alice', 'example.test', 3000), true);
  });

  it('tokenCheck: the account by sub against iat (seconds), then the device for device tokens', async () => {
    const st = store(account({ credentialsValidAfter: 10_500 }));
    const v = new CredentialValidity(st, 60);
    let deviceOk = true;
    const check = v.tokenCheck(false, () => deviceOk);
    assert.equal(await check({ sub: 'a1', exp: 99, iat: 10 }), false, 'issued in the second of the revocation');
    assert.equal(await check({ sub: 'a1', exp: 99, iat: 11 }), true);
    assert.equal(await check({ sub: 'a1', exp: 99, iat: 11, dev: 2 }), true);
    deviceOk = false;
    assert.equal(await check({ sub: 'a1', exp: 99, iat: 11, dev: 2 }), false, 'a removed device');
    assert.equal(await check({ sub: 'a1', exp: 99, iat: 11 }), true, 'not a device token');
    const remote = v.tokenCheck(true);
    assert.equal(await remote({ sub: 'idp-x', exp: 99, iat: 11 }), false, 'a remote token without user and realm');
  });
});
