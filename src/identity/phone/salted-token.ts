// Salted token hashes for device passwords, registration-lock tokens and recovery passwords, as Signal-Server
// stores them: 16 random bytes of salt as hex; hash = HKDF-SHA256(ikm = token, salt = the hex salt string,
// info = "authtoken", 32 bytes), as hex. Verification is constant-time and costs the same for a locked device,
// whose hash can never verify.

import { hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SaltedHash } from '../../storage/ports.ts';

function derive(token: string, salt: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(token, 'utf8'), Buffer.from(salt, 'utf8'), 'authtoken', 32));
}

export function saltedHash(token: string): SaltedHash {
  const salt = randomBytes(16).toString('hex');
  return { salt, hash: derive(token, salt).toString('hex') };
}

export function verifySaltedHash(stored: SaltedHash, token: string, locked = false): boolean {
  const got = derive(token, stored.salt);
  const want = Buffer.from(stored.hash, 'hex');
  const same = want.length === got.length && timingSafeEqual(want, got);
  return same && !locked;
}
