// authn_req → authn_resp | authn_err (kapi_authn), Event-Category "directory".
//
// authn_req: required To, From, Auth-User, Auth-Realm. The user is Auth-User, or the user part of To when Auth-User
// is missing, empty or "unknown"; the realm is Auth-Realm, or the domain of To when Auth-Realm is an IP address;
// both lower-cased (kapi_authn:get_auth_user/1, get_auth_realm/1).
// authn_resp: required Auth-Method (one of AUTH_METHODS) and Auth-Password, plus Custom-Channel-Vars.
// authn_err: the envelope only, with Defer-Response "true" so a requester waiting on several registrars prefers a
// positive answer from another one.

import { isIP } from 'node:net';
import { bad, checkEnvelope, isObject, nonEmptyString, ok, replyEnvelope, type Checked, type KazooMessage, type Sender } from './envelope.ts';

export const DIRECTORY = 'directory';
export const AUTHN_REQ = 'authn_req';
export const AUTHN_RESP = 'authn_resp';
export const AUTHN_ERR = 'authn_err';

export const AUTHN_REQ_REQUIRED = ['To', 'From', 'Auth-User', 'Auth-Realm'] as const;
export const AUTHN_REQ_OPTIONAL = ['Method', 'Switch-Hostname', 'Orig-IP', 'Orig-Port', 'Call-ID', 'Auth-Nonce', 'Auth-Response', 'User-Agent', 'Expires', 'Contact', 'Custom-SIP-Headers'] as const;
export const AUTH_METHODS = ['password', 'ip', 'a1-hash', 'error', 'gsm', 'nonce', 'a3a8'] as const;
export const AUTHN_RESP_OPTIONAL = ['Custom-Channel-Vars', 'Custom-SIP-Headers', 'Auth-Username', 'Auth-Nonce', 'Access-Group', 'Tenant-ID', 'Expires', 'Suppress-Unregister-Notifications', 'Register-Overwrite-Notify'] as const;
/** What Custom-Channel-Vars of our authn_resp always carry. */
export const CCV_KEYS = ['Username', 'Realm', 'Account-ID', 'Authorizing-ID', 'Authorizing-Type', 'Owner-ID', 'Presence-ID'] as const;

export interface AuthnRequest {
  msg: KazooMessage;
  /** Lower-cased user and realm to look up, after Kazoo's substitutions. */
  user: string;
  realm: string;
  /** Auth-User as sent (for case-sensitive account names). */
  rawUser: string;
}

/** The user and host of a To/From value: `user@host`, a SIP URI, or a name-addr with display name and parameters. */
export function userAndHost(v: string): { user: string; host: string } | null {
  let s = v.trim();
  const lt = s.indexOf('<');
  if (lt >= 0) {
    const gt = s.indexOf('>', lt);
    s = s.slice(lt + 1, gt < 0 ? undefined : gt);
  }
  s = s.replace(/^sips?:/i, '');
  const at = s.indexOf('@');
  if (at < 0) return null;
  const user = s.slice(0, at);
  let host = s.slice(at + 1).split(/[;?]/, 1)[0];
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']') < 0 ? undefined : host.indexOf(']'));
  else if (host.indexOf(':') === host.lastIndexOf(':')) host = host.split(':', 1)[0];
  return { user, host };
}

export function parseAuthnReq(msg: unknown): Checked<AuthnRequest> {
  const env = checkEnvelope(msg, DIRECTORY, AUTHN_REQ);
  if (!env.ok) return env;
  const m = env.value;
  for (const k of AUTHN_REQ_REQUIRED) if (typeof m[k] !== 'string') return bad(`${k} missing or not a string`);
  if (m['Custom-SIP-Headers'] !== undefined && !isObject(m['Custom-SIP-Headers'])) return bad('Custom-SIP-Headers is not an object');
  const to = userAndHost(m.To as string);
  let rawUser = m['Auth-User'] as string;
  if (rawUser === '' || rawUser.toLowerCase() === 'unknown') {
    if (!to || !to.user) return bad('Auth-User is unknown and To has no user part');
    rawUser = to.user;
  }
  let realm = m['Auth-Realm'] as string;
  if (realm === '' || isIP(realm.replace(/^\[|\]$/g, '')) !== 0) {
    if (!to || !to.host) return bad('Auth-Realm is an IP address and To has no domain');
    realm = to.host;
  }
  return ok({ msg: m, user: rawUser.toLowerCase(), realm: realm.toLowerCase(), rawUser });
}

export interface AuthnAnswer {
  method: 'a1-hash' | 'password';
  /** The HA1 (MD5 of user:realm:password) or the password. */
  secret: string;
  username: string;
  ccvs: Record<string, string>;
}

export function buildAuthnResp(from: Sender, req: KazooMessage, a: AuthnAnswer): KazooMessage {
  return {
    ...replyEnvelope(from, req, DIRECTORY, AUTHN_RESP),
    'Auth-Method': a.method,
    'Auth-Password': a.secret,
    'Auth-Username': a.username,
    'Custom-Channel-Vars': a.ccvs,
  };
}

export function buildAuthnErr(from: Sender, req: KazooMessage): KazooMessage {
  return { ...replyEnvelope(from, req, DIRECTORY, AUTHN_ERR), 'Defer-Response': 'true' };
}

/** kapi_authn:resp_v/1. */
export function checkAuthnResp(msg: unknown): Checked<KazooMessage> {
  const env = checkEnvelope(msg, DIRECTORY, AUTHN_RESP);
  if (!env.ok) return env;
  const m = env.value;
  if (!(AUTH_METHODS as readonly unknown[]).includes(m['Auth-Method'])) return bad(`Auth-Method ${JSON.stringify(m['Auth-Method'])} not one of ${AUTH_METHODS.join(', ')}`);
  if (typeof m['Auth-Password'] !== 'string') return bad('Auth-Password missing or not a string');
  for (const k of ['Custom-Channel-Vars', 'Custom-SIP-Headers']) if (m[k] !== undefined && !isObject(m[k])) return bad(`${k} is not an object`);
  for (const k of ['Access-Group', 'Tenant-ID']) if (m[k] !== undefined && !nonEmptyString(m[k])) return bad(`${k} is not a string`);
  return ok(m);
}
