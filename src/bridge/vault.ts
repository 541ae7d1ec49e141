// The vault (the Bitwarden/Matrix-4S key hierarchy): per account one random 256-bit Secret, stored only wrapped
// (AES-256-GCM, AAD = account id + slot) by a key from one way of opening it:
//
//   password    argon2id(password, its own 16-byte salt — not the login hash's), the cost of --argon2-memory/passes
//   recovery    HKDF-SHA256(recovery key, salt): 256 random bits shown once at creation, so no slow KDF is needed
//   device:<n>  HKDF-SHA256(device key, salt): a phone account (no password) sends a 256-bit key its device made and
//               keeps (POST /v1/sessions with Basic device credentials and `deviceKey`); the server never stores it
//
// Linked credentials are encrypted under the Secret, never under a password, so a password change rewraps only the
// Secret (linked ciphertexts stay byte-identical), and the recovery key still opens it after an administrator set
// a new password without knowing the old one. A wrap that does not open (wrong password, wrong key) is a 401: GCM's
// tag fails, which says nothing about how close the guess was.

import { hashRaw } from '@node-rs/argon2';
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { sbError } from '../errors.ts';
import type { VaultSlot, VaultStore, VaultWrap } from '../storage/ports/bridge.ts';

export interface VaultCost {
  memoryKiB: number;
  passes: number;
}

// @node-rs/argon2's Algorithm is a const enum, which erasable TypeScript cannot import; 2 is Argon2id.
const ARGON2ID = 2;
const HKDF = 'hkdf-sha256';

/** What opening a vault gives: the Secret (a fresh buffer the caller zeroes) and, at creation only, the recovery key. */
export interface Opened {
  secret: Buffer;
  recoveryKey: string | null;
}

export class Vault {
  private readonly store: VaultStore;
  private readonly cost: VaultCost;

  constructor(store: VaultStore, cost: VaultCost) {
    this.store = store;
    this.cost = cost;
  }

  /**
   * Opens the account's vault with its password, creating it (with a recovery key, returned once) when there is none.
   * 401 BRIDGE_ERR_VAULT_PASSWORD when the password does not open it; 409 BRIDGE_ERR_VAULT_RECOVERY when an
   * administrator reset the password (no password wrap) and no recovery key was given.
   */
  async openWithPassword(accountId: string, password: string, recoveryKey?: string): Promise<Opened> {
    const wraps = await this.store.getWraps(accountId);
    if (wraps.length === 0) return this.create(accountId, 'password', await this.passwordWrapKey(password));
    const w = wraps.find((x) => x.slot === 'password');
    if (w) return { secret: await this.unwrap(accountId, w, password, 'BRIDGE_ERR_VAULT_PASSWORD'), recoveryKey: null };
    if (!recoveryKey) throw sbError('BRIDGE_ERR_VAULT_RECOVERY');
    const secret = await this.openWithRecovery(accountId, recoveryKey, wraps);
    await this.store.putWrap(accountId, await this.wrapUnder(accountId, 'password', secret, await this.passwordWrapKey(password)));
    return { secret, recoveryKey: null };
  }

  /** Opens with a phone device's key, creating the vault when the account has none. */
  async openWithDeviceKey(accountId: string, deviceId: number, deviceKey: Buffer): Promise<Opened> {
    const slot: VaultSlot = `device:${deviceId}`;
    const wraps = await this.store.getWraps(accountId);
    if (wraps.length === 0) return this.create(accountId, slot, hkdfWrapKey(deviceKey));
    const w = wraps.find((x) => x.slot === slot);
    if (!w) throw sbError('BRIDGE_ERR_VAULT_PASSWORD', 'this device holds no key to the vault');
    return { secret: await this.unwrap(accountId, w, deviceKey, 'BRIDGE_ERR_VAULT_PASSWORD'), recoveryKey: null };
  }

  /** A password change: the Secret rewrapped under the new password (nothing else changes). */
  async rewrapPassword(accountId: string, oldPassword: string, newPassword: string): Promise<boolean> {
    const w = (await this.store.getWraps(accountId)).find((x) => x.slot === 'password');
    if (!w) return false;
    const secret = await this.unwrap(accountId, w, oldPassword, 'BRIDGE_ERR_VAULT_PASSWORD');
    try {
      await this.store.putWrap(accountId, await this.wrapUnder(accountId, 'password', secret, await this.passwordWrapKey(newPassword)));
    } finally {
      secret.fill(0);
    }
    return true;
  }

  /**
   * An administrator set the password without the old one: the password wrap can no longer be opened by anyone who
   * should, so it goes; the recovery wrap stays (the next password session with the recovery key rewraps).
   */
  async passwordReset(accountId: string): Promise<'recoverable' | 'none'> {
    await this.store.deleteWrap(accountId, 'password');
    return (await this.store.getWraps(accountId)).some((w) => w.slot === 'recovery') ? 'recoverable' : 'none';
  }

