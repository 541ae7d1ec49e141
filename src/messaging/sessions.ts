// App sessions (source document 003's "session key"): a login creates one per device, with a random 256-bit key,
// an id (kid) and an expiry. The key authenticates the app's inbox (`Authorization: Session <kid>:<key>`) and is
// what an opted-in push payload is encrypted to (push payloads name the kid in clear).
//
// At rest the key is sealed (AES-256-GCM under a key derived from the master key, identity/seal.ts) together with
// its kid, so a sealed value moved to another row does not open: the server must be able to encrypt pushes to it,
// so a one-way hash would not do. Rollover makes a new session for the same device and cuts the old one's
// lifetime to the overlap window, so a push encrypted under the old key (in flight, or queued at the provider)
// still decrypts and the app can still authenticate with it until it has switched.
//
// A session ends with logout, at expiry, when the account's password changes (the owner of the subsystem calls
// endAccount), and is refused when its account is disabled or deleted (the rows cascade), when the account's
// credentials were revoked after it was created (credentialsValidAfter), or when its phone device is gone or locked.
// Those checks read the store on every authentication, so they hold on every node without any event.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sbError } from '../errors.ts';
import type { Sealer } from '../identity/seal.ts';
import type { AccountStore, PhoneStore } from '../storage/ports.ts';
import type { AppSessionRecord, AppSessionStore } from '../storage/ports/messaging.ts';

export interface AppSession {
  kid: string;
  accountId: string;
  deviceId: number | null;
  expiresAt: number;
}

export interface IssuedSession extends AppSession {
  /** The 256-bit key, base64url: given to the app once, never logged, never stored in the clear. */
  key: string;
}

export interface SessionOptions {
  store: AppSessionStore;
  accounts: Pick<AccountStore, 'findById'>;
  phone: Pick<PhoneStore, 'findDevice'>;
  sealer: Sealer;
  /** Session lifetime, seconds. */
  ttl: number;
  /** How long the old key stays good after a rollover, seconds. */
  overlap: number;
  now: () => number;
  onEvent?: (event: 'created' | 'rolled' | 'ended') => void;
  /** Told of rollovers and ends by kid (all the account's sessions: kid null), for what a session holds (the bridge). */
  onChange?: (c: SessionChange) => void;
}

export type SessionChange = { event: 'rolled'; accountId: string; from: string; to: AppSession } | { event: 'ended'; accountId: string; kid: string | null };

const KID = /^[A-Za-z0-9_-]{22}$/;
/** Sessions an account may hold at once; a login beyond it ends the oldest (logins in a loop cannot fill the table). */
export const MAX_SESSIONS_PER_ACCOUNT = 16;
const KEY = /^[A-Za-z0-9_-]{43}$/;

/** `Session <kid>:<key>` → its parts, or null. */
export function parseSessionAuthorization(header: string | undefined): { kid: string; key: string } | null {
  if (!header) return null;
  const m = /^Session[ ]+([A-Za-z0-9_-]{22}):([A-Za-z0-9_-]{43})$/i.exec(header.trim());
  return m ? { kid: m[1], key: m[2] } : null;
}

export class AppSessions {
  private readonly o: SessionOptions;

  constructor(o: SessionOptions) {
    this.o = o;
  }

  /** The clock sessions expire by (the stream closes a socket when its session does). */
  now(): number {
    return this.o.now();
  }

  async create(accountId: string, deviceId: number | null): Promise<IssuedSession> {
    const kid = randomBytes(16).toString('base64url');
    const key = randomBytes(32);
    const now = this.o.now();
    const expiresAt = now + this.o.ttl * 1000;
    const held = await this.o.store.listSessions(accountId);
    for (const old of held.slice(MAX_SESSIONS_PER_ACCOUNT - 1)) await this.o.store.deleteSession(old.kid);
    await this.o.store.createSession({ kid, accountId, deviceId, sealedKey: this.o.sealer.seal(Buffer.concat([Buffer.from(kid), key])), push: null, createdAt: now, expiresAt });
    this.o.onEvent?.('created');
    return { kid, accountId, deviceId, expiresAt, key: key.toString('base64url') };
  }

