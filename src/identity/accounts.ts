// Accounts: one login name (user@realm), every credential derived from one password. Creating an account or
// changing its password stores the Digest HA1 for every algorithm (so the Digest algorithms offered can change
// without a password reset) and never the password itself.

import { sbError } from '../errors.ts';
import { computeHa1, DIGEST_ALGORITHMS } from '../sip/digest.ts';
import type { NewAccount, SipCredential } from '../storage/ports.ts';

/** user = SIP user part characters (RFC 3261 unreserved / escaped / user-unreserved), without '@'. */
const USER_RE = /^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]{1,128}$/;
/**
 * The shape of a device's SIP authentication user, "<account-id>.<device-id>" (identity/phone: a UUID, a dot, a
 * number). Reserved: an account of that name would store its HA1s under a device's key in sip_credentials.
 */
export const DEVICE_AUTH_USER_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[0-9]+$/i;
const REALM_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** Splits "user@realm" (a bare "user" means the default realm). Realms compare lower-case. */
export function parseLoginName(name: string, defaultRealm: string): { username: string; realm: string } {
  const at = name.lastIndexOf('@');
  const username = at < 0 ? name : name.slice(0, at);
  const realm = (at < 0 ? defaultRealm : name.slice(at + 1)).toLowerCase();
  if (!USER_RE.test(username)) throw sbError('ACCOUNT_ERR_NAME', `invalid user name ${JSON.stringify(username)}`);
  if (DEVICE_AUTH_USER_RE.test(username)) throw sbError('ACCOUNT_ERR_NAME_RESERVED', `user name ${JSON.stringify(username)} has the reserved shape <uuid>.<n> of device credentials`);
  if (!REALM_RE.test(realm)) throw sbError('ACCOUNT_ERR_NAME', `invalid realm ${JSON.stringify(realm)}`);
  return { username, realm };
}

/** The Digest credentials of a password: one HA1 per algorithm for the account's own realm. */
export function digestCredentialsFor(username: string, realm: string, password: string): Array<Omit<SipCredential, 'accountId'>> {
  return DIGEST_ALGORITHMS.map((algorithm) => ({ authUser: username, realm, algorithm, ha1: computeHa1(algorithm, username, realm, password) }));
}

export function newAccount(username: string, realm: string, password: string, roles: string[] = []): NewAccount {
  if (password.length === 0) throw sbError('HTTP_ERR_VALIDATION', 'empty password');
  if (DEVICE_AUTH_USER_RE.test(username)) throw sbError('ACCOUNT_ERR_NAME_RESERVED');
  return { username, realm, roles, passwordHash: null, credentials: digestCredentialsFor(username, realm, password) };
}
