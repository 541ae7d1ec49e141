// GRUU (RFC 5627): the URIs that reach one device of an address of record.
//
// - pub-gruu (§3.1): the AOR with `gr=` the instance id, `sip:alice@example.com;gr=urn:uuid:…`. Stable across
//   registrations; anyone who knows the instance id can form it (that is its purpose: a transfer target).
// - temp-gruu (§3.2): `sip:tgruu.<token>@domain;gr`, the token AES-256-GCM over (user, instance, a hash of the
//   binding's Call-ID) under a key derived from the master key, with a random IV: unguessable, it hides the AOR
//   (its point is anonymity), and every node verifies it without state (the GCM tag is the proof; a forged or
//   altered token fails it). A new one each registration, all valid while the binding with that Call-ID lives
//   (§4.2: a new Call-ID, a rebooted device, invalidates the old ones) — the proxy checks that against the binding.
//
// Minted only for a REGISTER whose client sent `Supported: gruu` and a `+sip.instance` (the REGISTER hot path of
// every other client does none of this work).

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { SipUri } from '../sip/message/uri.ts';
import { aorOf } from '../sip/message/uri.ts';
import type { BindingRecord } from '../storage/ports.ts';

const PREFIX = 'tgruu.';
const IV = 12;
const TAG = 16;
/** Longest instance id a GRUU is minted for (the token and the URI stay small). */
export const MAX_INSTANCE = 256;

/** A Request-URI naming one device: its AOR and instance (as bindings record it, `<urn:…>`). */
export interface GruuTarget {
  aor: string;
  instance: string;
  /** temp-gruu only: the hash of the Call-ID the binding must still have. */
  callIdHash?: string;
}

export class Gruus {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('GRUU key must be 32 bytes');
    this.key = key;
  }

  /** §3.1: the AOR with gr= the instance id (its angle brackets removed). */
  pub(aor: string, instance: string): string {
    return `sip:${aor};gr=${bare(instance)}`;
  }

  /** §3.2: a fresh temp-gruu for this binding. */
  temp(aor: string, instance: string, callId: string): string {
    const at = aor.lastIndexOf('@');
    const iv = randomBytes(IV);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const plain = Buffer.from(`${aor.slice(0, at)}\n${instance}\n${callIdHash(callId)}`);
    const token = Buffer.concat([iv, c.update(plain), c.final(), c.getAuthTag()]).toString('base64url');
    return `sip:${PREFIX}${token}@${aor.slice(at + 1)};gr`;
  }

  /** The Contact parameters for a binding in a 200 OK (nothing for one without an instance). */
  contactParams(b: BindingRecord): string {
    if (!b.instanceId || b.instanceId.length > MAX_INSTANCE) return '';
    return `;pub-gruu="${this.pub(b.aor, b.instanceId)}";temp-gruu="${this.temp(b.aor, b.instanceId, b.callId)}"`;
  }

  /**
   * A Request-URI with `gr`: the device it names; 'forged' for a temp-gruu that does not verify (or a bare `gr`
   * without one); null when the URI is no GRUU. The domain is the URI's (the caller checks it is served).
   */
  resolve(u: SipUri): GruuTarget | 'forged' | null {
    if (!u.params.has('gr')) return null;
    const gr = u.params.get('gr');
    if (gr) return gr.length > MAX_INSTANCE ? 'forged' : { aor: aorOf(u), instance: `<${gr}>` };
    const user = u.user ?? '';
    if (!user.startsWith(PREFIX) || user.length > 1024) return 'forged';
    const raw = Buffer.from(user.slice(PREFIX.length), 'base64url');
    if (raw.length <= IV + TAG) return 'forged';
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV));
      d.setAuthTag(raw.subarray(raw.length - TAG));
      const plain = Buffer.concat([d.update(raw.subarray(IV, raw.length - TAG)), d.final()]).toString();
      const [name, instance, hash] = plain.split('\n');
      if (!name || !instance || !hash) return 'forged';
      return { aor: `${name}@${aorOf({ ...u, user: null })}`, instance, callIdHash: hash };
    } catch {
      return 'forged';
    }
  }
}

/** Does this binding belong to the device a GRUU names (and, for a temp-gruu, to the registration it was minted for)? */
export function gruuMatches(b: BindingRecord, t: { instance?: string | null; callIdHash?: string }): boolean {
  if (!t.instance) return true;
  if (b.instanceId !== t.instance) return false;
  return t.callIdHash === undefined || callIdHash(b.callId) === t.callIdHash;
}

export function callIdHash(callId: string): string {
  return createHash('sha256').update(callId).digest('base64url').slice(0, 16);
}

function bare(instance: string): string {
  return instance.startsWith('<') && instance.endsWith('>') ? instance.slice(1, -1) : instance;
}
