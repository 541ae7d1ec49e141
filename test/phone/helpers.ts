// Phone sign-up tests: a server whose phone services run on a clock the test moves, HTTP calls with raw
// status/headers/body, the codes the providers delivered, and the whole sign-up flow in one call.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { tempDir, testConfig, type Flags } from '../helpers/server.ts';
import { CAPTCHA_SECRET, GOOD_CAPTCHA, TWILIO_SID, TWILIO_TOKEN, type FakeProviders } from './fake-providers.ts';

export type Json = Record<string, unknown>;

export class TestClock {
  t: number;
  constructor(start = Date.UTC(2030, 0, 15, 12, 0, 0)) {
    this.t = start;
  }
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export const MINUTE = 60_000;
export const DAY = 86_400_000;

export interface PhoneTestServer extends RunningServer {
  dataDir: string;
  sipPort: number;
  httpUrl: string;
  clock: TestClock;
  /** The last code the server delivered to `number` (from the fake Twilio, or the local provider's file). */
  code(number: string): string;
  close(): Promise<void>;
}

/** Flags pointing the real adapters (Twilio-style codes, siteverify captcha) at the fake providers. */
export function providerFlags(fake: FakeProviders): Flags {
  return {
    'verification-provider': 'twilio',
    'twilio-url': fake.url,
    'twilio-account-sid': TWILIO_SID,
    'twilio-auth-token': TWILIO_TOKEN,
    'twilio-from': '+14155550100',
    'captcha-verify-url': `${fake.url}/siteverify`,
    'captcha-secret': CAPTCHA_SECRET,
  };
}

export async function startPhoneServer(o: { flags?: Flags; fake?: FakeProviders; clock?: TestClock } = {}): Promise<PhoneTestServer> {
  const dataDir = tempDir('sb-phone-');
  const clock = o.clock ?? new TestClock();
  const config = testConfig(dataDir, { 'argon2-memory': '1024', 'argon2-passes': '1', 'phone-sweep-interval': '0', ...(o.fake ? providerFlags(o.fake) : {}), ...o.flags });
  const server = await startServer(config, { log: createLogger(config.logLevel), now: clock.now });
  const codeFile = path.join(dataDir, 'verification-codes.log');
  return {
    ...server,
    dataDir,
    clock,
    sipPort: server.sip[0].port,
    httpUrl: `http://127.0.0.1:${server.http.port}`,
    code(number: string) {
      if (o.fake) {
        const c = o.fake.lastCode(number);
        assert.ok(c, `no code was sent to ${number}`);
        return c;
      }
      return localEntries(codeFile).filter((e) => e.number === number && (e.type === 'sms' || e.type === 'voice')).at(-1)!.code as string;
    },
    async close() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The local provider's file: one JSON object a line. */
export function localEntries(file: string): Json[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Json);
}

export interface Reply {
  status: number;
  body: Json;
  headers: Headers;
}

export async function call(s: { httpUrl: string }, method: string, url: string, o: { body?: unknown; raw?: string; auth?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.body !== undefined || o.raw !== undefined) headers['content-type'] = 'application/json';
  if (o.auth) headers.authorization = o.auth;
  const r = await fetch(s.httpUrl + url, { method, headers, body: o.raw ?? (o.body !== undefined ? JSON.stringify(o.body) : undefined) });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Json) : {}, headers: r.headers };
}

export function basic(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

let serial = 0;
/** A fresh valid US number per call (+1 415 555 01xx, then +1 202 555 01xx, …). */
export function nextNumber(): string {
  const n = serial++;
  const area = ['415', '202', '312', '646', '213'][Math.floor(n / 100)];
  return `+1${area}5550${String(100 + (n % 100)).padStart(3, '0')}`;
}

/** Creates a session and solves its captcha: it may ask for codes now. */
export async function readySession(s: PhoneTestServer, number: string, captcha = GOOD_CAPTCHA): Promise<string> {
  const created = await call(s, 'POST', '/v1/verification/session', { body: { number } });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.id as string;
  const patched = await call(s, 'PATCH', `/v1/verification/session/${id}`, { body: { captcha } });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal(patched.body.allowedToRequestCode, true);
  return id;
}

/** A verified session for `number`. */
export async function verifiedSession(s: PhoneTestServer, number: string, captcha?: string): Promise<string> {
  const id = await readySession(s, number, captcha);
  const sent = await call(s, 'POST', `/v1/verification/session/${id}/code`, { body: { transport: 'sms', client: 'android-2021-03' } });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const checked = await call(s, 'PUT', `/v1/verification/session/${id}/code`, { body: { code: s.code(number) } });
  assert.equal(checked.status, 200, JSON.stringify(checked.body));
  assert.equal(checked.body.verified, true);
  return id;
}

export interface SignedUp {
  number: string;
  password: string;
  uuid: string;
  pni: string;
  /** Basic credentials of the primary device. */
  auth: string;
}

/** The whole flow: session, captcha, SMS code, check, POST /v1/registration. */
export async function signUp(s: PhoneTestServer, number: string, o: { password?: string; attributes?: Json; body?: Json; captcha?: string } = {}): Promise<SignedUp> {
  const password = o.password ?? `pw-${number}-${Math.random().toString(36).slice(2)}`;
  const sessionId = await verifiedSession(s, number, o.captcha);
  const r = await call(s, 'POST', '/v1/registration', {
    auth: basic(number, password),
    body: { sessionId, accountAttributes: { fetchesMessages: true, registrationId: 1234, ...o.attributes }, skipDeviceTransfer: true, ...o.body },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { number, password, uuid: r.body.uuid as string, pni: r.body.pni as string, auth: basic(`${r.body.uuid}.1`, password) };
}
