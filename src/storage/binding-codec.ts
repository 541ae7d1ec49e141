// The compact form of a binding at rest (SQLite journal, Redis location index): a positional array, half the
// bytes of an object and a third of the JSON time (bench/RESULTS.md).

import type { BindingRecord } from './ports.ts';

/**
 * A write as stored: ['p', aor, key, contact, params, q, expiresAt, callId, cseq, path, instanceId, regId,
 * transport, sourceAddress, sourcePort, localAddress, localPort, connectionId, node, userAgent, createdAt,
 * updatedAt, accountId] for a put, ['d', aor, key] for a removal. Positional arrays: half the bytes of objects
 * and a third of the JSON time. Query with json_each: see README (Durability).
 */
export type StoredWrite = unknown[];

export function encodePut(b: BindingRecord): StoredWrite {
  return ['p', b.aor, b.key, b.contact, b.params, b.q, b.expiresAt, b.callId, b.cseq, b.path, b.instanceId, b.regId, b.transport,
    b.sourceAddress, b.sourcePort, b.localAddress, b.localPort, b.connectionId, b.node, b.userAgent, b.createdAt, b.updatedAt, b.accountId];
}

export function decodePut(w: StoredWrite): BindingRecord {
  return {
    aor: w[1] as string,
    key: w[2] as string,
    contact: w[3] as string,
    params: w[4] as string,
    q: w[5] as number | null,
    expiresAt: w[6] as number,
    callId: w[7] as string,
    cseq: w[8] as number,
    path: w[9] as string[],
    instanceId: w[10] as string | null,
    regId: w[11] as number | null,
    transport: w[12] as string,
    sourceAddress: w[13] as string,
    sourcePort: w[14] as number,
    localAddress: w[15] as string,
    localPort: w[16] as number,
    connectionId: w[17] as number | null,
    node: w[18] as string,
    userAgent: w[19] as string | null,
    createdAt: w[20] as number,
    updatedAt: w[21] as number,
    accountId: w[22] as string | null,
  };
}
