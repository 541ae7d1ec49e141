// The web phone's inbox, as its tests see it: over the stream with a ticket when the server issues them (issue 18),
// else by HTTP polling. The page's pill says which once the inbox works.

import type { TestServer } from './server.ts';

/** "inbox: live" (the stream) when the server issues stream tickets, else "inbox: connected" (HTTP polling). */
export async function inboxMode(server: TestServer): Promise<string> {
  const probe = await fetch(`${server.httpUrl}/v1/messages/stream-ticket`, { method: 'POST' });
  return probe.status === 404 ? 'inbox: connected' : 'inbox: live';
}
