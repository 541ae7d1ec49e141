// APNs (developer.apple.com, "Sending notification requests to APNs"): HTTP/2 `POST /3/device/<device token>` with a
// provider token, an ES256 JWT ({ alg: ES256, kid: <key id> } . { iss: <team id>, iat }), reused for 50 minutes
// (Apple refuses one older than an hour and one renewed more than every 20 minutes). Headers: apns-topic (the
// bundle id, + ".voip" for VoIP pushes), apns-push-type (voip for calls, background for messages: content-free,
// content-available), apns-priority (10 voip, 5 background), apns-expiration. 410 (Unregistered) or 400
// BadDeviceToken means the token is dead.
//
// RFC 8599 §9.1: pn-param for apns is "<team id>.<bundle id>.<service>", service voip or remote; the topic is the
// bundle id (+ ".voip"), and pushes to a "remote" token are background pushes whatever the kind.

import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { checkPushUrl, H2Pool } from './http2.ts';
import type { PushNotification, PushProvider, PushResult, PushTarget } from './ports.ts';

export interface ApnsOptions {
  /** PEM of the .p8 key (EC P-256). */
  key: string;
  keyId: string;
  teamId: string;
  /** The app's bundle id, when pn-param does not name it. */
  topic: string | null;
  /** https://api.push.apple.com (https://api.sandbox.push.apple.com; tests: a local server). */
  url: string;
  now?: () => number;
}

const TOKEN_REUSE_MS = 50 * 60_000;
const DEVICE_TOKEN = /^[0-9a-fA-F]{16,200}$/;

export class ApnsProvider implements PushProvider {
  readonly name = 'apns' as const;
  private readonly o: ApnsOptions;
  private readonly key: KeyObject;
  private readonly base: URL;
  private readonly pool = new H2Pool();
  private readonly now: () => number;
  private token: { value: string; at: number } | null = null;

  constructor(o: ApnsOptions) {
    this.o = o;
    this.key = createPrivateKey(o.key);
    this.base = checkPushUrl(o.url, '--apns-url');
    this.now = o.now ?? Date.now;
  }

  async send(target: PushTarget, n: PushNotification): Promise<PushResult> {
    if (!DEVICE_TOKEN.test(target.prid)) return { ok: false, status: 400, reason: 'BadDeviceToken', gone: true };
    const param = /^([^.]+)\.(.+)\.(voip|remote)$/.exec(target.param ?? '');
    const bundle = param ? param[2] : this.o.topic;
    if (!bundle) return { ok: false, status: 400, reason: 'no topic: pn-param or --apns-topic', gone: false };
    const voip = n.kind === 'call' && (!param || param[3] === 'voip');
    const body = voip ? { aps: {}, sb: n.payload.toString('base64url') } : { aps: { 'content-available': 1 }, sb: n.payload.toString('base64url') };
    const headers = {
      authorization: `bearer ${await this.providerToken()}`,
      'apns-topic': voip ? `${bundle}.voip` : bundle,
      'apns-push-type': voip ? 'voip' : 'background',
      'apns-priority': voip ? '10' : '5',
      'apns-expiration': String(Math.floor(this.now() / 1000) + n.ttl),
      'content-type': 'application/json',
    };
    const r = await this.pool.request(new URL(`/3/device/${target.prid}`, this.base), 'POST', headers, JSON.stringify(body));
    const id = typeof r.headers['apns-id'] === 'string' ? r.headers['apns-id'] : null;
    if (r.status === 200) return { ok: true, id };
    let reason = `HTTP ${r.status}`;
    try {
      reason = (JSON.parse(r.body.toString()) as { reason?: string }).reason ?? reason;
    } catch {
      // not JSON
    }
    if (r.status === 403 && reason === 'ExpiredProviderToken') this.token = null;
    return { ok: false, status: r.status, reason, gone: r.status === 410 || reason === 'BadDeviceToken' || reason === 'Unregistered' };
  }

  private async providerToken(): Promise<string> {
    const now = this.now();
    if (this.token && now - this.token.at < TOKEN_REUSE_MS) return this.token.value;
    const value = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.o.keyId })
      .setIssuer(this.o.teamId)
      .setIssuedAt(Math.floor(now / 1000))
      .sign(this.key);
    this.token = { value, at: now };
    return value;
  }

  close(): void {
    this.pool.close();
  }
}
