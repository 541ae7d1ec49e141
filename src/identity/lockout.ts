// Brute-force lockouts that an attacker cannot turn against the account's owner (issue 15). Failed credential
// checks are counted three ways, on the FailureCounter port (in-process, or Redis between nodes):
//
// - per subject and source ("acct:alice@example.com" from 192.0.2.7): the throttle every guess meets, as Kamailio's
//   pike + auth and Signal-Server's limiters keyed on account+IP. Past --auth-account-address-failures that source
//   is refused for that subject, even with the right password, and nobody else is.
// - per source, across subjects (password spraying): past --auth-address-failures the source is refused for every
//   subject (trusted networks exempt).
// - per subject, across sources (a botnet guessing one account): past --auth-account-failures the subject is refused
//   only to sources it has not authenticated from before. A successful check remembers its source for
//   --auth-known-address-ttl, so the owner's phones and browsers keep working while strangers are locked out.
//
// IPv6 sources count per /64 (one customer's prefix: an attacker holding one rotates through 2^64 addresses for free).
// The subject is opaque here: SIP Digest and HTTP login share "acct:<user>@<realm>" (they guess one password), device
// Basic authentication uses "dev:<account>.<device>".

import { BlockList, isIP } from 'node:net';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { isPromise, settle } from '../maybe-promise.ts';
import type { FailureCounter } from '../storage/ports.ts';

export type LockoutPolicy = Config['auth'];

/**
 * The counter keys of one credential check, built when first read: a check while nothing is locked and a success
 * already remembered read none of them (the strings were ~0.4 µs of every authenticated REGISTER).
 */
export class LockoutKeys {
  readonly subject: string;
  /** The source address as the request came. */
  readonly address: string;
  private readonly trusted: boolean;
  private fromText: string | undefined;
  private pairText: string | undefined;
  private sourceText: string | undefined;

  constructor(subject: string, address: string, trusted: boolean) {
    this.subject = subject;
    this.address = address;
    this.trusted = trusted;
  }

  /** The source as counted (an IPv6 address as its /64), for logs. */
  get from(): string {
    return (this.fromText ??= sourceOf(this.address));
  }

  /** Subject and source: "<subject>|<source>". */
  get pair(): string {
    return (this.pairText ??= `${this.subject}|${this.from}`);
  }

  /** "addr:<source>", or null for a trusted source (never locked by address). */
  get source(): string | null {
    return this.trusted ? null : (this.sourceText ??= `addr:${this.from}`);
  }
}

export interface Locked {
  seconds: number;
  /** Which lock refused: the source everywhere, the source for this subject, or the subject for unknown sources. */
  scope: 'source' | 'pair' | 'subject';
}

/** 0: go ahead. */
export type Verdict = 0 | Locked;

/**
 * The source as failures are counted: an IPv4 address as is (IPv4-mapped IPv6 too), an IPv6 address as its /64
 * ("2001:db8:0:1::/64"). Cheap for IPv4 (one indexOf): it runs on every REGISTER that carries credentials.
 */
