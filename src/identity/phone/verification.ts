// Verification sessions (docs/phone-registration.md, "Verification sessions"): a session per attempt to
// prove a number, held in the Cache port and updated with compare-and-set, so any node can serve any request.
//
// A session asks for a captcha (and a push challenge when the client gave a push token; solving either is
// enough), then allows codes by SMS, and by voice once an SMS was attempted, paced per session; then code
// checks, paced too. The code is never stored: it is derived from a per-session nonce with a key only the
// servers hold, so a resend repeats the same code and a cache dump reveals none.
//
// Pacing lists give, for the k-th attempt, the seconds to wait after the previous one (the first SMS after the
// session's creation, the first call after the latest SMS, the first check after the code was sent). Past the
// end of a list that attempt is over for the session: its next* field is null. The session lives 10 minutes
// after its last action, and never ends before an action that pacing still allows is due.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../log.ts';
import type { Cache, JsonValue } from '../../storage/ports.ts';
import type { RateLimiters } from '../rate-limiter.ts';
import { phoneError, rateLimited } from './errors.ts';
import { normalizeE164 } from './number.ts';
import { ProviderError, type CaptchaVerifier, type CodeSender, type CodeTransport, type PushSender } from './providers/types.ts';

export const SESSION_TTL_SECONDS = 600;

export interface Pacing {
  sms: number[];
  voice: number[];
  check: number[];
}

export const DEFAULT_PACING: Pacing = { sms: [0, 60, 120, 300, 600], voice: [60, 300], check: [0, 0, 0, 60, 120] };

type Requested = 'captcha' | 'pushChallenge';

type StoredSession = {
  id: string;
  number: string;
  createdAt: number;
  lastActionAt: number;
  expiresAt: number;
  pushToken: string | null;
  pushTokenType: 'apn' | 'fcm' | null;
  pushChallenge: string | null;
  mcc: string | null;
  mnc: string | null;
  requested: Requested[];
  smsCount: number;
  lastSmsAt: number | null;
  voiceCount: number;
  lastVoiceAt: number | null;
  checkCount: number;
  lastCheckAt: number | null;
  lastSendAt: number | null;
  codeNonce: string | null;
  verified: boolean;
};

/** The body of every verification answer. next* are seconds from now; null: not allowed (any more) in this session. */
export interface SessionView {
  id: string;
  nextSms: number | null;
  nextCall: number | null;
  nextVerificationAttempt: number | null;
  allowedToRequestCode: boolean;
  requestedInformation: Requested[];
  verified: boolean;
}

export interface CreateSessionRequest {
  number: string;
  pushToken?: string;
  pushTokenType?: 'apn' | 'fcm';
  mcc?: string;
  mnc?: string;
}

export interface UpdateSessionRequest {
  captcha?: string;
  pushChallenge?: string;
  pushToken?: string;
  pushTokenType?: 'apn' | 'fcm';
  mcc?: string;
  mnc?: string;
}

export interface VerificationOptions {
  cache: Cache;
  limiters: RateLimiters;
  codes: CodeSender;
  push: PushSender;
  captcha: CaptchaVerifier;
  pacing: Pacing;
  /** HMAC key the codes are derived with (from the master key: every node derives the same codes). */
  codeKey: Buffer;
  now: () => number;
  log: Logger;
}

export const SESSION_ID_PATTERN = '^[A-Za-z0-9_-]{32}$';
const SESSION_ID = new RegExp(SESSION_ID_PATTERN);

const key = (id: string) => `vs:${id}`;

