// Secrets held for app sessions: the vault's Secret, unwrapped when a session starts with the password (or a phone
// device's key), lives here only: in this node's memory, under the session's kid, until the session ends (logout,
// expiry, a password change, rollover's overlap running out), when the buffer is zeroed (fill(0)) and forgotten.
// Never written anywhere, never put on the bus. A session started on another node has no Secret here: routes that
// need it answer BRIDGE_ERR_VAULT_LOCKED (the app's socket and requests stay on one node behind a sticky balancer).

export interface HeldSecret {
  accountId: string;
  secret: Buffer;
  expiresAt: number;
}

export class Keyring {
  private readonly held = new Map<string, HeldSecret>();

  /** Takes ownership of `secret` (the caller must not keep or zero it). */
  hold(kid: string, accountId: string, secret: Buffer, expiresAt: number): void {
    this.drop(kid);
    this.held.set(kid, { accountId, secret, expiresAt });
  }

  /** A copy for a rolled-over session (the old one's is zeroed when it ends). */
  copy(fromKid: string, toKid: string, expiresAt: number): boolean {
    const h = this.held.get(fromKid);
    if (!h) return false;
    const secret = Buffer.alloc(h.secret.length);
    h.secret.copy(secret);
    this.hold(toKid, h.accountId, secret, expiresAt);
    return true;
  }

  get(kid: string): HeldSecret | null {
    return this.held.get(kid) ?? null;
  }

  /** Any live Secret of the account on this node (connection requests need one, whichever session it came with). */
  forAccount(accountId: string, now: number): HeldSecret | null {
    for (const h of this.held.values()) if (h.accountId === accountId && h.expiresAt > now) return h;
    return null;
  }

  drop(kid: string): boolean {
    const h = this.held.get(kid);
    if (!h) return false;
    h.secret.fill(0);
    this.held.delete(kid);
    return true;
  }

  dropAccount(accountId: string): number {
    let n = 0;
    for (const [kid, h] of this.held) if (h.accountId === accountId && this.drop(kid)) n++;
    return n;
  }

  kids(): Array<[string, HeldSecret]> {
    return [...this.held];
  }

  clear(): void {
    for (const kid of [...this.held.keys()]) this.drop(kid);
  }

  get size(): number {
    return this.held.size;
  }
}
