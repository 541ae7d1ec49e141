// Structured logs (pino, JSON lines on stdout). Secrets never reach a log line: the redact list covers the
// fields where they could appear, and SIP Authorization headers are never logged whole.

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** `destination`: where the lines go (default stdout; tests capture them to check what is never logged). */
export function createLogger(level: string, name = 'switchboard', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid },
    redact: {
      paths: ['password', '*.password', 'authorization', '*.authorization', 'secret', '*.secret', 'token', '*.token', 'ha1', '*.ha1'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Logs bad input once per occurrence, at most `perSecond` lines a second; what is suppressed during a flood is
 * counted and reported in one line when the flood ends, so a garbage storm cannot become a disk-filling storm.
 */
export class ThrottledLog {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;
  private readonly log: Logger;
  private readonly perSecond: number;

  constructor(log: Logger, perSecond: number) {
    this.log = log;
    this.perSecond = perSecond;
  }

  warn(obj: Record<string, unknown>, msg: string): void {
    if (this.admit()) this.log.warn(obj, msg);
  }

  info(obj: Record<string, unknown>, msg: string): void {
    if (this.admit()) this.log.info(obj, msg);
  }

  private admit(): boolean {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) this.log.warn({ suppressed: this.suppressed }, 'bad input: further lines suppressed in the last second');
      this.windowStart = now;
      this.count = 0;
      this.suppressed = 0;
    }
    if (this.count < this.perSecond) {
      this.count++;
      return true;
    }
    this.suppressed++;
    return false;
  }
}

/** A connection URL with its password replaced, for logs (never a secret in a log line). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
