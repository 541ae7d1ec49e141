// The development provider: codes and push challenges are written to the log and appended, one JSON object a
// line, to a file named in the configuration; captchas are accepted as long as they are not empty. NOT FOR
// PRODUCTION: the server says so at startup whenever it is in use.

import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../../log.ts';
import type { CaptchaVerifier, CodeMessage, CodeSender, PushChallenge, PushSender } from './types.ts';

export class LocalProvider implements CodeSender, PushSender, CaptchaVerifier {
  readonly name = 'local';
  readonly file: string;
  private readonly log: Logger;
  private readonly now: () => number;
  private ready: Promise<unknown> | null = null;

  constructor(file: string, log: Logger, now: () => number = Date.now) {
    this.file = file;
    this.log = log;
    this.now = now;
  }

  private async write(entry: Record<string, unknown>): Promise<void> {
    this.ready ??= mkdir(path.dirname(this.file), { recursive: true });
    await this.ready;
    await appendFile(this.file, JSON.stringify({ time: new Date(this.now()).toISOString(), ...entry }) + '\n', { mode: 0o600 });
  }

  async send(m: CodeMessage): Promise<void> {
    this.log.warn({ number: m.number, transport: m.transport, code: m.code, session: m.sessionId }, `verification code for ${m.number}: ${m.code} (local provider, not sent)`);
    await this.write({ type: m.transport, number: m.number, code: m.code, session: m.sessionId });
  }

  async sendChallenge(p: PushChallenge): Promise<void> {
    this.log.warn({ number: p.number, pushTokenType: p.pushTokenType, challenge: p.challenge, session: p.sessionId }, `push challenge for ${p.number} (local provider, not pushed)`);
    await this.write({ type: 'push', number: p.number, pushTokenType: p.pushTokenType, challenge: p.challenge, session: p.sessionId });
  }

  async verify(token: string): Promise<boolean> {
    return token.trim().length > 0;
  }
}
