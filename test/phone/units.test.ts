// The building blocks of phone sign-up: the in-memory Cache adapter, token buckets on it, salted HKDF token
// hashes (checked against WebCrypto's HKDF, an independent implementation), E.164 normalisation and the
// configuration of limiters and pacing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { normalizeE164 } from '../../src/identity/phone/number.ts';
import { saltedHash, verifySaltedHash } from '../../src/identity/phone/salted-token.ts';
import { createRateLimiters, LIMITER_DEFAULTS, parseLimiterSpecs, RateLimiter } from '../../src/identity/rate-limiter.ts';
import { MemoryCache } from '../../src/storage/memory/cache.ts';
import { TestClock } from './helpers.ts';

describe('MemoryCache', () => {
  it('keeps JSON values until their TTL, on the injected clock', async () => {
    const clock = new TestClock();
    const c = new MemoryCache(clock.now);
    try {
      await c.set('a', { x: [1, 'two', null] }, 10);
      assert.deepEqual(await c.get('a'), { x: [1, 'two', null] });
      clock.advance(9_999);
      assert.ok(await c.get('a'));
      clock.advance(1);
      assert.equal(await c.get('a'), null);
      await c.set('b', 1, 0.5);
      clock.advance(499);
      assert.equal(await c.get('b'), 1);
      clock.advance(1);
      assert.equal(await c.get('b'), null, 'fractions of seconds count');
    } finally {
      c.close();
    }
  });

  it('hands out copies: nothing relies on object identity', async () => {
    const c = new MemoryCache();
    try {
      const v = { n: 1 };
      await c.set('k', v, 60);
      v.n = 2;
      const got = (await c.get<{ n: number }>('k'))!;
      assert.equal(got.n, 1);
      got.n = 3;
      assert.equal((await c.get<{ n: number }>('k'))!.n, 1);
    } finally {
      c.close();
    }
  });

  it('keeps what sync sets as it is (no JSON per call) while the async side still gets copies and compares text', async () => {
    const clock = new TestClock();
    const c = new MemoryCache(clock.now);
    try {
      const bucket = { p: 1, at: 0 };
      c.sync.set('k', bucket, 20);
      assert.equal(c.sync.get('k'), bucket, 'the value itself, not a parse of its text');
      const copy = (await c.get<{ p: number; at: number }>('k'))!;
      assert.deepEqual(copy, bucket);
      assert.notEqual(copy, bucket, 'the async side never holds the stored object');
      assert.equal(await c.compareAndSet('k', { p: 1, at: 0 }, { p: 0, at: 5 }, 20), true, 'compared as text');
      assert.deepEqual(c.sync.get('k'), { p: 0, at: 5 }, 'what the async side set, read through sync');
      assert.equal(c.sync.get('k'), c.sync.get('k'), 'parsed once, then kept');
      c.sync.set('gone', { p: 0, at: 0 }, 5);
      clock.advance(5_000);
      assert.equal(c.sync.get('gone'), null, 'expiry as for the async side');
      assert.equal(await c.get('gone'), null);
      c.sync.set('k', 1, 0);
      assert.equal(c.sync.get('k'), null, 'a TTL of nothing deletes');
    } finally {
      c.close();
    }
  });

  it('setIfAbsent and compareAndSet are atomic per key', async () => {
    const clock = new TestClock();
    const c = new MemoryCache(clock.now);
    try {
      assert.equal(await c.setIfAbsent('k', 1, 5), true);
      assert.equal(await c.setIfAbsent('k', 2, 5), false);
      assert.equal(await c.get('k'), 1);
      clock.advance(5000);
      assert.equal(await c.setIfAbsent('k', 3, 5), true, 'an expired key is absent');
      assert.equal(await c.compareAndSet('k', 1, 4, 5), false);
      assert.equal(await c.compareAndSet('k', 3, { v: 4 }, 5), true);
      assert.equal(await c.compareAndSet('k', { v: 4 }, null, 5), true, 'null deletes');
      assert.equal(await c.get('k'), null);
      assert.equal(await c.compareAndSet('k', null, 'new', 5), true, 'null expects absence');
      assert.equal(await c.compareAndSet('k', null, 'other', 5), false);
      await c.delete('k');
      assert.equal(await c.get('k'), null);
    } finally {
      c.close();
    }
  });

  it('is bounded: a flood of keys evicts the oldest', async () => {
    const c = new MemoryCache(Date.now, 100);
    try {
      for (let i = 0; i < 150; i++) await c.set(`k${i}`, i, 60);
      assert.equal(c.size, 100);
      assert.equal(await c.get('k0'), null);
      assert.equal(await c.get('k149'), 149);
    } finally {
      c.close();
    }
  });
});