  /** Forgets the vault and every linked account (the user has no recovery key). */
  forget(accountId: string): Promise<void> {
    return this.store.deleteVault(accountId);
  }

  async exists(accountId: string): Promise<boolean> {
    return (await this.store.getWraps(accountId)).length > 0;
  }

  private async openWithRecovery(accountId: string, recoveryKey: string, wraps: VaultWrap[]): Promise<Buffer> {
    const w = wraps.find((x) => x.slot === 'recovery');
    const key = parseRecoveryKey(recoveryKey);
    if (!w || !key) throw sbError('BRIDGE_ERR_RECOVERY_KEY');
    return this.unwrap(accountId, w, key, 'BRIDGE_ERR_RECOVERY_KEY');
  }

  private async create(accountId: string, slot: VaultSlot, wrapKey: WrapKey): Promise<Opened> {
    const secret = randomBytes(32);
    const recovery = randomBytes(32);
    const wraps = [await this.wrapUnder(accountId, slot, secret, wrapKey), await this.wrapUnder(accountId, 'recovery', secret, hkdfWrapKey(recovery))];
    if (!(await this.store.createVault(accountId, wraps))) {
      // Another session created it a moment ago: open that one instead.
      secret.fill(0);
      const w = (await this.store.getWraps(accountId)).find((x) => x.slot === slot);
      if (!w) throw sbError('BRIDGE_ERR_VAULT_PASSWORD');
      return { secret: await this.unwrap(accountId, w, wrapKey.input, 'BRIDGE_ERR_VAULT_PASSWORD'), recoveryKey: null };
    }
    const shown = formatRecoveryKey(recovery);
    recovery.fill(0);
    return { secret, recoveryKey: shown };
  }

  private async passwordWrapKey(password: string): Promise<WrapKey> {
    const salt = randomBytes(16);
    const kdf = `argon2id m=${this.cost.memoryKiB} t=${this.cost.passes} p=1`;
    return { input: password, salt, kdf, key: await argon2Key(password, salt, this.cost) };
  }

  private async wrapUnder(accountId: string, slot: VaultSlot, secret: Buffer, k: WrapKey): Promise<VaultWrap> {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', k.key, iv);
    c.setAAD(wrapAad(accountId, slot));
    const body = Buffer.concat([c.update(secret), c.final()]);
    return { slot, salt: k.salt.toString('base64url'), kdf: k.kdf, wrapped: Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url') };
  }

  private async unwrap(accountId: string, w: VaultWrap, input: string | Buffer, failure: 'BRIDGE_ERR_VAULT_PASSWORD' | 'BRIDGE_ERR_RECOVERY_KEY'): Promise<Buffer> {
    const salt = Buffer.from(w.salt, 'base64url');
    let key: Buffer;
    if (w.kdf === HKDF) key = hkdfWrapKey(Buffer.isBuffer(input) ? input : Buffer.from(input), salt).key;
    else {
      const m = /^argon2id m=(\d+) t=(\d+) p=1$/.exec(w.kdf);
      if (!m || typeof input !== 'string') throw sbError(failure);
      key = await argon2Key(input, salt, { memoryKiB: Number(m[1]), passes: Number(m[2]) });
    }
    const raw = Buffer.from(w.wrapped, 'base64url');
    try {
      const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
      d.setAAD(wrapAad(accountId, w.slot));
      d.setAuthTag(raw.subarray(12, 28));
      const plain = Buffer.concat([d.update(raw.subarray(28)), d.final()]);
      // Off Node's shared pool, so zeroing it later zeroes the only copy.
      const secret = Buffer.alloc(plain.length);
      plain.copy(secret);
      plain.fill(0);
      return secret;
    } catch {
      throw sbError(failure);
    } finally {
      key.fill(0);
    }
  }
}

interface WrapKey {
  input: string | Buffer;
  salt: Buffer;
  kdf: string;
  key: Buffer;
}

function wrapAad(accountId: string, slot: VaultSlot): Buffer {
  return Buffer.from(`switchboard vault\n${accountId}\n${slot}`);
}

function argon2Key(password: string, salt: Buffer, cost: VaultCost): Promise<Buffer> {
  return hashRaw(password, { algorithm: ARGON2ID as never, memoryCost: cost.memoryKiB, timeCost: cost.passes, parallelism: 1, outputLen: 32, salt });
}

function hkdfWrapKey(input: Buffer, salt: Buffer = randomBytes(16)): WrapKey {
  return { input, salt, kdf: HKDF, key: Buffer.from(hkdfSync('sha256', input, salt, 'switchboard vault wrap', 32)) };
}

/** 256 bits as 13 groups of Crockford base32 (52 characters; the last group short), easy to copy and type. */
const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function formatRecoveryKey(key: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of key) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out.match(/.{1,4}/g)!.join('-');
}

export function parseRecoveryKey(text: string): Buffer | null {
  const s = text.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (s.length !== 52) return null;
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) return null;
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return out.length === 32 ? Buffer.from(out) : null;
}
