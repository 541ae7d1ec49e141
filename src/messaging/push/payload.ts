// What a push carries (source document 003: "pushed to the phone encrypted with the current session key").
//
// By default a wake-up without content: {"v":1,"type":"message"} (or "call") — the app fetches from the inbox.
// When the device's push registration opted in, the details (message id, sender, content type, and the body when it
// fits) are encrypted to the device's app-session key with AES-256-GCM, the kid in clear so the app picks the key
// (after a rollover the old key still decrypts what was sent under it, for the overlap):
//   {"v":1,"kid":"<kid>","iv":"<12 bytes b64url>","ct":"<ciphertext+tag b64url>"}   AAD = "switchboard-push:" + kid
// Never over MAX_PUSH_PAYLOAD: a body that would not fit is left out (the app fetches it).

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MAX_PUSH_PAYLOAD } from './ports.ts';

export interface PushContent {
  type: 'message' | 'call';
  id?: string;
  sender?: string;
  contentType?: string;
  /** base64 */
  body?: string;
}

export function wakeUp(type: 'message' | 'call'): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, type }));
}

const aad = (kid: string) => Buffer.from('switchboard-push:' + kid);

function seal(content: PushContent, kid: string, key: Buffer): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(kid));
  const ct = Buffer.concat([c.update(JSON.stringify(content)), c.final(), c.getAuthTag()]);
  return Buffer.from(JSON.stringify({ v: 1, kid, iv: iv.toString('base64url'), ct: ct.toString('base64url') }));
}

/** The content sealed to the session key; without the body if the whole would exceed the bound. */
export function encryptedPayload(content: PushContent, kid: string, key: Buffer): Buffer {
  const full = seal(content, kid, key);
  if (full.length <= MAX_PUSH_PAYLOAD) return full;
  const { body: _body, ...rest } = content;
  return seal(rest, kid, key);
}

/** The app's side (and the tests'): opens a payload sealed to `key`. */
export function openPayload(payload: Buffer, key: Buffer): PushContent & { kid: string } {
  const p = JSON.parse(payload.toString()) as { v: number; kid: string; iv: string; ct: string };
  const raw = Buffer.from(p.ct, 'base64url');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(p.iv, 'base64url'));
  d.setAAD(aad(p.kid));
  d.setAuthTag(raw.subarray(raw.length - 16));
  const plain = Buffer.concat([d.update(raw.subarray(0, raw.length - 16)), d.final()]);
  return { ...(JSON.parse(plain.toString()) as PushContent), kid: p.kid };
}
