// The provider adapters against a small local HTTP server speaking their APIs (Twilio-style Messages/Calls,
// hCaptcha/Turnstile-style siteverify), the local provider's file and log, and the startup warning.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { LocalProvider } from '../../src/identity/phone/providers/local.ts';
import { SiteverifyCaptcha } from '../../src/identity/phone/providers/siteverify.ts';
import { TwilioCodeSender } from '../../src/identity/phone/providers/twilio.ts';
import { ProviderError, type CodeMessage } from '../../src/identity/phone/providers/types.ts';
import { startServer } from '../../src/server.ts';
import { tempDir, testConfig } from '../helpers/server.ts';
import { CAPTCHA_SECRET, GOOD_CAPTCHA, startFakeProviders, TWILIO_SID, TWILIO_TOKEN, type FakeProviders } from './fake-providers.ts';
import { localEntries, providerFlags } from './helpers.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: pino({ level: 'info' }, stream) };
}

const msg = (over: Partial<CodeMessage> = {}): CodeMessage => ({ number: '+14155550123', code: '123456', transport: 'sms', locale: 'en', client: 'ios', sessionId: 's1', ...over });

async function providerError(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ProviderError, String(e));
    return e;
  }
  assert.fail('expected a ProviderError');
}

describe('Twilio-style code sender', () => {
  let fake: FakeProviders;
  let twilio: TwilioCodeSender;
  before(async () => {
    fake = await startFakeProviders();
    twilio = new TwilioCodeSender({ baseUrl: fake.url + '/', accountSid: TWILIO_SID, authToken: TWILIO_TOKEN, from: '+14155550100', timeoutMs: 2000 });
  });
  after(() => fake.close());

  it('sends an SMS: form-encoded To, From, Body to Messages.json with Basic <sid>:<token>', async () => {
    await twilio.send(msg());
    const r = fake.twilio.at(-1)!;
    assert.equal(r.resource, 'Messages.json');
    assert.equal(r.auth, 'Basic ' + Buffer.from(`${TWILIO_SID}:${TWILIO_TOKEN}`).toString('base64'));
    assert.deepEqual(Object.keys(r.form).sort(), ['Body', 'From', 'To']);
    assert.equal(r.form.To, '+14155550123');
    assert.equal(r.form.From, '+14155550100');
    assert.match(r.form.Body, /123456/);
  });

  it('places a voice call: TwiML that says the digits, to Calls.json', async () => {
    await twilio.send(msg({ transport: 'voice', code: '987654' }));
    const r = fake.twilio.at(-1)!;
    assert.equal(r.resource, 'Calls.json');
    assert.match(r.form.Twiml, /^<Response><Say>[^<]*9 8 7 6 5 4[^<]*<\/Say><\/Response>$/);
    assert.equal(fake.lastCode('+14155550123', 'Calls.json'), '987654');
  });

  it('maps Twilio errors to Signal’s failure reasons', async () => {
    const cases: Array<[{ status: number; code?: number }, string, boolean]> = [
      [{ status: 400, code: 21211 }, 'illegalArgument', true],
      [{ status: 400, code: 21610 }, 'providerRejected', true],
      [{ status: 400, code: 21614 }, 'providerRejected', true],
      [{ status: 400, code: 30000 }, 'providerRejected', false],
      [{ status: 429, code: 20429 }, 'providerUnavailable', false],
      [{ status: 503 }, 'providerUnavailable', false],
    ];
    for (const [failure, reason, permanent] of cases) {
      fake.failures.set('+14155550199', failure);
      const e = await providerError(twilio.send(msg({ number: '+14155550199' })));
      assert.deepEqual([e.reason, e.permanent], [reason, permanent], JSON.stringify(failure));
    }
    fake.failures.delete('+14155550199');
    const badAuth = new TwilioCodeSender({ baseUrl: fake.url, accountSid: TWILIO_SID, authToken: 'wrong', from: '+14155550100', timeoutMs: 2000 });
    assert.equal((await providerError(badAuth.send(msg()))).reason, 'providerUnavailable', 'our credentials are wrong: not the client’s fault');
  });

  it('treats an unreachable or silent provider as unavailable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const gone = new TwilioCodeSender({ baseUrl: `http://127.0.0.1:${port}`, accountSid: TWILIO_SID, authToken: TWILIO_TOKEN, from: '+1', timeoutMs: 2000 });
    assert.equal((await providerError(gone.send(msg()))).reason, 'providerUnavailable');

    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const slow = new TwilioCodeSender({ baseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, accountSid: TWILIO_SID, authToken: TWILIO_TOKEN, from: '+1', timeoutMs: 200 });
      const e = await providerError(slow.send(msg()));
      assert.equal(e.reason, 'providerUnavailable');
      assert.equal(e.permanent, false);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('siteverify captcha', () => {
  let fake: FakeProviders;
  before(async () => {
    fake = await startFakeProviders();
  });
  after(() => fake.close());

  it('posts secret, response, remoteip (and sitekey) and reads success', async () => {
    const v = new SiteverifyCaptcha({ url: `${fake.url}/siteverify`, secret: CAPTCHA_SECRET, siteKey: 'site-key-1', timeoutMs: 2000 });
    assert.equal(await v.verify(GOOD_CAPTCHA, '192.0.2.7'), true);
    assert.deepEqual(fake.siteverify.at(-1), { secret: CAPTCHA_SECRET, response: GOOD_CAPTCHA, remoteip: '192.0.2.7', sitekey: 'site-key-1' });
    assert.equal(await v.verify('some-other-token', '192.0.2.7'), false);
    assert.equal(await v.verify('', '192.0.2.7'), false);
  });

  it('an unusable service (our secret refused, 5xx, unreachable) is an error, not a refusal', async () => {
    const wrongSecret = new SiteverifyCaptcha({ url: `${fake.url}/siteverify`, secret: 'nope', siteKey: null, timeoutMs: 2000 });
    assert.equal((await providerError(wrongSecret.verify(GOOD_CAPTCHA, '192.0.2.7'))).reason, 'providerUnavailable');
    const v = new SiteverifyCaptcha({ url: `${fake.url}/siteverify`, secret: CAPTCHA_SECRET, siteKey: null, timeoutMs: 2000 });
    await providerError(v.verify('server-error', '192.0.2.7'));
    const gone = new SiteverifyCaptcha({ url: 'http://127.0.0.1:1/siteverify', secret: CAPTCHA_SECRET, siteKey: null, timeoutMs: 2000 });
    await providerError(gone.verify(GOOD_CAPTCHA, '192.0.2.7'));
  });
});

describe('local provider', () => {
  it('writes codes and push challenges to its file (one JSON line each) and to the log', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'sub', 'codes.log');
    const { lines, log } = capture();
    const p = new LocalProvider(file, log, () => Date.UTC(2030, 0, 1));
    await p.send(msg({ code: '424242' }));
    await p.send(msg({ code: '424242', transport: 'voice' }));
    await p.sendChallenge({ number: '+14155550123', pushToken: 'tok', pushTokenType: 'fcm', challenge: 'abc', sessionId: 's1' });
    const entries = localEntries(file);
    assert.deepEqual(entries.map((e) => [e.type, e.code ?? e.challenge]), [['sms', '424242'], ['voice', '424242'], ['push', 'abc']]);
    assert.equal(entries[0].time, '2030-01-01T00:00:00.000Z');
    assert.ok(lines.some((l) => l.code === '424242' && l.level === 40), 'logged at warn');
    assert.equal(await p.verify('anything'), true);
    assert.equal(await p.verify('  '), false);
  });
});

describe('startup', () => {
  it('warns loudly while the local provider is in use, and not once real providers are configured', async () => {
    const fake = await startFakeProviders();
    try {
      for (const [flags, warned] of [[{}, true], [providerFlags(fake), false]] as const) {
        const { lines, log } = capture();
        const server = await startServer(testConfig(tempDir(), flags), { log });
        await server.stop();
        const warning = lines.find((l) => /NOT FOR PRODUCTION/.test(String(l.msg)));
        assert.equal(Boolean(warning), warned, JSON.stringify(flags));
        if (warning) assert.equal(warning.level, 40);
      }
    } finally {
      await fake.close();
    }
  });
});
