// Rows of the bridge tables (migration 9) to port records, shared by the SQLite and PostgreSQL adapters.

import type { LinkedAccountRecord, LinkStateName, LinkType, VaultSlot, VaultWrap } from './ports/bridge.ts';

export interface LinkedRow {
  id: string;
  account_id: string;
  type: string;
  server: string;
  username: string;
  options: string;
  ciphertext: string;
  stay_sealed: string | null;
  connector: string | null;
  state: string;
  reason: string | null;
  created_at: number;
  updated_at: number;
}

export const linkedFromRow = (r: LinkedRow): LinkedAccountRecord => ({
  id: r.id,
  accountId: r.account_id,
  type: r.type as LinkType,
  server: r.server,
  username: r.username,
  options: r.options,
  ciphertext: r.ciphertext,
  staySealed: r.stay_sealed,
  connector: r.connector,
  state: r.state as LinkStateName,
  reason: r.reason,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

export const wrapFromRow = (r: { slot: string; salt: string; kdf: string; wrapped: string }): VaultWrap => ({ slot: r.slot as VaultSlot, salt: r.salt, kdf: r.kdf, wrapped: r.wrapped });

/** The INSERT's column list and the values of a new linked account, in that order. */
export const LINKED_COLUMNS = 'id, account_id, type, server, username, options, ciphertext, stay_sealed, connector, state, reason, created_at, updated_at';
export const linkedValues = (r: Omit<LinkedAccountRecord, 'connector' | 'state' | 'reason' | 'updatedAt'>) =>
  [r.id, r.accountId, r.type, r.server, r.username, r.options, r.ciphertext, r.staySealed, null, 'disconnected', null, r.createdAt, r.createdAt] as const;
