// Web Push: RFC 8030 (POST the message to the subscription's push resource, with TTL and Urgency), RFC 8291 (the
// payload encrypted to the subscription: aes128gcm, RFC 8188) and RFC 8292 (VAPID: `Authorization: vapid t=<ES256
// JWT {aud: the push service's origin, exp ≤ 24 h, sub}>, k=<our P-256 public key>`). A target without the
// subscription's keys (an RFC 8599 contact carries only the endpoint) gets an empty push: a wake-up. 404 and 410 mean
// the subscription is gone.
//
// RFC 8291 §3.4, written out so each step can be checked against the RFC (the test decrypts with its own code):
//   ecdh_secret = ECDH(as_private, ua_public)
//   IKM   = HKDF(salt = auth_secret, IKM = ecdh_secret, info = "WebPush: info" 0x00 ua_public as_public, L = 32)
//   CEK   = HKDF(salt, IKM, "Content-Encoding: aes128gcm" 0x00, 16);  NONCE = HKDF(salt, IKM, "Content-Encoding: nonce" 0x00, 12)
//   body  = salt(16) rs(4, 4096) idlen(1, 65) as_public(65) AES-128-GCM(CEK, NONCE, plaintext 0x02)

import { createCipheriv, createECDH, createPrivateKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { checkPushUrl, H2Pool } from './http2.ts';
import type { PushNotification, PushProvider, PushResult, PushTarget } from './ports.ts';

const RS = 4096;

/** RFC 8291 aes128gcm encryption of `plaintext` to a subscription (one record). */
export function encryptWebPush(plaintext: Buffer, uaPublic: Buffer, authSecret: Buffer, salt: Buffer = randomBytes(16)): Buffer {
  if (uaPublic.length !== 65 || uaPublic[0] !== 4) throw new Error('p256dh must be an uncompressed P-256 point');
  if (authSecret.length !== 16) throw new Error('auth must be 16 bytes');
  if (plaintext.length + 17 > RS) throw new Error('payload too large for one record');
  const as = createECDH('prime256v1');
  const asPublic = as.generateKeys();
  const ecdhSecret = as.computeSecret(uaPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, authSecret, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const c = createCipheriv('aes-128-gcm', cek, nonce);
  const ct = Buffer.concat([c.update(plaintext), c.update(Buffer.from([2])), c.final(), c.getAuthTag()]);
  const header = Buffer.alloc(21);
  salt.copy(header, 0);
  header.writeUInt32BE(RS, 16);
  header[20] = asPublic.length;
  return Buffer.concat([header, asPublic, ct]);
}

/** A VAPID key pair (RFC 8292) from a 32-byte private scalar (derived from the master key: every node signs alike). */
export function vapidKeys(d: Buffer): { privateKey: KeyObject; publicKey: Buffer } {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const pub = ecdh.getPublicKey();
  const privateKey = createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', d: d.toString('base64url'), x: pub.subarray(1, 33).toString('base64url'), y: pub.subarray(33).toString('base64url') },
    format: 'jwk',
  });
  return { privateKey, publicKey: pub };
}

export interface WebPushOptions {
  vapid: { privateKey: KeyObject; publicKey: Buffer };
  /** RFC 8292 sub: a mailto: or https: contact for the push service's operator. */
  subject: string;
  /**
   * Push service hosts (or their parent domains) endpoints may name: the endpoint comes from the client, so without
   * this list a client could make the server POST to any host it can reach (SSRF).
   */
  allowedHosts: string[];
  now?: () => number;
}

/** The browsers' push services (Chrome/FCM, Firefox/Mozilla, Edge/WNS, Safari/Apple). */
export const DEFAULT_WEBPUSH_HOSTS = ['fcm.googleapis.com', 'push.services.mozilla.com', 'notify.windows.com', 'push.apple.com'];

export function webPushHostAllowed(hostname: string, allowed: string[]): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return allowed.some((a) => h === a.toLowerCase() || h.endsWith('.' + a.toLowerCase()));
}

export class WebPushProvider implements PushProvider {
  readonly name = 'webpush' as const;
  private readonly o: WebPushOptions;
  private readonly pool = new H2Pool();
  private readonly now: () => number;
  private readonly jwts = new Map<string, { value: string; until: number }>();

  constructor(o: WebPushOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
  }

  get publicKey(): string {
    return this.o.vapid.publicKey.toString('base64url');
  }

  async send(target: PushTarget, n: PushNotification): Promise<PushResult> {
    let endpoint: URL;
    try {
      endpoint = checkPushUrl(target.prid, 'a Web Push endpoint');
    } catch {
      return { ok: false, status: 400, reason: 'endpoint must be an https URL', gone: true };
    }
    if (!webPushHostAllowed(endpoint.hostname, this.o.allowedHosts)) return { ok: false, status: 400, reason: 'endpoint host is not a push service allowed here', gone: true };
    const headers: Record<string, string> = {
      authorization: `vapid t=${await this.jwt(endpoint.origin)}, k=${this.publicKey}`,
      ttl: String(n.ttl),
      urgency: n.kind === 'call' ? 'high' : 'normal',
    };
    let body: Buffer | null = null;
    if (target.p256dh && target.auth) {
      body = encryptWebPush(n.payload, Buffer.from(target.p256dh, 'base64url'), Buffer.from(target.auth, 'base64url'));
      headers['content-encoding'] = 'aes128gcm';
      headers['content-type'] = 'application/octet-stream';
    }
    const r = await this.pool.request(endpoint, 'POST', headers, body);
    if (r.status === 201 || r.status === 200 || r.status === 202) return { ok: true, id: typeof r.headers.location === 'string' ? r.headers.location : null };
    return { ok: false, status: r.status, reason: `HTTP ${r.status}`, gone: r.status === 404 || r.status === 410 };
  }

  /** One VAPID JWT per push service origin, valid 12 hours, renewed an hour before that. */
  private async jwt(aud: string): Promise<string> {
    const now = this.now();
    const cached = this.jwts.get(aud);
    if (cached && cached.until > now) return cached.value;
    const exp = Math.floor(now / 1000) + 12 * 3600;
    const value = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).setAudience(aud).setExpirationTime(exp).setSubject(this.o.subject).sign(this.o.vapid.privateKey);
    if (this.jwts.size > 1000) this.jwts.clear();
    this.jwts.set(aud, { value, until: now + 11 * 3600_000 });
    return value;
  }

  close(): void {
    this.pool.close();
  }
}
