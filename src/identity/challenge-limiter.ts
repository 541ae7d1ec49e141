// Digest challenges per UDP source (amplification): a REGISTER with a forged source address is answered with a 401
// larger than itself (one challenge per algorithm) at whoever owns that address. A token bucket per source (IPv6: per
// /64) lets a NAT with many phones through (a burst, then a steady rate) and beyond it the challenge is not sent at
// all, as Kamailio's pike drops rather than answers a flood. Over TCP, TLS and WS the peer completed a handshake, so
// its address is real and nothing is limited.
//
// In-process, O(1) per challenge: a spoofed flood reaches one node, and the node's own 401s are what it must bound.
// Loopback sources are not limited: the kernel drops packets claiming them that arrive from outside (martians), so
// they cannot be forged from the network, and load tests and local SBCs send everything from there. Trusted networks
// (--auth-trusted-networks: an SBC, an office NAT) are not limited either.

import { sourceOf } from './lockout.ts';

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

interface Bucket {
  tokens: number;
  at: number;
  /** Dropping since the bucket last ran dry: the drop is logged once, not per challenge. */
  dropping: boolean;
}

/** Sources tracked at most (a flood of forged addresses must not grow the map without end); ~120 bytes each. */
const MAX_SOURCES = 100_000;

export class ChallengeLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly perMs: number;
  private readonly now: () => number;

  /** `burst` challenges at once, then `perSecond`; burst 0: unlimited. */
  constructor(burst: number, perSecond: number, now: () => number = Date.now) {
    this.burst = burst;
    this.perMs = perSecond / 1000;
    this.now = now;
  }

  get enabled(): boolean {
    return this.burst > 0;
  }

  /** 'ok': send it; 'drop': do not; 'start': do not, and the source just started being dropped (log it). */
  take(address: string): 'ok' | 'drop' | 'start' {
    if (isLoopback(address)) return 'ok';
    const key = sourceOf(address);
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= MAX_SOURCES) this.prune(now);
      b = { tokens: this.burst, at: now, dropping: false };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.dropping = false;
      return 'ok';
    }
    if (b.dropping) return 'drop';
    b.dropping = true;
    return 'start';
  }

  /** Full buckets are the same as none; if every source is busy, the oldest half goes (they start full again). */
  private prune(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(k);
    if (this.buckets.size < MAX_SOURCES) return;
    let n = this.buckets.size / 2;
    for (const k of this.buckets.keys()) {
      if (n-- <= 0) break;
      this.buckets.delete(k);
    }
  }
}
