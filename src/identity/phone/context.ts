// What the phone services share: their ports, the clock, and the hooks into the rest of the server (forget
// cached Digest credentials, drop an AOR's SIP bindings). server.ts builds it.

import type { Logger } from '../../log.ts';
import type { AccountStore, Cache, PhoneStore } from '../../storage/ports.ts';
import type { Lockout } from '../lockout.ts';
import type { RateLimiters } from '../rate-limiter.ts';
import type { TokenService } from '../tokens.ts';

export const DAY_MS = 86_400_000;

export interface PhoneContext {
  store: PhoneStore;
  accounts: AccountStore;
  cache: Cache;
  limiters: RateLimiters;
  tokens: TokenService;
  /** The default realm: phone accounts are <e164>@realm. */
  realm: string;
  maxDevices: number;
  /** HMAC key of device link codes (derived from the master key: every node accepts every node's codes). */
  linkKey: Buffer;
  now: () => number;
  log: Logger;
  /** Forget cached Digest credentials of these auth usernames. */
  invalidate: (authUsers: string[]) => void;
  /** Remove every SIP binding of an address of record (its devices were replaced, locked or expired). */
  disconnect: (aor: string) => Promise<void>;
  /** Failure counting and lockouts of device Basic authentication (shared with SIP and HTTP login). */
  lockout?: Lockout;
}

/** Start of the UTC day of `t`: last-seen times are kept at day precision. */
export function dayOf(t: number): number {
  return Math.floor(t / DAY_MS) * DAY_MS;
}
