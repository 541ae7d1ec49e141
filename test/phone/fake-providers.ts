// A small local HTTP server speaking the provider APIs the real adapters call: an hCaptcha/Turnstile-style
// siteverify endpoint and Twilio's Messages.json / Calls.json. It records every request; tests make it fail on
// purpose by number (Twilio) or by captcha value (siteverify).

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const TWILIO_SID = 'AC0123456789abcdef0123456789abcdef';
export const TWILIO_TOKEN = 'twilio-test-token';
export const CAPTCHA_SECRET = 'captcha-test-secret';
export const GOOD_CAPTCHA = 'good-captcha';

export interface TwilioRecord {
  resource: 'Messages.json' | 'Calls.json';
  auth: string | undefined;
  form: Record<string, string>;
}

export interface FakeProviders {
  url: string;
  siteverify: Array<Record<string, string>>;
  twilio: TwilioRecord[];
  /** Numbers whose messages fail: HTTP status and Twilio error code. */
  failures: Map<string, { status: number; code?: number }>;
  /** The last code sent to `number` (digits of the SMS body or the call's TwiML). */
  lastCode(number: string, resource?: TwilioRecord['resource']): string | null;
  close(): Promise<void>;
}

async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

export async function startFakeProviders(): Promise<FakeProviders> {
  const siteverify: Array<Record<string, string>> = [];
  const twilio: TwilioRecord[] = [];
  const failures = new Map<string, { status: number; code?: number }>();
  const server: Server = createServer(async (req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const form = await readForm(req);
    if (req.method === 'POST' && req.url === '/siteverify') {
      siteverify.push(form);
      if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return json(400, { success: false, 'error-codes': ['bad-request'] });
      if (form.response === 'server-error') return json(500, { error: 'internal' });
      if (form.secret !== CAPTCHA_SECRET) return json(200, { success: false, 'error-codes': ['invalid-input-secret'] });
      if (form.response === GOOD_CAPTCHA) return json(200, { success: true, challenge_ts: new Date().toISOString(), hostname: 'example.test' });
      return json(200, { success: false, 'error-codes': ['invalid-input-response'] });
    }
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/(Messages\.json|Calls\.json)$/.exec(req.url ?? '');
    if (req.method === 'POST' && m) {
      const record: TwilioRecord = { resource: m[2] as TwilioRecord['resource'], auth: req.headers.authorization, form };
      twilio.push(record);
      const expected = 'Basic ' + Buffer.from(`${TWILIO_SID}:${TWILIO_TOKEN}`).toString('base64');
      if (m[1] !== TWILIO_SID || req.headers.authorization !== expected) return json(401, { code: 20003, message: 'Authenticate', status: 401 });
      const fail = failures.get(form.To);
      if (fail) return json(fail.status, { code: fail.code ?? null, message: 'simulated failure', more_info: 'https://example.test', status: fail.status });
      if (!form.To || !form.From || (m[2] === 'Messages.json' ? !form.Body : !form.Twiml)) return json(400, { code: 21604, message: 'missing parameter', status: 400 });
      return json(201, { sid: (m[2] === 'Messages.json' ? 'SM' : 'CA') + Math.random().toString(16).slice(2).padEnd(32, '0'), status: 'queued', to: form.To });
    }
    json(404, { code: 20404, message: 'not found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    siteverify,
    twilio,
    failures,
    lastCode(number, resource) {
      for (let i = twilio.length - 1; i >= 0; i--) {
        const t = twilio[i];
        if (t.form.To !== number || (resource && t.resource !== resource)) continue;
        const text = t.resource === 'Messages.json' ? t.form.Body : t.form.Twiml;
        const digits = /code[^0-9]*([0-9](?: ?[0-9]){5})/.exec(text ?? '');
        if (digits) return digits[1].replace(/ /g, '');
      }
      return null;
    },
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
