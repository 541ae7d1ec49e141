// reg_flush and reg_sync (kapi_registration).
//
// reg_flush (registration.flush.<realm>): Realm required, Username optional: the registrar drops those registrations.
// reg_sync (registration.sync): a consumer that just started asks every registrar to re-announce; each answers with
// one reg_success per live contact, to the targeted exchange keyed by the request's Server-ID.

import { bad, checkEnvelope, envelope, nonEmptyString, ok, type Checked, type KazooMessage, type Sender } from './envelope.ts';

export const REG_FLUSH = 'reg_flush';
export const REG_SYNC = 'reg_sync';

export interface RegFlush {
  msg: KazooMessage;
  /** Lower-cased. */
  realm: string;
  /** Lower-cased; null: the whole realm. */
  username: string | null;
}

export function checkRegFlush(msg: unknown): Checked<RegFlush> {
  const env = checkEnvelope(msg, 'directory', REG_FLUSH);
  if (!env.ok) return env;
  const m = env.value;
  if (!nonEmptyString(m.Realm)) return bad('Realm missing or empty');
  if (m.Username !== undefined && typeof m.Username !== 'string') return bad('Username is not a string');
  return ok({ msg: m, realm: m.Realm.toLowerCase(), username: nonEmptyString(m.Username) ? m.Username.toLowerCase() : null });
}

export function checkRegSync(msg: unknown): Checked<KazooMessage> {
  return checkEnvelope(msg, 'directory', REG_SYNC);
}

export function buildRegSync(from: Sender, msgId: string): KazooMessage {
  return envelope(from, 'directory', REG_SYNC, msgId);
}

export function buildRegFlush(from: Sender, msgId: string, realm: string, username?: string): KazooMessage {
  const msg = envelope(from, 'directory', REG_FLUSH, msgId);
  msg.Realm = realm;
  if (username) msg.Username = username;
  return msg;
}
