// RFC 5627 §8.4 at the proxy, for requests no Route of ours steers: a Request-URI that is one of our GRUUs (a
// dialog whose remote target the device set to its GRUU: NOTIFY, BYE, re-INVITE, ACK; or a new request to it) goes to
// that device's newest live binding over its flow, its Path as Route. An error code when the GRUU is forged (404) or
// its device is not registered (480) or not reachable from here; null when the Request-URI is no GRUU of ours (or a
// Route elsewhere still stands: that is not ours to retarget).

import type { ErrorCode } from '../errors.ts';
import type { GruuTarget } from '../registrar/gruu.ts';
import { gruuMatches } from '../registrar/gruu.ts';
import { H } from '../sip/message/header-names.ts';
import type { SipRequest } from '../sip/message/message.ts';
import { isSipUri, parseUri, type SipUri } from '../sip/message/uri.ts';
import type { Destination } from '../sip/transport/types.ts';
import type { BindingRecord } from '../storage/ports.ts';
import type { Target } from './fork.ts';

export interface GruuTargetDeps {
  gruus?: { resolve(u: SipUri): GruuTarget | 'forged' | null };
  location: { lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]> };
  served: (host: string) => boolean;
  targetAor: (u: SipUri) => string;
  /** Where a binding's flow is reached from this node (null: not from here, or it is ourselves). */
  destination: (b: BindingRecord) => Destination | null;
}

export function gruuTargets(d: GruuTargetDeps): (req: SipRequest) => Promise<Target | ErrorCode | null> {
  return async (req) => {
    if (!d.gruus || req.has(H.route)) return null;
    const u = parseUri(req.uri);
    if (!u || !isSipUri(u) || !u.params.has('gr') || !d.served(u.host)) return null;
    const g = d.gruus.resolve(u);
    if (g === 'forged') return 'GRUU_ERR_UNKNOWN';
    if (!g) return null;
    const aor = g.callIdHash ? g.aor : d.targetAor(u);
    const now = Date.now();
    const b = (await d.location.lookup(aor)).filter((x) => x.expiresAt > now && gruuMatches(x, g)).sort((x, y) => y.updatedAt - x.updatedAt)[0];
    if (!b) return 'GRUU_ERR_UNAVAILABLE';
    const dest = d.destination(b);
    if (!dest) return 'PROXY_ERR_UNREACHABLE';
    return { uri: b.contact, dest, routes: b.path, recordRoute: [] };
  };
}