describe('token-bucket rate limiters', () => {
  it('spends up to size, regains one permit per period, and says when', async () => {
    const clock = new TestClock();
    const cache = new MemoryCache(clock.now);
    const l = new RateLimiter('registration', { size: 6, permitSeconds: 30 }, cache, clock.now);
    try {
      for (let i = 0; i < 6; i++) assert.equal((await l.take('+14155550100')).ok, true);
      assert.deepEqual(await l.take('+14155550100'), { ok: false, retryAfter: 30 });
      assert.equal((await l.take('+14155550101')).ok, true, 'buckets are per key');
      clock.advance(10_000);
      assert.deepEqual(await l.take('+14155550100'), { ok: false, retryAfter: 20 });
      clock.advance(20_000);
      assert.equal((await l.take('+14155550100')).ok, true);
      assert.equal((await l.take('+14155550100')).ok, false);
      clock.advance(180_000);
      for (let i = 0; i < 6; i++) assert.equal((await l.take('+14155550100')).ok, true, 'refilled to size, never beyond');
      assert.equal((await l.take('+14155550100')).ok, false);
      await l.clear('+14155550100');
      assert.equal((await l.take('+14155550100')).ok, true, 'cleared: full again');
    } finally {
      cache.close();
    }
  });

  it('answers at once over the in-process cache and through promises over a shared one, with the same buckets', async () => {
    const clock = new TestClock();
    const cache = new MemoryCache(clock.now);
    // The same store without its synchronous half: what a shared cache (Redis) offers.
    const shared = { get: cache.get.bind(cache), set: cache.set.bind(cache), setIfAbsent: cache.setIfAbsent.bind(cache), compareAndSet: cache.compareAndSet.bind(cache), delete: cache.delete.bind(cache) };
    const now = new RateLimiter('x', { size: 2, permitSeconds: 10 }, cache, clock.now);
    const later = new RateLimiter('x', { size: 2, permitSeconds: 10 }, shared, clock.now);
    try {
      const first = now.take('k');
      assert.equal(first instanceof Promise, false, 'no promise over the in-process cache');
      assert.deepEqual(first, { ok: true, remaining: 1 });
      const second = later.take('k');
      assert.equal(second instanceof Promise, true);
      assert.deepEqual(await second, { ok: true, remaining: 0 }, 'one bucket, whichever way it is reached');
      assert.deepEqual(now.take('k'), { ok: false, retryAfter: 10 });
      assert.deepEqual(await later.take('k'), { ok: false, retryAfter: 10 });
      clock.advance(10_000);
      assert.deepEqual(now.take('k'), { ok: true, remaining: 0 });
    } finally {
      cache.close();
    }
  });

  it('never hands out more than the bucket holds under concurrency', async () => {
    const cache = new MemoryCache();
    const l = new RateLimiter('x', { size: 6, permitSeconds: 3600 }, cache);
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => l.take('k')));
      assert.equal(results.filter((r) => r.ok).length, 6);
    } finally {
      cache.close();
    }
  });

  it('has the contract’s defaults, configurable by name', () => {
    assert.deepEqual(
      Object.fromEntries(Object.entries(LIMITER_DEFAULTS).filter(([k]) => !k.startsWith('verificationN') && !k.startsWith('verificationA'))),
      {
        registration: { size: 6, permitSeconds: 30 },
        verificationCaptcha: { size: 10, permitSeconds: 30 },
        verificationPushChallenge: { size: 5, permitSeconds: 30 },
        pin: { size: 10, permitSeconds: 86_400 },
        allocateDevice: { size: 6, permitSeconds: 120 },
        verifyDevice: { size: 6, permitSeconds: 120 },
      },
    );
    const c = loadConfig({ env: { SWITCHBOARD_RATE_LIMITS: 'pin=3/60,registration=1/1.5' } });
    const parsed = parseLimiterSpecs(c.phone.rateLimits);
    assert.deepEqual(parsed.pin, { size: 3, permitSeconds: 60 });
    assert.deepEqual(parsed.registration, { size: 1, permitSeconds: 1.5 });
    assert.deepEqual(parsed.verifyDevice, { size: 6, permitSeconds: 120 }, 'names not given keep their defaults');
    const cache = new MemoryCache();
    assert.equal(createRateLimiters(parsed, cache).pin.config.size, 3);
    cache.close();
    assert.throws(() => loadConfig({ env: {}, flags: { 'rate-limits': ['nosuch=1/1'] } }), /unknown rate limiter nosuch/);
    assert.throws(() => loadConfig({ env: {}, flags: { 'rate-limits': ['pin=ten'] } }), /expected name=size\/seconds/);
  });

  it('reads pacing and providers from the configuration, and refuses half a provider', () => {
    const c = loadConfig({ env: {} });
    assert.deepEqual(c.phone.smsPacing, [0, 60, 120, 300, 600]);
    assert.deepEqual(c.phone.voicePacing, [60, 300]);
    assert.deepEqual(c.phone.checkPacing, [0, 0, 0, 60, 120]);
    assert.equal(c.phone.codeProvider, 'local');
    assert.equal(c.phone.maxDevices, 6);
    assert.deepEqual(loadConfig({ env: {}, flags: { 'sms-pacing': ['0,30'] } }).phone.smsPacing, [0, 30]);
    assert.throws(() => loadConfig({ env: {}, flags: { 'sms-pacing': ['soon'] } }), /sms-pacing takes whole seconds/);
    assert.throws(() => loadConfig({ env: {}, flags: { 'verification-provider': 'twilio' } }), /needs --twilio-account-sid/);
    assert.throws(() => loadConfig({ env: {}, flags: { 'captcha-verify-url': 'https://captcha.example/siteverify' } }), /needs --captcha-secret/);
  });
});

