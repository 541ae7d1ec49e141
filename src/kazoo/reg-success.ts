// reg_success (kapi_registration:success/1): a switch announces a registration; `Expires: 0` means the contact is
// gone. Published on the registrar exchange with key registration.success.<realm>.<user>.
//
// How a registrar keeps them (ecallmgr_registrar): Contact is cleaned of every '<' and '>', Original-Contact keeps
// the raw value (Original-Contact, else Contact), and a Proxy-Path gives a Bridge-RURI:
// `<scheme of the contact>:<Username>@<Realm>;fs_path=<proxy URI>` — how FreeSWITCH reaches a phone behind a proxy.

import { bad, checkEnvelope, envelope, nonEmptyString, ok, type Checked, type KazooMessage, type Sender } from './envelope.ts';

export const REG_SUCCESS = 'reg_success';
/** Longest Username or Realm taken (256, as SIP Digest usernames and realms are bounded). */
const MAX_NAME = 256;

export const REG_SUCCESS_REQUIRED = ['Event-Timestamp', 'Contact', 'Expires', 'Username', 'Realm'] as const;
export const REG_SUCCESS_OPTIONAL = [
  'Status', 'User-Agent', 'Call-ID', 'Profile-Name', 'Presence-Hosts', 'Account-ID', 'Account-DB', 'From-User', 'From-Host',
  'To-User', 'To-Host', 'RPid', 'Authorizing-ID', 'FreeSWITCH-Hostname', 'FreeSWITCH-Nodename', 'Network-IP', 'Network-Port',
  'Suppress-Unregister-Notify', 'Register-Overwrite-Notify', 'Original-Contact', 'Registrar-Node', 'Proxy-Path', 'AOR', 'RUID',
  'Proxy-Protocol', 'Proxy-IP', 'Proxy-Port', 'Source-IP', 'Source-Port', 'First-Registration', 'Custom-Channel-Vars',
] as const;
/** Every key a reg_success may carry (kapi_registration:success_keys/0). */
export const REG_SUCCESS_KEYS: readonly string[] = [...REG_SUCCESS_OPTIONAL, ...REG_SUCCESS_REQUIRED];

export interface RegSuccess {
  msg: KazooMessage;
  username: string;
  realm: string;
  /** Seconds; 0: the contact is gone. */
  expires: number;
}

/** An integer number of seconds, as a number or a numeric string (Kamailio's configs send either). */
export function seconds(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 ? n : null;
}

export function checkRegSuccess(msg: unknown): Checked<RegSuccess> {
  const env = checkEnvelope(msg, 'directory', REG_SUCCESS);
  if (!env.ok) return env;
  const m = env.value;
  for (const k of ['Contact', 'Username', 'Realm']) if (!nonEmptyString(m[k])) return bad(`${k} missing or empty`);
  // Each is a key of the foreign cache and a store lookup (is the AOR ours?): bounded as on the SIP auth path.
  for (const k of ['Username', 'Realm']) if ((m[k] as string).length > MAX_NAME) return bad(`${k} longer than ${MAX_NAME} characters`);
  if (m['Event-Timestamp'] === undefined || m['Event-Timestamp'] === null || m['Event-Timestamp'] === '') return bad('Event-Timestamp missing');
  const expires = seconds(m.Expires);
  if (expires === null) return bad(`Expires ${JSON.stringify(m.Expires)} is not a number of seconds`);
  return ok({ msg: m, username: m.Username as string, realm: m.Realm as string, expires });
}

/** A reg_success carrying `fields` (only reg_success keys with a value are kept). */
export function buildRegSuccess(from: Sender, msgId: string, fields: Record<string, unknown>): KazooMessage {
  const msg = envelope(from, 'directory', REG_SUCCESS, msgId);
  for (const k of REG_SUCCESS_KEYS) if (fields[k] !== undefined && fields[k] !== null) msg[k] = fields[k];
  return msg;
}

/** ecallmgr's fix_contact/1: every '<' and '>' removed. */
export function cleanContact(contact: string): string {
  return contact.replace(/[<>]/g, '');
}

/** The URI of a Contact or Path value: inside the first <…>, else up to the first ';' or ','. */
function firstUri(v: string): string | null {
  const s = v.trim();
  const lt = s.indexOf('<');
  if (lt >= 0) {
    const gt = s.indexOf('>', lt);
    return gt > lt + 1 ? s.slice(lt + 1, gt) : null;
  }
  const u = s.split(/[;,]/, 1)[0].trim();
  return u || null;
}

/** Bridge-RURI of a registration behind a proxy, or undefined without a Proxy-Path (or an unparseable contact). */
export function bridgeRuri(contact: string | undefined, proxyPath: string | undefined, username: string, realm: string): string | undefined {
  if (!contact || !proxyPath) return undefined;
  const c = firstUri(contact);
  const p = firstUri(proxyPath);
  const scheme = c ? /^(sips?):/i.exec(c)?.[1].toLowerCase() : undefined;
  if (!scheme || !p) return undefined;
  return `${scheme}:${username}@${realm};fs_path=<${p}>`;
}
