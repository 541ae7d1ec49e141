// Code delivery through a Twilio-style REST API: POST <base>/2010-04-01/Accounts/<sid>/Messages.json (SMS: To,
// From, Body) or .../Calls.json (voice: To, From, Twiml), form-encoded, with HTTP Basic <sid>:<auth token>.
// Twilio's error answers ({"code","message","status"}) map to Signal's failure reasons: a number that cannot
// receive (invalid, landline for SMS, opted out, region not enabled) is a permanent refusal; throttling,
// server errors and timeouts are the provider being unavailable.

import { codeText, ProviderError, type CodeMessage, type CodeSender } from './types.ts';

export interface TwilioOptions {
  baseUrl: string;
  accountSid: string;
  authToken: string;
  from: string;
  timeoutMs: number;
}

/** Twilio error codes meaning "this number cannot get this message", whatever we retry. */
const PERMANENT: Record<number, 'providerRejected' | 'illegalArgument'> = {
  21211: 'illegalArgument', // invalid 'To' number
  21214: 'illegalArgument', // 'To' cannot be reached (voice)
  21217: 'illegalArgument', // not a valid phone number (voice)
  21408: 'providerRejected', // permission to send to this region not enabled
  21610: 'providerRejected', // the recipient replied STOP
  21612: 'providerRejected', // cannot route to this number
  21614: 'providerRejected', // not a mobile number
  13224: 'illegalArgument', // invalid number for calls
};

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class TwilioCodeSender implements CodeSender {
  readonly name = 'twilio';
  private readonly o: TwilioOptions;

  constructor(o: TwilioOptions) {
    this.o = o;
  }

  async send(m: CodeMessage): Promise<void> {
    const base = this.o.baseUrl.replace(/\/+$/, '');
    const resource = m.transport === 'sms' ? 'Messages.json' : 'Calls.json';
    const url = `${base}/2010-04-01/Accounts/${encodeURIComponent(this.o.accountSid)}/${resource}`;
    const form = new URLSearchParams({ To: m.number, From: this.o.from });
    if (m.transport === 'sms') form.set('Body', codeText(m.code, 'sms'));
    else form.set('Twiml', `<Response><Say>${xmlEscape(codeText(m.code, 'voice'))}</Say></Response>`);
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: {
          authorization: 'Basic ' + Buffer.from(`${this.o.accountSid}:${this.o.authToken}`).toString('base64'),
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form.toString(),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (e) {
      throw new ProviderError('providerUnavailable', false, `provider unreachable: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (res.ok) return;
    let code: number | null = null;
    let message = text.slice(0, 200);
    try {
      const body = JSON.parse(text) as { code?: unknown; message?: unknown };
      if (typeof body.code === 'number') code = body.code;
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // not JSON
    }
    const what = `provider answered ${res.status}${code !== null ? ` (${code})` : ''}: ${message}`;
    if (res.status === 429 || res.status >= 500 || res.status === 401 || res.status === 403) throw new ProviderError('providerUnavailable', false, what);
    if (code !== null && PERMANENT[code]) throw new ProviderError(PERMANENT[code], true, what);
    throw new ProviderError('providerRejected', false, what);
  }
}