describe('salted token hashes', () => {
  it('HKDF-SHA256(token, salt = the hex salt string, info "authtoken"), as WebCrypto computes it', async () => {
    const h = saltedHash('a device password');
    assert.match(h.salt, /^[0-9a-f]{32}$/);
    const enc = new TextEncoder();
    const key = await crypto.subtle.importKey('raw', enc.encode('a device password'), 'HKDF', false, ['deriveBits']);
    const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: enc.encode(h.salt), info: enc.encode('authtoken') }, key, 256);
    assert.equal(h.hash, Buffer.from(bits).toString('hex'));
    assert.equal(verifySaltedHash(h, 'a device password'), true);
    assert.equal(verifySaltedHash(h, 'a device passwore'), false);
    assert.equal(verifySaltedHash(h, 'a device password', true), false, 'a locked hash never verifies');
    assert.notEqual(saltedHash('a device password').hash, h.hash, 'a fresh salt each time');
  });
});

describe('E.164 normalisation', () => {
  it('accepts valid numbers only', () => {
    assert.equal(normalizeE164('+14155550123'), '+14155550123');
    assert.equal(normalizeE164('+4915123456789'), '+4915123456789');
    assert.equal(normalizeE164('+33612345678'), '+33612345678');
    for (const bad of ['14155550123', '+1415555012', '+15555550100', '+0123456789', '+1 415 555 0123', '+1415555012a', '']) assert.equal(normalizeE164(bad), null, bad);
  });
});
