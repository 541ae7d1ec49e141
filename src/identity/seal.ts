// Sealing secrets at rest: AES-256-GCM with a random 96-bit IV, the key derived from the master key for one
// purpose, and the purpose bound in as associated data so a sealed value cannot be moved to another use.
// Format: base64url(iv | tag | ciphertext).

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export class Sealer {
  private readonly key: Buffer;
  private readonly aad: Buffer;

  constructor(key: Buffer, purpose: string) {
    if (key.length !== 32) throw new Error('AES-256-GCM needs a 32-byte key');
    this.key = key;
    this.aad = Buffer.from(purpose, 'utf8');
  }

  seal(plain: string | Buffer): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(this.aad);
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
  }

  open(sealed: string): Buffer {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 28) throw new Error('sealed value too short');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    d.setAAD(this.aad);
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
  }
}