  /** The live session the kid and key name, or a 401. */
  async authenticate(kid: string, key: string): Promise<AppSession> {
    const fail = () => sbError('MSG_ERR_SESSION', undefined);
    if (!KID.test(kid) || !KEY.test(key)) throw fail();
    const found = await this.live(kid);
    const want = found?.key ?? Buffer.alloc(32);
    const got = Buffer.from(key, 'base64url');
    if (!found || got.length !== 32 || !timingSafeEqual(want, got)) throw fail();
    return found.session;
  }

  /** The key of a live session (to encrypt a push to), or null. */
  async keyOf(kid: string): Promise<Buffer | null> {
    return (await this.live(kid))?.key ?? null;
  }

  /** The newest live session of a device (or of the account's password logins, deviceId null). */
  async current(accountId: string, deviceId: number | null): Promise<AppSession | null> {
    for (const s of await this.o.store.listSessions(accountId, deviceId)) {
      if ((await this.live(s.kid)) !== null) return { kid: s.kid, accountId: s.accountId, deviceId: s.deviceId, expiresAt: s.expiresAt };
    }
    return null;
  }

  /** Where to push the session's device (null: nowhere). */
  async setPush(s: AppSession, push: AppSessionRecord['push']): Promise<void> {
    await this.o.store.setSessionPush(s.kid, push);
  }

  /** The account's live sessions that asked for pushes, each with its key (to seal pushes to). */
  async pushTargets(accountId: string): Promise<Array<{ session: AppSession; push: NonNullable<AppSessionRecord['push']>; key: Buffer }>> {
    const out = [];
    for (const r of await this.o.store.listSessions(accountId)) {
      if (!r.push) continue;
      const live = await this.live(r.kid);
      if (live) out.push({ session: live.session, push: r.push, key: live.key });
    }
    return out;
  }

  /** A new key for the session's device; the old one stays good for the overlap window; the push target moves over. */
  async rollover(s: AppSession): Promise<IssuedSession> {
    const next = await this.create(s.accountId, s.deviceId);
    const push = (await this.o.store.getSession(s.kid))?.push ?? null;
    if (push) {
      await this.o.store.setSessionPush(next.kid, push);
      await this.o.store.setSessionPush(s.kid, null);
    }
    await this.o.store.shortenSession(s.kid, this.o.now() + this.o.overlap * 1000);
    this.o.onEvent?.('rolled');
    this.o.onChange?.({ event: 'rolled', accountId: s.accountId, from: s.kid, to: next });
    return next;
  }

  async logout(s: AppSession): Promise<void> {
    if (await this.o.store.deleteSession(s.kid)) this.o.onEvent?.('ended');
    this.o.onChange?.({ event: 'ended', accountId: s.accountId, kid: s.kid });
  }

  /** Whether the account has a live session (any device). */
  async anyLive(accountId: string): Promise<boolean> {
    for (const s of await this.o.store.listSessions(accountId)) if ((await this.live(s.kid)) !== null) return true;
    return false;
  }

  /** Ends every session of the account (a password change), or of one device. */
  async endAccount(accountId: string, deviceId?: number): Promise<number> {
    const n = await this.o.store.deleteSessions(accountId, deviceId);
    for (let i = 0; i < n; i++) this.o.onEvent?.('ended');
    this.o.onChange?.({ event: 'ended', accountId, kid: null });
    return n;
  }

  async sweep(): Promise<number> {
    return this.o.store.expireSessions(this.o.now());
  }

  private async live(kid: string): Promise<{ session: AppSession; key: Buffer } | null> {
    const r = await this.o.store.getSession(kid);
    const now = this.o.now();
    if (!r || r.expiresAt <= now) return null;
    const account = await this.o.accounts.findById(r.accountId);
    if (!account || account.disabled || r.createdAt <= account.credentialsValidAfter) return null;
    if (r.deviceId !== null) {
      const d = await this.o.phone.findDevice(r.accountId, r.deviceId);
      if (!d || d.disabled || d.device.locked) return null;
    }
    let opened: Buffer;
    try {
      opened = this.o.sealer.open(r.sealedKey);
    } catch {
      return null;
    }
    if (opened.length !== kid.length + 32 || opened.subarray(0, kid.length).toString() !== kid) return null;
    return { session: { kid, accountId: r.accountId, deviceId: r.deviceId, expiresAt: r.expiresAt }, key: opened.subarray(kid.length) };
  }
}
