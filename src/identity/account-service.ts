// Accounts with every credential derived from one password: creating an account or changing its password
// stores an argon2id hash for HTTP login and the Digest HA1s for SIP together. Login takes the same time
// whether or not the account exists, and failures lock the account (and, beside it, the source address) for a
// while — counted together with SIP failures, since they guess the same password.

import { sbError, SwitchboardError, Errors } from '../errors.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Account, AccountAdmin, AccountStore, CredentialStore, FailureCounter } from '../storage/ports.ts';
import { digestCredentialsFor, parseLoginName } from './accounts.ts';
import { verifyByHa1, type PasswordHasher } from './passwords.ts';

export interface AccountServiceOptions {
  accounts: AccountStore & AccountAdmin;
  credentials: CredentialStore;
  /** Forgets cached Digest credentials of these authentication usernames (on every node). */
  invalidateCredentials: (authUsers: readonly string[]) => void;
  hasher: PasswordHasher;
  failures: FailureCounter;
  policy: Config['auth'];
  defaultRealm: string;
  log: Logger;
  /** Told of every new password (after it is stored), e.g. to reseal an opted-in reversible SIP password. */
  onPasswordChanged?: (account: Account, password: string) => Promise<void>;
}

/** Failure-counter keys shared by HTTP login and SIP authentication. */
export const accountKey = (username: string, realm: string) => `acct:${username}@${realm}`;
export const addressKey = (address: string) => `addr:${address}`;

export class LockedError extends SwitchboardError {
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super(Errors.AUTH_ERR_LOCKED);
    this.retryAfter = retryAfter;
  }
}

export class AccountService {
  private readonly o: AccountServiceOptions;

  constructor(o: AccountServiceOptions) {
    this.o = o;
  }

  name(login: string): { username: string; realm: string } {
    return parseLoginName(login, this.o.defaultRealm);
  }

  async create(login: string, password: string, roles: string[] = []): Promise<Account> {
    const { username, realm } = this.name(login);
    if (password.length < 1) throw sbError('HTTP_ERR_VALIDATION', 'password must not be empty');
    const passwordHash = await this.o.hasher.hash(password);
    const account = await this.o.accounts.create({ username, realm, roles, passwordHash, credentials: digestCredentialsFor(username, realm, password) });
    this.o.invalidateCredentials([username]);
    return account;
  }

  async setPassword(account: Account, password: string): Promise<void> {
    const passwordHash = await this.o.hasher.hash(password);
    await this.o.accounts.setPassword(account.id, passwordHash, digestCredentialsFor(account.username, account.realm, password));
    this.o.invalidateCredentials([account.username]);
    await this.o.onPasswordChanged?.(account, password);
  }

  /**
   * Checks a login. Throws LockedError (429) while the account or address is locked, AUTH_ERR_CREDENTIALS (401)
   * for a wrong name or password — after the same argon2 work either way.
   */
  async login(login: string, password: string, address: string): Promise<Account> {
    const { failures, policy } = this.o;
    let name: { username: string; realm: string };
    try {
      name = this.name(login);
    } catch {
      await this.o.hasher.verifyNobody(password);
      throw sbError('AUTH_ERR_CREDENTIALS', 'wrong user name or password');
    }
    const acctKey = accountKey(name.username, name.realm);
    const addrKey = addressKey(address);
    const wait = Math.max(await failures.lockedFor(acctKey), await failures.lockedFor(addrKey));
    if (wait > 0) throw new LockedError(wait);

    const account = await this.o.accounts.findByName(name.username, name.realm);
    let ok = false;
    if (!account || account.disabled) {
      await this.o.hasher.verifyNobody(password);
    } else if (account.passwordHash) {
      ok = await this.o.hasher.verify(account.passwordHash, password);
      if (ok && this.o.hasher.needsRehash(account.passwordHash)) await this.setPassword(account, password);
    } else {
      // Imported with SIP credentials only: check against the SHA-256 HA1, then store an argon2id hash.
      const cred = await this.o.credentials.findSipCredential(account.username, account.realm, 'SHA-256');
      await this.o.hasher.verifyNobody(password);
      ok = cred !== null && verifyByHa1(cred.credential.ha1, account.username, account.realm, password);
      if (ok) await this.setPassword(account, password);
    }
    if (!ok || !account) {
      const [a, b] = await Promise.all([failures.hit(acctKey, policy.failureWindow), failures.hit(addrKey, policy.failureWindow)]);
      if (a >= policy.accountFailures) await failures.lock(acctKey, policy.lockoutDuration);
      if (b >= policy.addressFailures) await failures.lock(addrKey, policy.lockoutDuration);
      this.o.log.info({ login, from: address }, 'HTTP login failed');
      throw sbError('AUTH_ERR_CREDENTIALS', 'wrong user name or password');
    }
    await failures.reset(acctKey);
    return account;
  }
}
