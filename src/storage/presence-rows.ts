// A subscription as the SQLite store's data column holds it: a JSON array, each field at a fixed position, rather
// than the record as a JSON object. The names were half the object's text (580 bytes for a bench:presence
// subscription, 293 as an array), and every SUBSCRIBE writes its row before its 200: encoding 0.7 µs instead of
// 1.5–2.5, encoding and writing 10,000 in 50 transactions 4.4–7.6 µs a row instead of 6.4–10.7 (2026-12-07). Rows
// written as objects (before this format) are still read.

import type { SubscriptionRecord } from './ports/presence.ts';

/** The first element of a row in this format: a row of another layout would carry another number. */
const LAYOUT = 1;

export function subscriptionRow(s: SubscriptionRecord): string {
  const f = s.flow;
  return JSON.stringify([
    LAYOUT, s.id, s.event, s.eventId, s.presentity, s.watcher, s.watcherAccountId, s.state, s.callId, s.localTag, s.remoteTag,
    s.localUri, s.remoteNameAddr, s.remoteTarget, s.routeSet, s.localCseq, s.remoteCseq, s.accept,
    f.transport, f.address, f.port, f.connectionId, f.node, s.expiresAt, s.createdAt, s.updatedAt,
  ]);
}

export function subscriptionFromRow(data: string): SubscriptionRecord {
  const v: unknown = JSON.parse(data);
  if (!Array.isArray(v)) return v as SubscriptionRecord; // written as an object
  if (v[0] !== LAYOUT) throw new Error(`presence subscription row of unknown layout ${String(v[0])}`);
  return {
    id: v[1], event: v[2], eventId: v[3], presentity: v[4], watcher: v[5], watcherAccountId: v[6], state: v[7], callId: v[8],
    localTag: v[9], remoteTag: v[10], localUri: v[11], remoteNameAddr: v[12], remoteTarget: v[13], routeSet: v[14],
    localCseq: v[15], remoteCseq: v[16], accept: v[17],
    flow: { transport: v[18], address: v[19], port: v[20], connectionId: v[21], node: v[22] },
    expiresAt: v[23], createdAt: v[24], updatedAt: v[25],
  } as SubscriptionRecord;
}
