// Verification sessions over real HTTP, row by row of docs/phone-registration.md's first table, with the
// real captcha (siteverify) and SMS/voice (Twilio-style) adapters talking to a local fake of those APIs, and the
// session pacing driven by a clock the test moves.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GOOD_CAPTCHA, startFakeProviders, type FakeProviders } from './fake-providers.ts';
import { call, localEntries, MINUTE, nextNumber, readySession, startPhoneServer, type Json, type PhoneTestServer } from './helpers.ts';

const SESSION_FIELDS = ['allowedToRequestCode', 'id', 'nextCall', 'nextSms', 'nextVerificationAttempt', 'requestedInformation', 'verified'];
const MISSING_ID = 'A'.repeat(32);

function assertSession(body: Json): void {
  for (const f of SESSION_FIELDS) assert.ok(f in body, `session body lacks ${f}: ${JSON.stringify(body)}`);
}

describe('verification sessions', () => {
  let fake: FakeProviders;
  let s: PhoneTestServer;
  before(async () => {
    fake = await startFakeProviders();
    s = await startPhoneServer({ fake, flags: { 'rate-limits': ['verificationNumber=50/1', 'verificationAddress=1000/1'] } });
  });
  after(async () => {
    await s.close();
    await fake.close();
  });

  describe('POST /v1/verification/session', () => {
    it('200: a new session that asks for a captcha', async () => {
      const r = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), mcc: '310', mnc: '260' } });
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.body).sort(), SESSION_FIELDS);
      assert.match(r.body.id as string, /^[A-Za-z0-9_-]{32}$/);
      assert.deepEqual(r.body.requestedInformation, ['captcha']);
      assert.equal(r.body.allowedToRequestCode, false);
      assert.equal(r.body.verified, false);
      assert.equal(r.body.nextSms, 0);
      assert.equal(r.body.nextCall, null, 'voice only after an SMS attempt');
      assert.equal(r.body.nextVerificationAttempt, null, 'no code to check yet');
    });

    it('200 with a push token: also asks for the push challenge, which is sent by push', async () => {
      const number = nextNumber();
      const r = await call(s, 'POST', '/v1/verification/session', { body: { number, pushToken: 'fcm-token-1', pushTokenType: 'fcm' } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.requestedInformation, ['captcha', 'pushChallenge']);
      const pushed = localEntries(path.join(s.dataDir, 'verification-codes.log')).filter((e) => e.type === 'push' && e.number === number);
      assert.equal(pushed.length, 1);
      assert.match(pushed[0].challenge as string, /^[0-9a-f]{32}$/);
    });

    it('normalises the number (E.164 via libphonenumber)', async () => {
      // Same number twice: both sessions exist, and the number is taken as given in E.164.
      const r = await call(s, 'POST', '/v1/verification/session', { body: { number: '+4915123456789' } });
      assert.equal(r.status, 200);
    });

    it('400 for JSON that does not parse', async () => {
      const r = await call(s, 'POST', '/v1/verification/session', { raw: '{"number": "+1415' });
      assert.equal(r.status, 400);
      assert.ok((r.body.error as Json).code);
    });

    it('422 for an invalid number', async () => {
      for (const number of ['14155550123', '+1555555010', '+15555550100', 'not a number', '+1 415 555 0123', '']) {
        const r = await call(s, 'POST', '/v1/verification/session', { body: { number } });
        assert.equal(r.status, 422, number);
        assert.ok(['PHONE_ERR_NUMBER', 'PHONE_ERR_INVALID'].includes((r.body.error as Json).code as string));
      }
      assert.equal((await call(s, 'POST', '/v1/verification/session', { body: {} })).status, 422, 'number missing');
      assert.equal((await call(s, 'POST', '/v1/verification/session', { body: { number: 14155550123 } })).status, 422, 'not a string');
    });

    it('422 for half a push token pair', async () => {
      const a = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), pushToken: 't' } });
      const b = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), pushTokenType: 'apn' } });
      const c = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), pushToken: 't', pushTokenType: 'gcm' } });
      assert.deepEqual([a.status, b.status, c.status], [422, 422, 422]);
    });
  });

  describe('PATCH /v1/verification/session/{id}', () => {
    it('a solved captcha removes both requests and allows codes', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), pushToken: 'apn-token', pushTokenType: 'apn' } });
      const r = await call(s, 'PATCH', `/v1/verification/session/${created.body.id}`, { body: { captcha: GOOD_CAPTCHA } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.requestedInformation, []);
      assert.equal(r.body.allowedToRequestCode, true);
      assert.equal(fake.siteverify.at(-1)!.response, GOOD_CAPTCHA);
      assert.equal(fake.siteverify.at(-1)!.remoteip, '127.0.0.1');
    });

    it('a solved push challenge removes both requests too', async () => {
      const number = nextNumber();
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number, pushToken: 'fcm-token', pushTokenType: 'fcm' } });
      const challenge = localEntries(path.join(s.dataDir, 'verification-codes.log')).findLast((e) => e.type === 'push' && e.number === number)!.challenge;
      const r = await call(s, 'PATCH', `/v1/verification/session/${created.body.id}`, { body: { pushChallenge: challenge } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.requestedInformation, []);
      assert.equal(r.body.allowedToRequestCode, true);
    });

    it('a push token given later sends a challenge and asks for it', async () => {
      const number = nextNumber();
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number } });
      const r = await call(s, 'PATCH', `/v1/verification/session/${created.body.id}`, { body: { pushToken: 'late-token', pushTokenType: 'fcm' } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.requestedInformation, ['captcha', 'pushChallenge']);
    });

    it('403 for a wrong captcha or a wrong push challenge, with the session body', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), pushToken: 'fcm-token', pushTokenType: 'fcm' } });
      const id = created.body.id as string;
      const wrongCaptcha = await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { captcha: 'bad-captcha' } });
      assert.equal(wrongCaptcha.status, 403);
      assertSession(wrongCaptcha.body);
      assert.deepEqual(wrongCaptcha.body.requestedInformation, ['captcha', 'pushChallenge']);
      assert.equal((wrongCaptcha.body.error as Json).code, 'PHONE_ERR_CHALLENGE');
      const wrongPush = await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { pushChallenge: 'f'.repeat(32) } });
      assert.equal(wrongPush.status, 403);
      assertSession(wrongPush.body);
    });

    it('503 with Retry-After when the captcha service fails', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      const r = await call(s, 'PATCH', `/v1/verification/session/${created.body.id}`, { body: { captcha: 'server-error' } });
      assert.equal(r.status, 503);
      assert.ok(Number(r.headers.get('retry-after')) > 0);
    });

    it('404 for an unknown session, 422 for a malformed id', async () => {
      assert.equal((await call(s, 'PATCH', `/v1/verification/session/${MISSING_ID}`, { body: { captcha: GOOD_CAPTCHA } })).status, 404);
      assert.equal((await call(s, 'PATCH', '/v1/verification/session/short', { body: { captcha: GOOD_CAPTCHA } })).status, 422);
      assert.equal((await call(s, 'PATCH', `/v1/verification/session/${'!'.repeat(32)}`, { body: {} })).status, 422);
    });

    it('429 with Retry-After past the verificationCaptcha bucket (10 / 30 s per session)', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      const id = created.body.id as string;
      for (let i = 0; i < 10; i++) assert.equal((await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { captcha: `wrong-${i}` } })).status, 403);
      const r = await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { captcha: GOOD_CAPTCHA } });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '30');
      assertSession(r.body);
      s.clock.advance(30_000);
      assert.equal((await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { captcha: GOOD_CAPTCHA } })).status, 200, 'one permit back after 30 s');
    });

    it('429 with Retry-After past the verificationPushChallenge bucket (5 / 30 s per session)', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber(), pushToken: 'x', pushTokenType: 'apn' } });
      const id = created.body.id as string;
      for (let i = 0; i < 5; i++) assert.equal((await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { pushChallenge: `nope-${i}` } })).status, 403);
      const r = await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { pushChallenge: 'nope' } });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '30');
    });
  });

  describe('GET /v1/verification/session/{id}', () => {
    it('200, 404, 422', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      const r = await call(s, 'GET', `/v1/verification/session/${created.body.id}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, created.body);
      assert.equal((await call(s, 'GET', `/v1/verification/session/${MISSING_ID}`)).status, 404);
      assert.equal((await call(s, 'GET', '/v1/verification/session/not-an-id')).status, 422);
    });

    it('the session ends 10 minutes after its last action', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      const id = created.body.id as string;
      s.clock.advance(9 * MINUTE);
      assert.equal((await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { mcc: '310' } })).status, 200, 'an action');
      s.clock.advance(9 * MINUTE);
      assert.equal((await call(s, 'GET', `/v1/verification/session/${id}`)).status, 200, '18 min after creation, 9 after the last action');
      s.clock.advance(MINUTE + 1000);
      assert.equal((await call(s, 'GET', `/v1/verification/session/${id}`)).status, 404);
    });
  });

  describe('POST /v1/verification/session/{id}/code', () => {
    it('200: the code goes out by SMS through the Twilio-style API', async () => {
      const number = nextNumber();
      const id = await readySession(s, number);
      const r = await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms', client: 'ios' } });
      assert.equal(r.status, 200);
      assertSession(r.body);
      assert.equal(r.body.nextSms, 60);
      assert.equal(r.body.nextCall, 60);
      assert.equal(r.body.nextVerificationAttempt, 0);
      const sent = fake.twilio.at(-1)!;
      assert.equal(sent.resource, 'Messages.json');
      assert.equal(sent.form.To, number);
      assert.equal(sent.form.From, '+14155550100');
      assert.match(s.code(number), /^[0-9]{6}$/);
    });

    it('paces SMS 0, 1, 2, 5, 10 min and voice (after an SMS) 1, 5 min; null when used up; a resend repeats the code', async () => {
      const number = nextNumber();
      const id = await readySession(s, number);
      const sms = () => call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      const voice = () => call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'voice' } });
      const early = await voice();
      assert.equal(early.status, 418, 'voice before any SMS');
      assertSession(early.body);
      assert.equal((await sms()).status, 200);
      const first = s.code(number);
      for (const wait of [1, 2, 5, 10]) {
        const paced = await sms();
        assert.equal(paced.status, 429, `SMS before ${wait} min`);
        assert.equal(paced.headers.get('retry-after'), String(wait * 60));
        assert.equal(paced.body.nextSms, wait * 60);
        assertSession(paced.body);
        s.clock.advance(wait * MINUTE);
        const ok = await sms();
        assert.equal(ok.status, 200, `SMS after ${wait} min`);
        assert.equal(s.code(number), first, 'the same code every time');
      }
      const done = await sms();
      assert.equal(done.status, 418, 'five SMS are all a session gets');
      assert.equal(done.body.nextSms, null);

      // Voice: 1 min after the latest SMS, then 5 min.
      assert.equal(done.body.nextCall, 60);
      s.clock.advance(MINUTE);
      const v1 = await voice();
      assert.equal(v1.status, 200);
      assert.equal(fake.twilio.at(-1)!.resource, 'Calls.json');
      assert.match(fake.twilio.at(-1)!.form.Twiml, /^<Response><Say>.*<\/Say><\/Response>$/);
      assert.equal(fake.lastCode(number, 'Calls.json'), first);
      assert.equal(v1.body.nextCall, 300);
      const v2early = await voice();
      assert.equal(v2early.status, 429);
      assert.equal(v2early.headers.get('retry-after'), '300');
      s.clock.advance(5 * MINUTE);
      const v2 = await voice();
      assert.equal(v2.status, 200);
      assert.equal(v2.body.nextCall, null);
      assert.equal((await voice()).status, 418);
    });

    it('409 while information is still requested, and once verified', async () => {
      const created = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      const r = await call(s, 'POST', `/v1/verification/session/${created.body.id}/code`, { body: { transport: 'sms' } });
      assert.equal(r.status, 409);
      assertSession(r.body);
      const number = nextNumber();
      const id = await readySession(s, number);
      await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code: s.code(number) } });
      s.clock.advance(MINUTE);
      const again = await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      assert.equal(again.status, 409);
      assert.equal(again.body.verified, true);
    });

    it('440 {reason, permanentFailure} when the provider fails; the attempt is not used up', async () => {
      const invalid = nextNumber();
      fake.failures.set(invalid, { status: 400, code: 21211 });
      const id = await readySession(s, invalid);
      const r = await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      assert.equal(r.status, 440);
      assert.equal(r.body.reason, 'illegalArgument');
      assert.equal(r.body.permanentFailure, true);

      const busy = nextNumber();
      fake.failures.set(busy, { status: 503 });
      const id2 = await readySession(s, busy);
      const r2 = await call(s, 'POST', `/v1/verification/session/${id2}/code`, { body: { transport: 'sms' } });
      assert.equal(r2.status, 440);
      assert.equal(r2.body.reason, 'providerUnavailable');
      assert.equal(r2.body.permanentFailure, false);
      const after = await call(s, 'GET', `/v1/verification/session/${id2}`);
      assert.equal(after.body.nextSms, 0, 'a failed send is not an attempt');
      assert.equal(after.body.nextVerificationAttempt, null);
      fake.failures.delete(busy);
      assert.equal((await call(s, 'POST', `/v1/verification/session/${id2}/code`, { body: { transport: 'sms' } })).status, 200);
    });

    it('404, 422 (malformed id, bad transport)', async () => {
      assert.equal((await call(s, 'POST', `/v1/verification/session/${MISSING_ID}/code`, { body: { transport: 'sms' } })).status, 404);
      assert.equal((await call(s, 'POST', '/v1/verification/session/x/code', { body: { transport: 'sms' } })).status, 422);
      const id = await readySession(s, nextNumber());
      assert.equal((await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'pigeon' } })).status, 422);
    });
  });

  describe('PUT /v1/verification/session/{id}/code', () => {
    it('200 verified false for a wrong code, 200 verified true for the right one; then 409', async () => {
      const number = nextNumber();
      const id = await readySession(s, number);
      await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      const code = s.code(number);
      const wrong = await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code: code === '000000' ? '111111' : '000000' } });
      assert.equal(wrong.status, 200);
      assert.equal(wrong.body.verified, false);
      const right = await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code } });
      assert.equal(right.status, 200);
      assert.equal(right.body.verified, true);
      assert.equal(right.body.allowedToRequestCode, false);
      assert.deepEqual([right.body.nextSms, right.body.nextCall, right.body.nextVerificationAttempt], [null, null, null]);
      const again = await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code } });
      assert.equal(again.status, 409);
      assert.equal(again.body.verified, true);
    });

    it('409 before any code was sent', async () => {
      const id = await readySession(s, nextNumber());
      const r = await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code: '123456' } });
      assert.equal(r.status, 409);
      assertSession(r.body);
    });

    it('paces checks 0, 0, 1, 2 min between five; then 429 without Retry-After (start a new session)', async () => {
      const number = nextNumber();
      const id = await readySession(s, number);
      await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      const wrong = s.code(number) === '999999' ? '888888' : '999999';
      const check = () => call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code: wrong } });
      for (let i = 0; i < 3; i++) assert.equal((await check()).status, 200, `check ${i + 1} at once`);
      const paced = await check();
      assert.equal(paced.status, 429);
      assert.equal(paced.headers.get('retry-after'), '60');
      assert.equal(paced.body.nextVerificationAttempt, 60);
      s.clock.advance(MINUTE);
      assert.equal((await check()).status, 200, 'check 4');
      const paced2 = await check();
      assert.equal(paced2.headers.get('retry-after'), '120');
      s.clock.advance(2 * MINUTE);
      const fifth = await check();
      assert.equal(fifth.status, 200, 'check 5');
      assert.equal(fifth.body.nextVerificationAttempt, null);
      const over = await check();
      assert.equal(over.status, 429);
      assert.equal(over.headers.get('retry-after'), null, 'no Retry-After: the session has no checks left');
      assert.equal((over.body.error as Json).code, 'PHONE_ERR_ATTEMPTS');
      assertSession(over.body);
      const right = await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code: s.code(number) } });
      assert.equal(right.status, 429, 'not even the right code');
    });

    it('404 and 422', async () => {
      assert.equal((await call(s, 'PUT', `/v1/verification/session/${MISSING_ID}/code`, { body: { code: '123456' } })).status, 404);
      assert.equal((await call(s, 'PUT', '/v1/verification/session/bad/code', { body: { code: '123456' } })).status, 422);
      const id = await readySession(s, nextNumber());
      assert.equal((await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: {} })).status, 422);
    });
  });
});

describe('per-number and per-address buckets on verification', () => {
  it('429 with Retry-After for session creation and code requests beyond them', async () => {
    const fake = await startFakeProviders();
    const s = await startPhoneServer({ fake, flags: { 'rate-limits': ['verificationNumber=3/60', 'verificationAddress=5/10'] } });
    try {
      const number = nextNumber();
      const id = await readySession(s, number); // 1 for the number
      assert.equal((await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } })).status, 200); // 2
      assert.equal((await call(s, 'POST', '/v1/verification/session', { body: { number } })).status, 200); // 3
      const r = await call(s, 'POST', '/v1/verification/session', { body: { number } });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '60');
      s.clock.advance(MINUTE);
      const code = await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      assert.equal(code.status, 200, 'one permit back for the number');
      const paced = await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms' } });
      assert.equal(paced.status, 429, 'the per-session pacing');
      // The address bucket (5 / 10 s, full again after the minute) has 4 permits left: sessions for other numbers
      // spend them, then 127.0.0.1 is refused whatever the number.
      let created = 0;
      let other = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      while (other.status === 200 && created < 10) {
        created++;
        other = await call(s, 'POST', '/v1/verification/session', { body: { number: nextNumber() } });
      }
      assert.equal(created, 4);
      assert.equal(other.status, 429);
      assert.equal(other.headers.get('retry-after'), '10');
      assert.match((other.body.error as Json).message as string, /address/);
    } finally {
      await s.close();
      await fake.close();
    }
  });
});
