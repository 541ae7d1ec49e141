// Captcha verification against an hCaptcha / Cloudflare Turnstile-style `siteverify` endpoint: a form POST of
// secret, response (the client's token), remoteip and optionally sitekey, answered with JSON
// {"success": bool, "error-codes": [...]}.

import { ProviderError, type CaptchaVerifier } from './types.ts';

export interface SiteverifyOptions {
  url: string;
  secret: string;
  siteKey: string | null;
  timeoutMs: number;
}

export class SiteverifyCaptcha implements CaptchaVerifier {
  readonly name = 'siteverify';
  private readonly o: SiteverifyOptions;

  constructor(o: SiteverifyOptions) {
    this.o = o;
  }

  async verify(token: string, remoteIp: string): Promise<boolean> {
    if (token.length === 0) return false;
    const form = new URLSearchParams({ secret: this.o.secret, response: token, remoteip: remoteIp });
    if (this.o.siteKey) form.set('sitekey', this.o.siteKey);
    let res: Response;
    try {
      res = await fetch(this.o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (e) {
      throw new ProviderError('providerUnavailable', false, `captcha service unreachable: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new ProviderError('providerUnavailable', false, `captcha service answered ${res.status}`);
    let body: { success?: unknown; 'error-codes'?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new ProviderError('providerUnavailable', false, 'captcha service answered something other than JSON');
    }
    if (body.success === true) return true;
    // A misconfigured secret is our fault, not the client's.
    const codes = Array.isArray(body['error-codes']) ? (body['error-codes'] as string[]) : [];
    if (codes.some((c) => c === 'missing-input-secret' || c === 'invalid-input-secret' || c === 'invalid-or-already-seen-secret')) {
      throw new ProviderError('providerUnavailable', false, `captcha service refused our secret (${codes.join(', ')})`);
    }
    return false;
  }
}
