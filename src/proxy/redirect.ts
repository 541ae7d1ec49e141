// 3xx recursion (RFC 3261 §16.5; --call-follow-redirects, Kamailio's get_redirects + t_relay): the Contacts of a
// branch's 3xx become new branches of the same call (fork.ts `redirect`), by the rules a new call's targets follow:
//
// - a user of a served domain is rung at its live registered devices (q groups flattened, highest first); a user
//   that does not exist or has no device adds nothing;
// - another domain only for a caller of ours, and only through the outbound proxy (no open relay by redirect);
// - never a target of this call twice, its own callee first (A → B → A is a loop, not a ring), and never more than
//   MAX_REDIRECT_BRANCHES new branches a call (a device answering 3xx with a hundred Contacts rings eight), of the
//   first MAX_REDIRECT_CONTACTS Contacts of each 3xx.
//
// A 3xx that adds no branch is a final of the call as any other (fork.ts), so the best 3xx still reaches the caller.

import { H } from '../sip/message/header-names.ts';
import type { SipResponse } from '../sip/message/message.ts';
import { splitComma } from '../sip/message/grammar.ts';
import { parseNameAddr } from '../sip/message/name-addr.ts';
import { formatUri, isSipUri, type SipUri } from '../sip/message/uri.ts';
import type { Target } from './fork.ts';

export const MAX_REDIRECT_BRANCHES = 8;
const MAX_REDIRECT_CONTACTS = 16;

export interface RedirectRules {
  /** The call's callee (user@realm): never rung again by a redirect. */
  callee: string;
  served: (host: string) => boolean;
  targetAor: (u: SipUri) => string;
  userExists: (aor: string) => boolean | Promise<boolean>;
  /** A user's live devices as targets, in q groups, highest first. */
  bindings: (aor: string) => Promise<Target[][]>;
  /** A target through the outbound proxy for a URI of another domain, or null when the caller may not reach one. */
  outbound: ((uri: string) => Target) | null;
}

/** The redirect resolver of one call: each 3xx's Contacts as the branches they may become (often none). */
export function followRedirect(r: RedirectRules): (res: SipResponse) => Promise<Target[]> {
  const tried = new Set([r.callee]);
  let left = MAX_REDIRECT_BRANCHES;
  return async (res) => {
    const out: Target[] = [];
    for (const u of redirectContacts(res)) {
      if (left <= 0) break;
      const key = r.served(u.host) ? r.targetAor(u) : formatUri(u);
      if (tried.has(key)) continue;
      tried.add(key);
      const added = !r.served(u.host) ? (r.outbound ? [r.outbound(key)] : []) : (await r.userExists(key)) ? (await r.bindings(key)).flat().slice(0, left) : [];
      out.push(...added);
      left -= added.length;
    }
    return out;
  };
}

/** The SIP URIs a 3xx names in its Contacts, highest q first (no q: 1.0), the first MAX_REDIRECT_CONTACTS only. */
export function redirectContacts(res: SipResponse): SipUri[] {
  const found: Array<{ u: SipUri; q: number }> = [];
  for (const line of res.getAll(H.contact)) {
    for (const v of splitComma(line)) {
      if (found.length >= MAX_REDIRECT_CONTACTS) break;
      const na = parseNameAddr(v);
      if (!na || !isSipUri(na.uri)) continue;
      const q = Number(na.params.get('q') ?? '1');
      found.push({ u: na.uri, q: Number.isFinite(q) ? q : 0 });
    }
  }
  return found.sort((a, b) => b.q - a.q).map((c) => c.u);
}
