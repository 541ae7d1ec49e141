// Sealing a linked credential to a connector: X25519 + HKDF-SHA256 + AES-256-GCM with node:crypto, the shape of
// HPKE's base mode (RFC 9180 §5.1: an ephemeral key pair per message, the shared secret and both public keys into
// the KDF) without its exact labels. Only the holder of the connector's private key opens it; the AAD binds the
// box to its use (the connector's id and the linked account), so a box copied into another request does not open.
// Format: base64url(ephemeral public key, 32 raw bytes | iv 12 | tag 16 | ciphertext).

import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

export interface BoxKeyPair {
  privateKey: KeyObject;
  /** The raw 32-byte public key, base64url: what a connector announces. */
  publicKey: string;
}

export function generateBoxKeyPair(): BoxKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: rawPublic(publicKey).toString('base64url') };
}

/** A key pair from 32 bytes of seed (a key derived from the master key: the same on every connector of a type). */
export function boxKeyPairFromSeed(seed: Buffer): BoxKeyPair {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, seed]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: rawPublic(createPublicKey(privateKey)).toString('base64url') };
}

function rawPublic(k: KeyObject): Buffer {
  return k.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length);
}

function publicFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error('an X25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
}

function boxKey(shared: Buffer, ephemeral: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), 'switchboard sealed box', 32));
}

export function seal(recipientPublicKey: string, plain: Buffer, aad: string): string {
  const recipient = Buffer.from(recipientPublicKey, 'base64url');
  const eph = generateKeyPairSync('x25519');
  const ephRaw = rawPublic(eph.publicKey);
  const key = boxKey(diffieHellman({ privateKey: eph.privateKey, publicKey: publicFromRaw(recipient) }), ephRaw, recipient);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const body = Buffer.concat([c.update(plain), c.final()]);
  key.fill(0);
  return Buffer.concat([ephRaw, iv, c.getAuthTag(), body]).toString('base64url');
}

/** Opens a box; throws when it was not sealed to this key pair with this AAD. */
export function open(keys: BoxKeyPair, sealed: string, aad: string): Buffer {
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < 60) throw new Error('sealed box too short');
  const ephRaw = raw.subarray(0, 32);
  const key = boxKey(diffieHellman({ privateKey: keys.privateKey, publicKey: publicFromRaw(ephRaw) }), ephRaw, Buffer.from(keys.publicKey, 'base64url'));
  try {
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(32, 44));
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(raw.subarray(44, 60));
    return Buffer.concat([d.update(raw.subarray(60)), d.final()]);
  } finally {
    key.fill(0);
  }
}
