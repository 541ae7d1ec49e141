// Tickets for the inbox stream from a browser: a WebSocket opened by a page cannot carry an Authorization header,
// and a session key in the URL would sit in proxies' and servers' logs. So the page asks, with its session in the
// header, POST /v1/messages/stream-ticket → a random 256-bit ticket, valid TICKET_TTL seconds, good for one upgrade,
// bound to that session (the upgrade checks the session is still live); it opens /v1/messages/stream?ticket=….
// The shared cache holds only the ticket's SHA-256 (a leaked cache gives no ticket), so any node redeems it; a
// compare-and-set deletes it as it is redeemed, so a second use (a replay from a log) fails on every node.

import { createHash, randomBytes } from 'node:crypto';
import type { Cache } from '../storage/ports/cache.ts';
import type { AppSession, AppSessions } from './sessions.ts';

/** Seconds a ticket is good for: long enough to open a socket, short enough that a logged URL is stale. */
export const TICKET_TTL = 30;
const TICKET = /^[A-Za-z0-9_-]{43}$/;

const keyOf = (ticket: string) => 'stream-ticket:' + createHash('sha256').update(ticket).digest('base64url');

export class StreamTickets {
  private readonly cache: Cache;
  private readonly sessions: Pick<AppSessions, 'byKid'>;

  constructor(cache: Cache, sessions: Pick<AppSessions, 'byKid'>) {
    this.cache = cache;
    this.sessions = sessions;
  }

  /** A new single-use ticket for the session. */
  async issue(s: AppSession): Promise<{ ticket: string; expiresIn: number }> {
    const ticket = randomBytes(32).toString('base64url');
    await this.cache.set(keyOf(ticket), { kid: s.kid }, TICKET_TTL);
    return { ticket, expiresIn: TICKET_TTL };
  }

  /** The session a ticket was issued for, if the ticket is unused and unexpired and the session still live; used up. */
  async redeem(ticket: string): Promise<AppSession | null> {
    if (!TICKET.test(ticket)) return null;
    const key = keyOf(ticket);
    const v = await this.cache.get<{ kid: string }>(key);
    if (!v || typeof v.kid !== 'string') return null;
    if (!(await this.cache.compareAndSet(key, v, null, TICKET_TTL))) return null; // another upgrade took it
    return this.sessions.byKid(v.kid);
  }
}
