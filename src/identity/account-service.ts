// Accounts with every credential derived from one password: creating an account or changing its password
// stores an argon2id hash for HTTP login and the Digest HA1s for SIP together. Login takes the same time
// whether or not the account exists, and failures are counted and locked as lockout.ts says (per account and
// source, per source, per account for sources it never logged in from) — together with SIP failures, since they
// guess the same password. A password change that asks for the current one counts the same way.

import { sbError, SwitchboardError, Errors } from '../errors.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Account, AccountAdmin, AccountStore, CredentialStore, FailureCounter } from '../storage/ports.ts';
import { digestCredentialsFor, parseLoginName } from './accounts.ts';
import { Lockout, type LockoutKeys } from './lockout.ts';
import { verifyByHa1, type PasswordHasher } from './passwords.ts';

export interface AccountServiceOptions {
  accounts: AccountStore & AccountAdmin;
  credentials: CredentialStore;
  /** Forgets cached Digest credentials of these authentication usernames (on every node). */
  invalidateCredentials: (authUsers: readonly string[]) => void;
  hasher: PasswordHasher;
  failures: FailureCounter;
  /** Built from `failures` and `policy` when not given (server.ts shares one with SIP and devices). */
  lockout?: Lockout;
  policy: Config['auth'];
  defaultRealm: string;
  log: Logger;
  /**
   * Told of every new password (after it is stored), e.g. to reseal an opted-in reversible SIP password, with the
   * password before when the change was made with it (null: an administrator's reset; the bridge's vault cares).
   */
  onPasswordChanged?: (account: Account, password: string, previous: string | null) => Promise<void>;
}

/** The lockout subject shared by HTTP login and SIP authentication (lockout.ts adds the source). */
export const accountKey = (username: string, realm: string) => `acct:${username}@${realm}`;

export class LockedError extends SwitchboardError {
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super(Errors.AUTH_ERR_LOCKED);
    this.retryAfter = retryAfter;
  }
}

export class AccountService {
  private readonly o: AccountServiceOptions;
  private readonly lockout: Lockout;

  constructor(o: AccountServiceOptions) {
    this.o = o;
    this.lockout = o.lockout ?? new Lockout({ failures: o.failures, policy: o.policy, log: o.log });
  }

  /** Throws LockedError (429) while `keys` are locked out. */
  private async refuseLocked(keys: LockoutKeys): Promise<void> {
    const verdict = await this.lockout.check(keys);
    if (verdict !== 0) throw new LockedError(verdict.seconds);
  }

  /**
   * The account's current password, as a password change asks for it: locked and counted like a login (an argon2
   * per guess is CPU the lockout also saves). Throws LockedError (429) or AUTH_ERR_CREDENTIALS (401).
   */
  async checkPassword(account: Account, password: string, address: string): Promise<void> {
    const keys = this.lockout.keys(accountKey(account.username, account.realm), address);
    await this.refuseLocked(keys);
    const ok = account.passwordHash ? await this.o.hasher.verify(account.passwordHash, password) : (await this.o.hasher.verifyNobody(password), false);
    if (!ok) {
      await this.lockout.fail(keys);
      this.o.log.info({ account: account.id, from: address }, 'password change with a wrong current password');
      throw sbError('AUTH_ERR_CREDENTIALS', 'current password is wrong');
    }
    this.lockout.succeeded(keys);
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

  async setPassword(account: Account, password: string, previous: string | null = null): Promise<void> {
    const passwordHash = await this.o.hasher.hash(password);
    await this.o.accounts.setPassword(account.id, passwordHash, digestCredentialsFor(account.username, account.realm, password));
    this.o.invalidateCredentials([account.username]);
    await this.o.onPasswordChanged?.(account, password, previous);
  }

  /**
   * Checks a login. Throws LockedError (429) while the account or address is locked, AUTH_ERR_CREDENTIALS (401)
   * for a wrong name or password — after the same argon2 work either way.
   */
  async login(login: string, password: string, address: string): Promise<Account> {
    let name: { username: string; realm: string };
    try {
      name = this.name(login);
    } catch {
      await this.o.hasher.verifyNobody(password);
      throw sbError('AUTH_ERR_CREDENTIALS', 'wrong user name or password');
    }
    const keys = this.lockout.keys(accountKey(name.username, name.realm), address);
    await this.refuseLocked(keys);

    const account = await this.o.accounts.findByName(name.username, name.realm);
    let ok = false;
    if (!account || account.disabled) {
      await this.o.hasher.verifyNobody(password);
    } else if (account.passwordHash) {
      ok = await this.o.hasher.verify(account.passwordHash, password);
      if (ok && this.o.hasher.needsRehash(account.passwordHash)) await this.setPassword(account, password, password);
    } else {
      // Imported with SIP credentials only: check against the SHA-256 HA1, then store an argon2id hash.
      const cred = await this.o.credentials.findSipCredential(account.username, account.realm, 'SHA-256');
      await this.o.hasher.verifyNobody(password);
      ok = cred !== null && verifyByHa1(cred.credential.ha1, account.username, account.realm, password);
      if (ok) await this.setPassword(account, password, password);
    }
    if (!ok || !account) {
      await this.lockout.fail(keys);
      this.o.log.info({ login, from: address }, 'HTTP login failed');
      throw sbError('AUTH_ERR_CREDENTIALS', 'wrong user name or password');
    }
    this.lockout.succeeded(keys);
    await this.lockout.clear(keys);
    return account;
  }
}
