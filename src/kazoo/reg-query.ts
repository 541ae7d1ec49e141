// reg_query → reg_query_resp | reg_query_error (kapi_registration), routing key registration.query.<realm>.<user|*>.
//
// The query names Username and Realm (both optional; Realm "all" or absent: every realm), Count-Only, and Fields: the
// reg_success keys (or Bridge-RURI) each registration's object should hold; absent or empty: every key. The answer is
// reg_query_resp with Fields (one object per registration), or Count (and empty Fields) when counting, and
// Registrar-Age (seconds since the registrar started); nothing matched (and not counting) → reg_query_error.

import { bad, checkEnvelope, isTrue, nonEmptyString, ok, replyEnvelope, type Checked, type KazooMessage, type Sender } from './envelope.ts';
import { REG_SUCCESS_KEYS } from './reg-success.ts';

export const REG_QUERY = 'reg_query';
export const REG_QUERY_RESP = 'reg_query_resp';
/** That exact name (not reg_query_err). */
export const REG_QUERY_ERROR = 'reg_query_error';

export const REG_QUERY_FIELDS: readonly string[] = [...REG_SUCCESS_KEYS, 'Bridge-RURI'];

export interface RegQuery {
  msg: KazooMessage;
  /** Lower-cased; null: every user of the realm. */
  username: string | null;
  /** Lower-cased; null: every realm. */
  realm: string | null;
  countOnly: boolean;
  /** Requested keys; empty: all. */
  fields: string[];
}

export function checkRegQuery(msg: unknown): Checked<RegQuery> {
  const env = checkEnvelope(msg, 'directory', REG_QUERY);
  if (!env.ok) return env;
  const m = env.value;
  const fields = m.Fields ?? [];
  if (!Array.isArray(fields)) return bad('Fields is not a list');
  for (const f of fields) if (typeof f !== 'string' || !REG_QUERY_FIELDS.includes(f)) return bad(`Fields names ${JSON.stringify(f)}, not a reg_success key`);
  for (const k of ['Username', 'Realm']) if (m[k] !== undefined && typeof m[k] !== 'string') return bad(`${k} is not a string`);
  const realm = nonEmptyString(m.Realm) && m.Realm.toLowerCase() !== 'all' ? m.Realm.toLowerCase() : null;
  const username = nonEmptyString(m.Username) ? m.Username.toLowerCase() : null;
  return ok({ msg: m, username, realm, countOnly: isTrue(m['Count-Only']), fields: fields as string[] });
}

/** The requested keys of one registration (those it has a value for); all of them when none are named. */
export function pickFields(reg: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = fields.length ? fields : REG_QUERY_FIELDS;
  for (const k of keys) if (reg[k] !== undefined && reg[k] !== null) out[k] = reg[k];
  return out;
}

export function buildRegQueryResp(from: Sender, req: KazooMessage, registrarAge: number, fields: Record<string, unknown>[], count?: number): KazooMessage {
  const msg: KazooMessage = { ...replyEnvelope(from, req, 'directory', REG_QUERY_RESP), 'Registrar-Age': registrarAge, Fields: fields };
  if (count !== undefined) msg.Count = count;
  return msg;
}

export function buildRegQueryError(from: Sender, req: KazooMessage, registrarAge: number): KazooMessage {
  return { ...replyEnvelope(from, req, 'directory', REG_QUERY_ERROR), 'Registrar-Age': registrarAge };
}