export function sourceOf(address: string): string {
  if (address.indexOf(':') < 0) return address;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.indexOf('.') > 0) return lower.slice(7);
  const zone = lower.indexOf('%');
  const text = zone >= 0 ? lower.slice(0, zone) : lower;
  const gap = text.indexOf('::');
  let groups: string[];
  if (gap < 0) groups = text.split(':');
  else {
    const head = gap === 0 ? [] : text.slice(0, gap).split(':');
    const tail = gap + 2 >= text.length ? [] : text.slice(gap + 2).split(':');
    groups = [...head, ...new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  }
  const prefix = groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(':')}::/64`;
}

/** Trusted networks (CIDRs or addresses) as a BlockList; empty when none are configured. */
export function networkList(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/');
    const family = isIP(net) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(net, family);
    else list.addSubnet(net, Number(bits), family);
  }
  return list;
}

export interface LockoutOptions {
  failures: FailureCounter;
  policy: LockoutPolicy;
  log: Logger;
  now?: () => number;
}

/** Known sources rewritten at most once per this long (or half their TTL) per process: each write is a round trip. */
const REMEMBER_EVERY_MS = 86_400_000;
/** At most this many "written recently" marks kept in-process (a plain bound: beyond it the map starts over). */
const MEMO_ENTRIES = 100_000;

export class Lockout {
  private readonly o: LockoutOptions;
  private readonly trusted: BlockList | null;
  private readonly now: () => number;
  /** "<pair>" → when this process last wrote it as known: a REGISTER every minute must not write every minute. */
  private readonly memo = new Map<string, number>();
  /**
   * The same marks for checks that name what they authenticated (a cached credential): the last source written
   * for it and when, found by identity rather than by hashing a fresh "<subject>|<source>" string per REGISTER.
   * A Map bounded like `memo`, not a WeakMap: a WeakMap's entries are ephemerons, which every mark-compact traces
   * in a phase of its own inside the pause; with 20,000 registered users that phase was 2.9–3.2 ms of each 16–22 ms
   * pause at 6,000 REGISTERs a second (bench/tools/gc-trace.sh, --trace-gc-nvp: mark 3.6–4.1 → 0.3–0.4 ms). A
   * credential the cache has dropped stays referenced here until the bound clears the map.
   */
  private readonly memoByHolder = new Map<object, { from: string; at: number }>();

  constructor(o: LockoutOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.trusted = networkList(o.policy.trustedNetworks);
  }

  isTrusted(address: string): boolean {
    return this.trusted !== null && this.trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  }

  keys(subject: string, address: string): LockoutKeys {
    return new LockoutKeys(subject, address, this.isTrusted(address));
  }

  /** Keys for a check that names no subject (a malformed user, a bad Bearer token): only the source counts. */
  sourceKeys(address: string): LockoutKeys {
    return this.keys('', address);
  }

  /**
   * Whether this check may go ahead. The three lock reads leave together (one round trip to a shared cache); a
   * subject lock costs one more read, of whether the source is known, and only while it is locked.
   */
  check(k: LockoutKeys): Verdict | Promise<Verdict> {
    const { failures } = this.o;
    // In-process, while nothing at all is locked (the usual state), the three lookups are skipped: measured ~1 µs of
    // a REGISTER's ~45 over TCP with 20,000 users.
    if (failures.anyLocked?.() === false) return 0;
    const source = k.source === null ? 0 : failures.lockedFor(k.source);
    const hasSubject = k.subject !== '';
    const pair = hasSubject ? failures.lockedFor(k.pair) : 0;
    const subject = hasSubject ? failures.lockedFor(k.subject) : 0;
    if (typeof source === 'number' && typeof pair === 'number' && typeof subject === 'number') return this.decide(k, source, pair, subject);
    return Promise.all([source, pair, subject]).then(([s, p, a]) => this.decide(k, s, p, a));
  }

  private decide(k: LockoutKeys, source: number, pair: number, subject: number): Verdict | Promise<Verdict> {
    if (source > 0) return { seconds: source, scope: 'source' };
    if (pair > 0) return { seconds: pair, scope: 'pair' };
    if (subject <= 0) return 0;
    const written = this.memo.get(k.pair);
    if (written !== undefined && this.now() - written < this.o.policy.knownAddressTtl * 1000) return 0;
    const known = this.o.failures.remembered('known:' + k.pair);
    const verdict = (yes: boolean): Verdict => (yes ? 0 : { seconds: subject, scope: 'subject' });
    return settle(known, verdict);
  }

  /** Counts a failed check; locks what crossed its limit (logged once, when it locks). */
  async fail(k: LockoutKeys): Promise<void> {
    const { failures, policy, log } = this.o;
    const hasSubject = k.subject !== '';
    const [pair, subject, source] = await Promise.all([
      hasSubject ? failures.hit(k.pair, policy.failureWindow) : 0,
      hasSubject ? failures.hit(k.subject, policy.failureWindow) : 0,
      k.source === null ? 0 : failures.hit(k.source, policy.failureWindow),
    ]);
    const seconds = policy.lockoutDuration;
    const locks: Array<void | Promise<void>> = [];
    if (hasSubject && pair >= policy.accountAddressFailures) {
      locks.push(failures.lock(k.pair, seconds));
      log.warn({ subject: k.subject, from: k.from, failures: pair, seconds }, 'source locked out of an account after repeated authentication failures');
    }
    if (hasSubject && subject >= policy.accountFailures) {
      locks.push(failures.lock(k.subject, seconds));
      log.warn({ subject: k.subject, failures: subject, seconds }, 'account locked for addresses it has not authenticated from, after repeated failures');
    }
    if (k.source !== null && source >= policy.addressFailures) {
      locks.push(failures.lock(k.source, seconds));
      log.warn({ from: k.from, failures: source, seconds }, 'source address locked after repeated authentication failures');
    }
    await Promise.all(locks);
  }

  /**
   * A successful check: its source becomes known to the subject (written at most once a day per process, not
   * awaited: this runs on the REGISTER path and must not throw). `holder`, when given, is an object standing for
   * the subject as long as it lives (the cached credential the check matched): the mark is kept on it.
   */
  succeeded(k: LockoutKeys, holder?: object): void {
    if (k.subject === '') return;
    const now = this.now();
    const every = Math.min(REMEMBER_EVERY_MS, this.o.policy.knownAddressTtl * 500);
    if (holder !== undefined) {
      const mark = this.memoByHolder.get(holder);
      if (mark !== undefined && mark.from === k.address && now - mark.at < every) return;
      if (mark === undefined && this.memoByHolder.size >= MEMO_ENTRIES) this.memoByHolder.clear();
      this.memoByHolder.set(holder, { from: k.address, at: now });
    }
    const last = this.memo.get(k.pair);
    if (last !== undefined && now - last < every) return;
    if (this.memo.size >= MEMO_ENTRIES) this.memo.clear();
    this.memo.set(k.pair, now);
    try {
      const w = this.o.failures.remember('known:' + k.pair, this.o.policy.knownAddressTtl);
      if (isPromise(w)) w.catch((err: unknown) => this.o.log.warn({ err }, 'could not remember a known address'));
    } catch (err) {
      this.o.log.warn({ err }, 'could not remember a known address');
    }
  }

  /** After a password change or a successful login: this source's guesses at the subject are forgotten. */
  async clear(k: LockoutKeys): Promise<void> {
    if (k.subject !== '') await this.o.failures.reset(k.pair);
  }
}
