// Rows of the messaging tables (migration 8) as both SQL adapters read them, and their mapping to the port's
// records: one mapping, so SQLite and PostgreSQL cannot drift (the way binding-codec.ts serves the location stores).

import type { AppSessionRecord, StoredMessage } from './ports/messaging.ts';

export interface MessageRow {
  seq: number;
  id: string;
  account_id: string;
  device_id: number | null;
  sender: string;
  content_type: string;
  body: Uint8Array;
  client_id: string | null;
  created_at: number;
  expires_at: number;
  delivered_at: number | null;
}

export function messageFromRow(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    seq: Number(r.seq),
    accountId: r.account_id,
    deviceId: r.device_id === null ? null : Number(r.device_id),
    sender: r.sender,
    contentType: r.content_type,
    body: Buffer.from(r.body),
    clientId: r.client_id,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
  };
}

export interface SessionRow {
  kid: string;
  account_id: string;
  device_id: number | null;
  sealed_key: string;
  push: string | null;
  created_at: number;
  expires_at: number;
}

export function sessionFromRow(r: SessionRow): AppSessionRecord {
  return {
    kid: r.kid,
    accountId: r.account_id,
    deviceId: r.device_id === null ? null : Number(r.device_id),
    sealedKey: r.sealed_key,
    push: r.push === null ? null : (JSON.parse(r.push) as AppSessionRecord['push']),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
  };
}
