// Password hashing for HTTP login: argon2id (RFC 9106) via @node-rs/argon2, PHC strings at rest. The default
// cost is OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane); bench/RESULTS.md has login throughput at it.

import { hash, verify } from '@node-rs/argon2';
import { timingSafeEqual } from 'node:crypto';
import { computeHa1 } from '../sip/digest.ts';

export interface Argon2Cost {
  memoryKiB: number;
  passes: number;
}

// @node-rs/argon2's Algorithm is a const enum, which erasable TypeScript cannot import; 2 is Argon2id.
const ARGON2ID = 2;

export class PasswordHasher {
  private readonly cost: Argon2Cost;
  private dummy: Promise<string> | null = null;

  constructor(cost: Argon2Cost) {
    this.cost = cost;
  }

  hash(password: string): Promise<string> {
    return hash(password, { algorithm: ARGON2ID as never, memoryCost: this.cost.memoryKiB, timeCost: this.cost.passes, parallelism: 1 });
  }

  /** Verifies against a PHC string; false on any malformed hash rather than throwing. */
  async verify(phc: string, password: string): Promise<boolean> {
    try {
      return await verify(phc, password);
    } catch {
      return false;
    }
  }

  /**
   * Burns the same work as a real verification, for unknown users, so that login takes the same time whether or
   * not the user exists.
   */
  async verifyNobody(password: string): Promise<false> {
    this.dummy ??= this.hash('switchboard-no-such-user');
    await this.verify(await this.dummy, password);
    return false;
  }

  /** True when the hash was made with a different cost than configured (rehash on next login). */
  needsRehash(phc: string): boolean {
    const m = /\$m=(\d+),t=(\d+)/.exec(phc);
    return !m || Number(m[1]) !== this.cost.memoryKiB || Number(m[2]) !== this.cost.passes;
  }
}

/**
 * Checks a password against a stored SHA-256 Digest HA1, for accounts that were imported with SIP credentials
 * only; a successful login then stores an argon2id hash (the HA1 is password-equivalent for SIP anyway).
 */
export function verifyByHa1(ha1: string, username: string, realm: string, password: string): boolean {
  const want = Buffer.from(ha1, 'latin1');
  const got = Buffer.from(computeHa1('SHA-256', username, realm, password), 'latin1');
  return want.length === got.length && timingSafeEqual(want, got);
}
