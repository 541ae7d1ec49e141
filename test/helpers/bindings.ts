// A binding record with plausible defaults, for storage and location tests.

import type { BindingRecord } from '../../src/storage/ports.ts';

export function binding(aor: string, key: string, over: Partial<BindingRecord> = {}): BindingRecord {
  const now = Date.now();
  return {
    aor, key, contact: `sip:${aor.split('@')[0]}@192.0.2.1:5060`, params: '', q: null, expiresAt: now + 3600_000, callId: 'c1', cseq: 1,
    path: [], instanceId: null, regId: null, transport: 'UDP', sourceAddress: '192.0.2.1', sourcePort: 5060, localAddress: '127.0.0.1',
    localPort: 5060, connectionId: null, node: 'n1', userAgent: 'test', createdAt: now, updatedAt: now, accountId: 'acc', ...over,
  };
}
