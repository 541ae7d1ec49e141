// The client side of SIP Digest (RFC 3261 §22.2-22.3, RFC 7616 with RFC 8760's algorithms): pick a challenge from
// a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate), answer it with qop=auth, a fresh cnonce and a counting nc,
// and offer the answer again on the next request to the same server (RFC 7616 §3.4.5: the nonce may be reused with
// a higher nc), so a refresh or a second MESSAGE does not cost a round trip each time.

import { randomBytes } from 'node:crypto';
import { computeHa1, expectedResponse, isDigestAlgorithm, oversizedDirective, parseAuthHeader, type DigestAlgorithm, type DigestCredentials } from '../../sip/digest.ts';
import { quote, textToWire, wireToText } from '../../sip/message/grammar.ts';
import type { SipRequest, SipResponse } from '../../sip/message/index.ts';

export type ChallengeKind = 'www' | 'proxy';

interface Challenge {
  realm: string;
  nonce: string;
  opaque: string | null;
  algorithm: DigestAlgorithm;
  /** qop=auth offered (RFC 7616 §3.3); without qop the RFC 2069 form is answered. */
  auth: boolean;
  /** The nonce-count of the last answer made with this nonce. */
  nc: number;
}

/** What a 401/407 said: a challenge we can answer (stale: only the nonce expired), or none. */
export type Learned = { ok: true; stale: boolean } | { ok: false; reason: string };

export class DigestClient {
  readonly #username: string;
  readonly #password: string;
  /** The last challenge per header (a registrar's 401 and a proxy's 407 may name different realms). */
  readonly #challenges = new Map<ChallengeKind, Challenge>();

  constructor(username: string, password: string) {
    this.#username = username;
    this.#password = password;
  }

  /**
   * Takes the challenges of a 401 or 407: the topmost one we can answer (RFC 8760 §2.4: the server lists them in
   * its order of preference), Digest with MD5, SHA-256 or SHA-512-256 and qop "auth" or none. Every directive is
   * the server's choice and goes back in our header, so each is bounded (MAX_DIRECTIVE_BYTES). With `realm`, only a
   * challenge of that realm is answered: whoever else challenges (the UA a MESSAGE went to, a proxy on the way) would
   * get a response to test password guesses against offline (RFC 7616 §5.4), so it gets none.
   */
  learn(res: SipResponse, realm: string | null = null): Learned {
    const kind: ChallengeKind = res.status === 407 ? 'proxy' : 'www';
    const values = res.getAll(kind === 'proxy' ? 'Proxy-Authenticate' : 'WWW-Authenticate').slice(0, 8);
    for (const v of values) {
      const h = parseAuthHeader(v);
      if (!h || h.scheme !== 'digest' || oversizedDirective(h)) continue;
      const p = h.params;
      const named = p.get('realm');
      const nonce = p.get('nonce');
      const algorithm = (p.get('algorithm') ?? 'MD5').toUpperCase();
      const qops = p.get('qop')?.split(',').map((q) => q.trim().toLowerCase());
      if (named === undefined || !nonce || !isDigestAlgorithm(algorithm) || (realm !== null && named !== realm)) continue;
      if (qops && !qops.includes('auth')) continue; // auth-int only: the body would be hashed too; not offered by SIP servers in use
      this.#challenges.set(kind, { realm: named, nonce, opaque: p.get('opaque') ?? null, algorithm, auth: qops !== undefined, nc: 0 });
      return { ok: true, stale: (p.get('stale') ?? '').toLowerCase() === 'true' };
    }
    this.#challenges.delete(kind);
    const wanted = realm === null ? '' : ` for realm ${JSON.stringify(realm).slice(0, 80)}`;
    return { ok: false, reason: values.length ? `no Digest challenge${wanted} with MD5, SHA-256 or SHA-512-256 and qop=auth` : `${res.status} without a challenge` };
  }

  /** The realm of the registrar's challenge (401), once one was answered; null before. */
  registrarRealm(): string | null {
    return this.#challenges.get('www')?.realm ?? null;
  }

  /** Adds Authorization / Proxy-Authorization for every challenge known (none before the first 401/407). */
  authorize(req: SipRequest): void {
    req.remove('Authorization');
    req.remove('Proxy-Authorization');
    for (const [kind, c] of this.#challenges) req.append(kind === 'proxy' ? 'Proxy-Authorization' : 'Authorization', this.#answer(c, req.method, req.uri));
  }

  /** RFC 7616 §3.4.1, computed by the same function the registrar verifies answers with (sip/digest.ts). */
  #answer(c: Challenge, method: string, uri: string): string {
    const ha1 = computeHa1(c.algorithm, this.#username, wireToText(c.realm), this.#password);
    const nc = c.auth ? (++c.nc).toString(16).padStart(8, '0') : null;
    const cnonce = c.auth ? randomBytes(12).toString('base64url') : null;
    const answer: DigestCredentials = {
      username: this.#username, realm: c.realm, nonce: c.nonce, uri, response: '', algorithm: c.algorithm, session: false,
      qop: c.auth ? 'auth' : null, nc: c.nc, cnonce, opaque: c.opaque, userhash: false,
    };
    const response = expectedResponse(answer, ha1, method, nc ?? '');
    let out = `Digest username=${quote(textToWire(this.#username))}, realm=${quote(c.realm)}, nonce=${quote(c.nonce)}, uri=${quote(uri)}, response="${response}", algorithm=${c.algorithm}`;
    if (nc !== null) out += `, cnonce="${cnonce}", qop=auth, nc=${nc}`;
    return c.opaque === null ? out : `${out}, opaque=${quote(c.opaque)}`;
  }
}