function secondsUntil(due: number, now: number): number {
  return Math.max(0, Math.ceil((due - now) / 1000));
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class VerificationService {
  private readonly o: VerificationOptions;

  constructor(o: VerificationOptions) {
    this.o = o;
  }

  // --- pacing -------------------------------------------------------------------------------------------------

  private smsDue(s: StoredSession): number | null {
    const delays = this.o.pacing.sms;
    if (s.verified || s.smsCount >= delays.length) return null;
    return (s.smsCount === 0 ? s.createdAt : s.lastSmsAt!) + delays[s.smsCount] * 1000;
  }

  private voiceDue(s: StoredSession): number | null {
    const delays = this.o.pacing.voice;
    if (s.verified || s.smsCount === 0 || s.voiceCount >= delays.length) return null;
    return (s.voiceCount === 0 ? s.lastSmsAt! : s.lastVoiceAt!) + delays[s.voiceCount] * 1000;
  }

  private checkDue(s: StoredSession): number | null {
    const delays = this.o.pacing.check;
    if (s.verified || s.codeNonce === null || s.checkCount >= delays.length) return null;
    return (s.checkCount === 0 ? s.lastSendAt! : s.lastCheckAt!) + delays[s.checkCount] * 1000;
  }

  view(s: StoredSession, now = this.o.now()): SessionView {
    const sms = this.smsDue(s);
    const voice = this.voiceDue(s);
    const check = this.checkDue(s);
    return {
      id: s.id,
      nextSms: sms === null ? null : secondsUntil(sms, now),
      nextCall: voice === null ? null : secondsUntil(voice, now),
      nextVerificationAttempt: check === null ? null : secondsUntil(check, now),
      allowedToRequestCode: !s.verified && s.requested.length === 0 && (sms !== null || voice !== null),
      requestedInformation: [...s.requested],
      verified: s.verified,
    };
  }

  /** Ten minutes after the last action, but not before an action pacing allows is due (plus a minute to take it). */
  private expiry(s: StoredSession): number {
    let at = s.lastActionAt + SESSION_TTL_SECONDS * 1000;
    for (const due of [this.smsDue(s), this.voiceDue(s), this.checkDue(s)]) if (due !== null) at = Math.max(at, Math.min(due + 60_000, s.lastActionAt + 3_600_000));
    return at;
  }

  private code(s: StoredSession): string {
    const mac = createHmac('sha256', this.o.codeKey).update(`${s.id}:${s.codeNonce}`).digest();
    return String(mac.readUInt32BE(0) % 1_000_000).padStart(6, '0');
  }

  // --- storage ------------------------------------------------------------------------------------------------

  private async load(id: string): Promise<StoredSession> {
    const s = await this.o.cache.get<StoredSession & { [k: string]: JsonValue }>(key(id));
    if (s === null || s.expiresAt <= this.o.now()) throw phoneError('PHONE_ERR_SESSION_NOT_FOUND');
    return s;
  }

  private async save(s: StoredSession, expected: StoredSession | null): Promise<boolean> {
    s.expiresAt = this.expiry(s);
    const ttl = Math.max(1, Math.ceil((s.expiresAt - this.o.now()) / 1000));
    return this.o.cache.compareAndSet(key(s.id), expected as unknown as JsonValue, s as unknown as JsonValue, ttl);
  }

  /** Read-modify-write with compare-and-set: `fn` sees the current session and changes it (or throws). */
  private async mutate(id: string, fn: (s: StoredSession, now: number) => void): Promise<StoredSession> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.load(id);
      const next = structuredClone(current);
      const now = this.o.now();
      fn(next, now);
      next.lastActionAt = now;
      if (await this.save(next, current)) return next;
      if (attempt >= 20) throw new Error('verification session: too much contention');
    }
  }

  private async charge(number: string, address: string, body?: SessionView): Promise<void> {
    const byNumber = await this.o.limiters.verificationNumber.take(number);
    if (!byNumber.ok) throw rateLimited(byNumber.retryAfter, body as unknown as Record<string, unknown>, 'too many verification requests for this number');
    const byAddress = await this.o.limiters.verificationAddress.take(address);
    if (!byAddress.ok) throw rateLimited(byAddress.retryAfter, body as unknown as Record<string, unknown>, 'too many verification requests from this address');
  }

  private async sendPushChallenge(s: StoredSession): Promise<boolean> {
    const challenge = randomBytes(16).toString('hex');
    try {
      await this.o.push.sendChallenge({ number: s.number, pushToken: s.pushToken!, pushTokenType: s.pushTokenType!, challenge, sessionId: s.id });
    } catch (e) {
      this.o.log.warn({ err: e, session: s.id }, 'push challenge could not be sent; captcha only');
      return false;
    }
    s.pushChallenge = challenge;
    return true;
  }

  // --- the endpoints ------------------------------------------------------------------------------------------

  async create(req: CreateSessionRequest, address: string): Promise<SessionView> {
    const number = normalizeE164(req.number);
    if (number === null) throw phoneError('PHONE_ERR_NUMBER', { message: `${JSON.stringify(req.number)} is not a valid E.164 phone number` });
    if ((req.pushToken === undefined) !== (req.pushTokenType === undefined)) {
      throw phoneError('PHONE_ERR_INVALID', { message: 'pushToken and pushTokenType go together: give both or neither' });
    }
    await this.charge(number, address);
    const now = this.o.now();
    const s: StoredSession = {
      id: randomBytes(24).toString('base64url'),
      number,
      createdAt: now,
      lastActionAt: now,
      expiresAt: 0,
      pushToken: req.pushToken ?? null,
      pushTokenType: req.pushTokenType ?? null,
      pushChallenge: null,
      mcc: req.mcc ?? null,
      mnc: req.mnc ?? null,
      requested: ['captcha'],
      smsCount: 0,
      lastSmsAt: null,
      voiceCount: 0,
      lastVoiceAt: null,
      checkCount: 0,
      lastCheckAt: null,
      lastSendAt: null,
      codeNonce: null,
      verified: false,
    };
    if (s.pushToken !== null && (await this.sendPushChallenge(s))) s.requested.push('pushChallenge');
    if (!(await this.save(s, null))) throw new Error('verification session id collision');
    return this.view(s);
  }

  async get(id: string): Promise<SessionView> {
    return this.view(await this.load(id));
  }

  async update(id: string, req: UpdateSessionRequest, address: string): Promise<SessionView> {
    if ((req.pushToken === undefined) !== (req.pushTokenType === undefined)) {
      throw phoneError('PHONE_ERR_INVALID', { message: 'pushToken and pushTokenType go together: give both or neither' });
    }
    let s = await this.load(id);
    const now = this.o.now();
    // A push token given now: send a challenge, unless one was sent or nothing is requested any more.
    let newChallenge: { token: string; type: 'apn' | 'fcm'; challenge: string } | null = null;
    if (req.pushToken !== undefined && s.pushChallenge === null && s.requested.length > 0 && !s.verified) {
      const probe = { ...s, pushToken: req.pushToken, pushTokenType: req.pushTokenType! };
      if (await this.sendPushChallenge(probe)) newChallenge = { token: req.pushToken, type: req.pushTokenType!, challenge: probe.pushChallenge! };
    }

    let solved = false;
    let refused = false;
    const pending = s.requested.length > 0 && !s.verified;
    if (pending && req.pushChallenge !== undefined) {
      const r = await this.o.limiters.verificationPushChallenge.take(id);
      if (!r.ok) throw rateLimited(r.retryAfter, this.view(s, now) as unknown as Record<string, unknown>, 'too many push challenge attempts');
      const expected = s.pushChallenge ?? newChallenge?.challenge ?? null;
      if (expected !== null && sameSecret(expected, req.pushChallenge)) solved = true;
      else refused = true;
    }
    if (pending && !solved && req.captcha !== undefined) {
      const r = await this.o.limiters.verificationCaptcha.take(id);
      if (!r.ok) throw rateLimited(r.retryAfter, this.view(s, now) as unknown as Record<string, unknown>, 'too many captcha attempts');
      let ok: boolean;
      try {
        ok = await this.o.captcha.verify(req.captcha, address);
      } catch (e) {
        if (!(e instanceof ProviderError)) throw e;
        this.o.log.error({ err: e.message, provider: this.o.captcha.name }, 'captcha verification unavailable');
        throw phoneError('PHONE_ERR_PROVIDER_UNAVAILABLE', { message: 'captcha verification is unavailable; try again later', retryAfter: 30 });
      }
      if (ok) solved = true;
      else refused = true;
    }

    s = await this.mutate(id, (x) => {
      if (req.mcc !== undefined) x.mcc = req.mcc;
      if (req.mnc !== undefined) x.mnc = req.mnc;
      if (newChallenge && x.pushChallenge === null) {
        x.pushToken = newChallenge.token;
        x.pushTokenType = newChallenge.type;
        x.pushChallenge = newChallenge.challenge;
        if (x.requested.length > 0 && !x.requested.includes('pushChallenge')) x.requested.push('pushChallenge');
      }
      if (solved) x.requested = [];
    });
    const view = this.view(s);
    if (refused && !solved) throw phoneError('PHONE_ERR_CHALLENGE', { body: view as unknown as Record<string, unknown> });
    return view;
  }

  async requestCode(id: string, transport: CodeTransport, client: string | null, locale: string | null, address: string): Promise<SessionView> {
    const s = await this.load(id);
    const now = this.o.now();
    const body = () => this.view(s, now) as unknown as Record<string, unknown>;
    if (s.verified) throw phoneError('PHONE_ERR_SESSION_STATE', { message: 'the session is already verified', body: body() });
    if (s.requested.length > 0) throw phoneError('PHONE_ERR_SESSION_STATE', { message: `information still requested: ${s.requested.join(', ')}`, body: body() });
    const due = transport === 'sms' ? this.smsDue(s) : this.voiceDue(s);
    if (due === null) {
      const why = transport === 'voice' && s.smsCount === 0 ? 'a voice call is allowed only after an SMS attempt' : `no ${transport} codes left in this session`;
      throw phoneError('PHONE_ERR_TRANSPORT', { message: why, body: body() });
    }
    if (due > now) throw rateLimited(secondsUntil(due, now), body(), `next ${transport} code not yet allowed`);
    await this.charge(s.number, address, this.view(s, now));

    // Reserve the attempt first, so concurrent requests cannot both send; give it back if the provider fails.
    let before: Pick<StoredSession, 'lastSmsAt' | 'lastVoiceAt' | 'lastSendAt' | 'codeNonce'> | null = null;
    const reserved = await this.mutate(id, (x, t) => {
      const d = transport === 'sms' ? this.smsDue(x) : this.voiceDue(x);
      if (x.verified || x.requested.length > 0 || d === null) throw phoneError('PHONE_ERR_SESSION_STATE', { body: this.view(x, t) as unknown as Record<string, unknown> });
      if (d > t) throw rateLimited(secondsUntil(d, t), this.view(x, t) as unknown as Record<string, unknown>, `next ${transport} code not yet allowed`);
      before = { lastSmsAt: x.lastSmsAt, lastVoiceAt: x.lastVoiceAt, lastSendAt: x.lastSendAt, codeNonce: x.codeNonce };
      if (transport === 'sms') {
        x.smsCount++;
        x.lastSmsAt = t;
      } else {
        x.voiceCount++;
        x.lastVoiceAt = t;
      }
      x.lastSendAt = t;
      x.codeNonce ??= randomBytes(16).toString('hex');
    });
    try {
      await this.o.codes.send({ number: reserved.number, code: this.code(reserved), transport, locale, client, sessionId: id });
    } catch (e) {
      if (!(e instanceof ProviderError)) throw e;
      this.o.log.warn({ provider: this.o.codes.name, transport, reason: e.reason, permanent: e.permanent, err: e.message }, 'verification code not sent');
      // A failed send does not use up the attempt (the per-number and per-address buckets still count it).
      await this.mutate(id, (x) => {
        if (transport === 'sms') x.smsCount = Math.max(0, x.smsCount - 1);
        else x.voiceCount = Math.max(0, x.voiceCount - 1);
        Object.assign(x, before);
      }).catch(() => null);
      throw phoneError('PHONE_ERR_PROVIDER', { message: `the code could not be sent: ${e.reason}`, body: { reason: e.reason, permanentFailure: e.permanent } });
    }
    return this.view(reserved);
  }

  async submitCode(id: string, code: string): Promise<SessionView> {
    const s = await this.load(id);
    const now = this.o.now();
    const body = () => this.view(s, now) as unknown as Record<string, unknown>;
    if (s.verified) throw phoneError('PHONE_ERR_SESSION_STATE', { message: 'the session is already verified', body: body() });
    if (s.codeNonce === null) throw phoneError('PHONE_ERR_SESSION_STATE', { message: 'no code was sent in this session yet', body: body() });
    const due = this.checkDue(s);
    if (due === null) throw phoneError('PHONE_ERR_ATTEMPTS', { body: body() });
    if (due > now) throw rateLimited(secondsUntil(due, now), body(), 'next code check not yet allowed');
    const next = await this.mutate(id, (x, t) => {
      const d = this.checkDue(x);
      if (x.verified) throw phoneError('PHONE_ERR_SESSION_STATE', { message: 'the session is already verified', body: this.view(x, t) as unknown as Record<string, unknown> });
      if (d === null) throw phoneError('PHONE_ERR_ATTEMPTS', { body: this.view(x, t) as unknown as Record<string, unknown> });
      if (d > t) throw rateLimited(secondsUntil(d, t), this.view(x, t) as unknown as Record<string, unknown>, 'next code check not yet allowed');
      x.checkCount++;
      x.lastCheckAt = t;
      if (sameSecret(this.code(x), code.trim())) x.verified = true;
    });
    return this.view(next);
  }

  /** The session's number and whether it is verified; null when there is no such session. */
  async lookup(id: string): Promise<{ number: string; verified: boolean } | null> {
    if (!SESSION_ID.test(id)) return null;
    try {
      const s = await this.load(id);
      return { number: s.number, verified: s.verified };
    } catch {
      return null;
    }
  }

  /** Ends a session (after it registered an account). */
  async consume(id: string): Promise<void> {
    await this.o.cache.delete(key(id));
  }
}
