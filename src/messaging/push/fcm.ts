// FCM HTTP v1 (firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send): a service account's key
// signs a JWT (RS256; iss = client_email, scope firebase.messaging, aud = token_uri) exchanged at its token_uri for
// an OAuth2 access token (RFC 7523 jwt-bearer grant), kept until a minute before it expires; each push is
// `POST /v1/projects/{project_id}/messages:send` with `{ message: { token, data, android: { priority, ttl } } }`.
// Data values must be strings: the payload travels base64url in data.sb. 404 UNREGISTERED (or 400 naming the
// token) means the token is dead.

import { readFileSync } from 'node:fs';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { checkPushUrl, H2Pool } from './http2.ts';
import type { PushNotification, PushProvider, PushResult, PushTarget } from './ports.ts';

export interface ServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri: string;
}

export function readServiceAccount(file: string): ServiceAccount {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Partial<ServiceAccount>;
  for (const k of ['project_id', 'client_email', 'private_key', 'token_uri'] as const) {
    if (typeof j[k] !== 'string' || !j[k]) throw new Error(`FCM service account file lacks ${k}`);
  }
  return j as ServiceAccount;
}

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

export class FcmProvider implements PushProvider {
  readonly name = 'fcm' as const;
  private readonly account: ServiceAccount;
  private readonly key: KeyObject;
  private readonly sendUrl: URL;
  private readonly tokenUrl: URL;
  private readonly pool = new H2Pool();
  private readonly now: () => number;
  private token: { value: string; until: number } | null = null;
  private pendingToken: Promise<string> | null = null;

  /** `baseUrl`: https://fcm.googleapis.com (tests: a local server). */
  constructor(account: ServiceAccount, baseUrl = 'https://fcm.googleapis.com', now: () => number = Date.now) {
    this.account = account;
    this.key = createPrivateKey(account.private_key);
    this.sendUrl = checkPushUrl(new URL(`/v1/projects/${encodeURIComponent(account.project_id)}/messages:send`, baseUrl).href, '--fcm-url');
    this.tokenUrl = checkPushUrl(account.token_uri, 'the service account token_uri');
    this.now = now;
  }

  async send(target: PushTarget, n: PushNotification): Promise<PushResult> {
    const access = await this.accessToken();
    const body = {
      message: {
        token: target.prid,
        data: { type: n.kind, sb: n.payload.toString('base64url') },
        android: { priority: n.kind === 'call' ? 'high' : 'normal', ttl: `${n.ttl}s` },
      },
    };
    const r = await this.pool.request(this.sendUrl, 'POST', { authorization: `Bearer ${access}`, 'content-type': 'application/json; charset=UTF-8' }, JSON.stringify(body));
    if (r.status === 200) {
      const name = (JSON.parse(r.body.toString()) as { name?: string }).name ?? null;
      return { ok: true, id: name };
    }
    if (r.status === 401) this.token = null;
    const err = parseError(r.body);
    const gone = r.status === 404 || err.details.includes('UNREGISTERED') || (r.status === 400 && /registration token/i.test(err.message));
    return { ok: false, status: r.status, reason: err.status || `HTTP ${r.status}`, gone };
  }

  /** The OAuth2 access token, fetched once for concurrent pushes, renewed a minute before it expires. */
  private async accessToken(): Promise<string> {
    if (this.token && this.token.until > this.now()) return this.token.value;
    this.pendingToken ??= this.fetchToken().finally(() => (this.pendingToken = null));
    return this.pendingToken;
  }

  private async fetchToken(): Promise<string> {
    const iat = Math.floor(this.now() / 1000);
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(this.account.client_email)
      .setAudience(this.account.token_uri)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(this.key);
    const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
    const r = await this.pool.request(this.tokenUrl, 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, form);
    if (r.status !== 200) throw new Error(`FCM token endpoint answered ${r.status}`);
    const j = JSON.parse(r.body.toString()) as { access_token?: string; expires_in?: number };
    if (typeof j.access_token !== 'string') throw new Error('FCM token endpoint gave no access_token');
    this.token = { value: j.access_token, until: this.now() + Math.max(0, (j.expires_in ?? 3600) - 60) * 1000 };
    return j.access_token;
  }

  close(): void {
    this.pool.close();
  }
}

function parseError(body: Buffer): { status: string; message: string; details: string } {
  try {
    const e = (JSON.parse(body.toString()) as { error?: { status?: string; message?: string; details?: unknown } }).error ?? {};
    return { status: e.status ?? '', message: e.message ?? '', details: JSON.stringify(e.details ?? []) };
  } catch {
    return { status: '', message: '', details: '' };
  }
}
