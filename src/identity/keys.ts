// JWT signing keys (jose): one active key signs; retired keys stay published in the JWKS until every token they
// signed has expired, so a rotation logs nobody out. Keys live in the store with the private half sealed under
// a key derived from the master key, so every node (and a restart) signs and verifies with the same keys.

import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK, type JWTVerifyGetKey } from 'jose';
import type { SigningKeyRecord, SigningKeyStore } from '../storage/ports.ts';
import { sbError } from '../errors.ts';
import type { Sealer } from './seal.ts';

export type SigningAlgorithm = 'EdDSA' | 'ES256';

export interface ActiveKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: CryptoKey;
}

export interface KeyRingOptions {
  store: SigningKeyStore;
  sealer: Sealer;
  alg: SigningAlgorithm;
  /** Lifetime of access tokens: how long a retired key must stay published. */
  tokenTtlSeconds: number;
  /** How often to re-read keys another process (the CLI, another node) may have rotated. */
  reloadSeconds?: number;
  now?: () => number;
}

export class KeyRing {
  private readonly o: KeyRingOptions;
  private records: SigningKeyRecord[] = [];
  private active: ActiveKey | null = null;
  private keySet: JWTVerifyGetKey | null = null;
  private lastLoad = 0;
  private loading: Promise<void> | null = null;
  private readonly now: () => number;
  /** Reads of the keys from the store after the first load (periodic, or for a token naming a kid we did not know). */
  reloads = 0;

  constructor(o: KeyRingOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
  }

  /** How long a retired key stays in the JWKS: the token lifetime plus two reload periods of slack. */
  private get publishMs(): number {
    return (this.o.tokenTtlSeconds + 2 * (this.o.reloadSeconds ?? 30)) * 1000;
  }

  /** Loads the keys, creating the first one if there is none. */
  async load(): Promise<void> {
    this.records = await this.o.store.listKeys();
    if (!this.records.some((k) => k.retiredAt === null)) {
      await this.rotate();
      return;
    }
    await this.activate();
  }

  private async activate(): Promise<void> {
    const current = [...this.records].reverse().find((k) => k.retiredAt === null)!;
    if (this.active?.kid !== current.kid) {
      let opened: Buffer;
      try {
        opened = this.o.sealer.open(current.privateSealed);
      } catch {
        // AES-GCM's tag check failed: the key was sealed under another master key (nodes or a restart given a
        // different SWITCHBOARD_MASTER_KEY or master.key). Say so instead of "unable to authenticate data".
        throw sbError('CONFIG_ERR_MASTER_KEY', undefined, { kid: current.kid });
      }
      const jwk = JSON.parse(opened.toString('utf8')) as JWK;
      this.active = { kid: current.kid, alg: current.alg as SigningAlgorithm, privateKey: (await importJWK(jwk, current.alg)) as CryptoKey };
    }
    this.keySet = createLocalJWKSet(this.jwks());
    this.lastLoad = this.now();
  }

  /** Creates a new signing key and retires the current one (kept published for the token lifetime). */
  async rotate(): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair(this.o.alg, { extractable: true, ...(this.o.alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: this.o.alg, use: 'sig' };
    const privateJwk = await exportJWK(privateKey);
    const record: SigningKeyRecord = {
      kid,
      alg: this.o.alg,
      publicJwk,
      privateSealed: this.o.sealer.seal(JSON.stringify(privateJwk)),
      createdAt: this.now(),
      retiredAt: null,
    };
    await this.o.store.addKey(record);
    await this.o.store.deleteKeysRetiredBefore(this.now() - this.publishMs);
    this.records = await this.o.store.listKeys();
    await this.activate();
    return kid;
  }

  /** Re-reads the store when the last read is older than the reload period (or when forced). */
  async refresh(force = false): Promise<void> {
    if (!force && this.now() - this.lastLoad < (this.o.reloadSeconds ?? 30) * 1000) return;
    this.loading ??= (async () => {
      try {
        this.reloads++;
        this.records = await this.o.store.listKeys();
        if (this.records.some((k) => k.retiredAt === null)) await this.activate();
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  signingKey(): ActiveKey {
    if (!this.active) throw new Error('key ring not loaded');
    return this.active;
  }

  /** The public keys to publish: the active one and those retired within the token lifetime. */
  jwks(): { keys: JWK[] } {
    const cutoff = this.now() - this.publishMs;
    return { keys: this.records.filter((k) => k.retiredAt === null || k.retiredAt > cutoff).map((k) => k.publicJwk as JWK) };
  }

  /** A jose key resolver over the published keys. */
  verificationKeys(): JWTVerifyGetKey {
    if (!this.keySet) throw new Error('key ring not loaded');
    return this.keySet;
  }

  hasKid(kid: string): boolean {
    return this.records.some((k) => k.kid === kid);
  }
}
