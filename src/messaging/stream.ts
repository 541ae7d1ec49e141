// One app's inbox socket (`/v1/messages/stream`, Signal-Server's delivery semantics over JSON frames):
//
//   server → app  {"type":"message","id","sender","contentType","body":<base64>,"timestamp"}   in store order
//                 {"type":"queue-empty"}                                                         once, after the backlog
//   app → server  {"type":"ack","id"}                                                            removes that message
//
// With the IM bridge (bridge/links.ts), a bridged message's frame also names its linked account and remote address
// ("linkedAccount", "remote"), and the bridge's own frames ride along as they happen: {"type":"link-state",
// "linkedAccount","state","reason"} and {"type":"delivery","id","linkedAccount","status","reason"} (not acked).
//
// Everything the store holds for the account (and the session's device) when the socket opens goes first, then the
// marker, then live messages as they are stored (woken by Inbox.listen, from any node). Nothing is removed until it
// is acked: a message sent but not acked before the socket closes is sent again, in order, on the next one. At most
// MAX_IN_FLIGHT unacked messages are outstanding per socket (a slow or silent app cannot make us buffer its whole
// queue); the rest follow as acks arrive. The socket closes when the session expires.

import type { WebSocket } from 'ws';
import type { Logger } from '../log.ts';
import type { Inbox } from './inbox.ts';
import type { AppSession } from './sessions.ts';

export const MAX_IN_FLIGHT = 256;
const BATCH = 64;
/** Close code for an expired session (4000-4999 are the application's). */
export const CLOSE_SESSION_EXPIRED = 4401;

/** Frames another room adds to an account's stream (the bridge's): subscribe, get frames, unsubscribe on close. */
export type StreamFrames = (accountId: string, send: (frame: Record<string, unknown>) => void) => () => void;

/** A bridged IM's sender is `im:<linked account>/<remote address>` (bridge/links.ts imSender): its two parts. */
export function bridged(sender: string): { linkedAccount?: string; remote?: string } {
  if (!sender.startsWith('im:')) return {};
  const slash = sender.indexOf('/');
  return slash < 0 ? {} : { linkedAccount: sender.slice(3, slash), remote: sender.slice(slash + 1) };
}

export function serveInboxStream(ws: WebSocket, session: AppSession, inbox: Inbox, log: Logger, now: () => number = Date.now, frames?: StreamFrames): void {
  const { accountId, deviceId } = session;
  const inFlight = new Set<string>();
  let lastSeq = 0;
  let pumping = false;
  let again = false;
  let emptySent = false;
  let closed = false;

  const pump = async () => {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    try {
      do {
        again = false;
        while (!closed && inFlight.size < MAX_IN_FLIGHT) {
          const batch = await inbox.pending(accountId, deviceId, Math.min(BATCH, MAX_IN_FLIGHT - inFlight.size), lastSeq);
          for (const m of batch) {
            if (closed) return;
            inFlight.add(m.id);
            lastSeq = m.seq;
            ws.send(JSON.stringify({ type: 'message', id: m.id, sender: m.sender, contentType: m.contentType, body: m.body.toString('base64'), timestamp: m.createdAt, ...bridged(m.sender) }));
          }
          if (batch.length === 0 || inFlight.size >= MAX_IN_FLIGHT) break;
        }
        if (!closed && !emptySent && inFlight.size < MAX_IN_FLIGHT) {
          emptySent = true;
          ws.send(JSON.stringify({ type: 'queue-empty' }));
        }
      } while (again && !closed);
    } catch (err) {
      log.warn({ err, account: accountId }, 'inbox stream read failed; closing');
      ws.close(1011, 'internal error');
    } finally {
      pumping = false;
    }
  };

  const unlisten = inbox.listen(accountId, () => void pump());
  const unframe = frames?.(accountId, (f) => {
    if (!closed) ws.send(JSON.stringify(f));
  });
  const expiry = setTimeout(() => ws.close(CLOSE_SESSION_EXPIRED, 'session expired'), Math.max(0, Math.min(session.expiresAt - now(), 2 ** 31 - 1)));
  ws.on('message', (data, isBinary) => {
    let frame: unknown;
    try {
      frame = isBinary ? null : JSON.parse(data.toString());
    } catch {
      frame = null;
    }
    const f = frame as { type?: unknown; id?: unknown } | null;
    if (!f || f.type !== 'ack' || typeof f.id !== 'string' || f.id.length > 64) {
      ws.close(1008, 'expected {"type":"ack","id":…}');
      return;
    }
    const id = f.id;
    void inbox.ack(accountId, id, 'app').then(
      () => {
        if (inFlight.delete(id)) void pump();
      },
      (err: unknown) => log.warn({ err, account: accountId }, 'ack failed'),
    );
  });
  // A frame over maxPayload, a bad opcode, a reset: ws reports it here and closes the socket (1009, 1002, …);
  // without a listener the 'error' event would take the process down.
  ws.on('error', (err) => log.debug({ err: err.message, account: accountId }, 'inbox stream error'));
  ws.on('close', () => {
    closed = true;
    clearTimeout(expiry);
    unlisten();
    unframe?.();
  });
  void pump();
}
