// Record-Route (RFC 3261 §16.6 step 4, RFC 5658 double Record-Route) and loose routing (§16.4, §16.12).
//
// Our Record-Route URI carries the dialog's two flows: `fc`, where the caller's INVITE came from, and `fe`, where
// the branch went (a binding's flow: its connection, or its NATed source address). An in-dialog request from the
// caller (its From tag hashes to `ft`) goes to `fe`, any other to `fc`, so a phone behind NAT or on a WebSocket
// (whose Contact host is `.invalid`) is reached over the flow it registered on, as Kamailio's outbound and
// nathelper modules do.
//
// `sb` is an HMAC over the Call-ID and those parameters under a key derived from the master key: without it anyone
// could send "Route: <us>, <victim>" and use us as an open relay (or name any connection). A Route of ours whose
// `sb` does not verify is not ours to follow, and the request is refused.

import { hash, timingSafeEqual } from 'node:crypto';
import { Hmac256 } from '../sip/digest.ts';
import { detach } from '../sip/message/detach.ts';
import { H } from '../sip/message/header-names.ts';
import type { SipRequest } from '../sip/message/message.ts';
import { parseNameAddr } from '../sip/message/name-addr.ts';
import { splitComma } from '../sip/message/grammar.ts';
import { formatUri, isSipUri, type SipUri } from '../sip/message/uri.ts';
import type { TransportName } from '../sip/transport/types.ts';

/** Where one side of a dialog is reached. */
export interface Flow {
  transport: TransportName;
  address: string;
  port: number;
  /** The connection on `node` (stream transports), or null. */
  connectionId: number | null;
  node: string;
}

/** Most Route values (and Record-Route values) a request may carry; beyond it 400 (a peer chooses how many). */
export const MAX_ROUTES = 16;
/** Longest Route or Record-Route value accepted. */
export const MAX_ROUTE_LENGTH = 512;
const TRANSPORTS = new Set(['UDP', 'TCP', 'TLS', 'WS', 'WSS']);

export function encodeFlow(f: Flow): string {
  return Buffer.from(`${f.transport}|${f.address}|${f.port}|${f.connectionId ?? ''}|${f.node}`).toString('base64url');
}

export function decodeFlow(token: string): Flow | null {
  if (token.length > 400) return null;
  const parts = Buffer.from(token, 'base64url').toString().split('|');
  if (parts.length !== 5 || !TRANSPORTS.has(parts[0])) return null;
  const port = Number(parts[2]);
  const conn = parts[3] === '' ? null : Number(parts[3]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535 || (conn !== null && !Number.isSafeInteger(conn))) return null;
  return { transport: parts[0] as TransportName, address: parts[1], port, connectionId: conn, node: parts[4] };
}

/** Whether decodeFlow(encodeFlow(f)) gives f back. */
function roundTrips(f: Flow): boolean {
  return (
    TRANSPORTS.has(f.transport) &&
    Number.isInteger(f.port) && f.port > 0 && f.port <= 65535 &&
    (f.connectionId === null || Number.isSafeInteger(f.connectionId)) &&
    f.address.indexOf('|') < 0 && f.node.indexOf('|') < 0 && f.address.isWellFormed() && f.node.isWellFormed() // UTF-8 both ways
  );
}

function copyFlow(f: Flow): Flow {
  return { transport: f.transport, address: f.address, port: f.port, connectionId: f.connectionId, node: f.node };
}

/** A short hash of a From tag: tags are tokens, some of whose characters a URI parameter may not hold. */
export function tagHash(tag: string): string {
  return hash('sha256', tag, 'base64url').slice(0, 12); // one-shot: no Hash object (createHash measured 2x the time)
}

export interface DialogRoute {
  /** Hash of the caller's From tag. */
  ft: string;
  caller: Flow;
  callee: Flow;
  /** The caller's From tag itself, when this node signed the route (then compared without hashing). */
  tag?: string;
}

/** Whether an in-dialog request with this From tag comes from the dialog's caller (its tag hashes to `ft`). */
export function fromCaller(r: DialogRoute, tag: string): boolean {
  return r.tag !== undefined ? tag === r.tag : tagHash(tag) === r.ft;
}

// Routes signed or verified lately, by their MAC, with everything it covers: a dialog's ACK and BYE carry the
// Record-Route we signed for its INVITE, and its verification (an HMAC and two base64 decodes, 14 of the 230 us a
// call cost in bench/calls-hotpath.bench.ts's profile) gives the same answer every time for the same text under the
// same key. Two generations of KNOWN_ROUTES each, the older dropped whole when the newer fills (no delete per entry:
// deleting a Map's oldest key one at a time cost as much as the HMAC); a dialog older than that is verified in full.
const KNOWN_ROUTES = 4096;

interface KnownRoute {
  callId: string;
  fc: string;
  fe: string;
  route: DialogRoute;
}

export class RecordRouter {
  /**
   * The digest module's HMAC on pre-padded key buffers: `createHmac` per Record-Route was 5 % of the proxy's CPU in
   * bench:calls (2026-12-07 profile: its KeyObject handling, getKeyObjectSlots/getSlots, every signature and check).
   */
  private readonly hmac: Hmac256;
  private known = new Map<string, KnownRoute>();
  private knownBefore = new Map<string, KnownRoute>();

  constructor(key: Buffer) {
    this.hmac = new Hmac256(key);
  }

  private mac(callId: string, ft: string, fc: string, fe: string): string {
    return this.hmac.digest(Buffer.from(`${callId}\n${ft}\n${fc}\n${fe}`)).toString('base64url').slice(0, 22);
  }

  /** The Record-Route URI for one of our interfaces (host, port, transport) in a dialog with these flows. */
  uri(host: string, port: number, transport: TransportName, callId: string, fromTag: string, caller: Flow, callee: Flow): string {
    const ft = tagHash(fromTag);
    const fc = encodeFlow(caller);
    const fe = encodeFlow(callee);
    const h = host.indexOf(':') >= 0 ? `[${host}]` : host;
    const sb = this.mac(callId, ft, fc, fe);
    // What verify() would decode from fc and fe, without decoding them: the flows themselves, when they survive
    // their encoding unchanged (decodeFlow's rules); else nothing is remembered and verify() decodes.
    if (roundTrips(caller) && roundTrips(callee)) {
      // The Call-ID and tag are cut from the INVITE's header text: detached, or a remembered route keeps it alive.
      const route: DialogRoute = { ft, caller: copyFlow(caller), callee: copyFlow(callee), tag: detach(fromTag) };
      this.remember(sb, { callId: detach(callId), fc, fe, route });
    }
    return `sip:${h}:${port};transport=${transport.toLowerCase()};lr;ft=${ft};fc=${fc};fe=${fe};sb=${sb}`;
  }

  /** The dialog route our URI names, or null when it is not one of ours or its MAC does not verify. */
  verify(uri: SipUri, callId: string): DialogRoute | null {
    const ft = uri.params.get('ft');
    const fc = uri.params.get('fc');
    const fe = uri.params.get('fe');
    const sb = uri.params.get('sb');
    if (!ft || !fc || !fe || !sb) return null;
    const known = this.known.get(sb) ?? this.knownBefore.get(sb);
    if (known && known.callId === callId && known.route.ft === ft && known.fc === fc && known.fe === fe) return known.route;
    const want = Buffer.from(this.mac(callId, ft, fc, fe));
    const got = Buffer.from(sb);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    const route = this.decode(ft, fc, fe);
    // Remembered with its strings detached from the request's header text they were cut from (see uri()).
    if (route) this.remember(detach(sb), { callId: detach(callId), fc: detach(fc), fe: detach(fe), route: { ...route, ft: detach(ft) } });
    return route;
  }

  private decode(ft: string, fc: string, fe: string): DialogRoute | null {
    const caller = decodeFlow(fc);
    const callee = decodeFlow(fe);
    return caller && callee ? { ft, caller, callee } : null;
  }

  private remember(sb: string, k: KnownRoute): void {
    if (this.known.size >= KNOWN_ROUTES) {
      this.knownBefore = this.known;
      this.known = new Map();
    }
    this.known.set(sb, k);
  }
}

export type RoutePreprocess =
  | { kind: 'ours'; route: DialogRoute }
  /** The top Route is another node's Record-Route, signed under the deployment's key: the request goes on to it. */
  | { kind: 'fellow'; next: SipUri }
  | { kind: 'none' }
  | { kind: 'forged' }
  | { kind: 'too-many' };

/**
 * §16.4: strict-router fix-up (a Request-URI that is our Record-Route: the last Route becomes the Request-URI),
 * then every Route entry of ours at the top removed (two when we record-routed twice; a phone's pre-loaded Route to
 * its outbound proxy, us, without `sb`). Returns the dialog route when our signed entries verified, 'none' when
 * the request names no signed Route of ours, 'forged' when an entry looks like ours (our host, an `sb`) but does
 * not verify. `isUs` says whether a URI names this proxy (a local host and one of our ports). A top Route that is
 * not us but carries an `sb` that verifies is a fellow node's Record-Route ('fellow', nothing removed): a callee
 * whose flow this node holds sends its in-dialog requests here, with the node that record-routed on top (RFC 5626
 * §4.3). Any other foreign Route is 'none': this proxy relays in-dialog requests only along its deployment's routes.
 */
export function preprocessRoutes(req: SipRequest, router: RecordRouter, isUs: (uri: SipUri) => boolean): RoutePreprocess {
  const values: string[] = [];
  for (const line of req.getAll(H.route)) {
    if (line.length > MAX_ROUTE_LENGTH * MAX_ROUTES) return { kind: 'too-many' };
    for (const v of splitComma(line)) values.push(v);
    if (values.length > MAX_ROUTES) return { kind: 'too-many' };
  }
  if (values.some((v) => v.length > MAX_ROUTE_LENGTH)) return { kind: 'too-many' };
  const callId = req.callId() ?? '';
  let found: DialogRoute | null = null;
  const ruri = req.requestUri();
  if (ruri && isSipUri(ruri) && ruri.params.has('sb') && isUs(ruri) && values.length > 0) {
    // A strict router before us put our URI in the Request-URI (§16.4): the last Route is the real one.
    found = router.verify(ruri, callId);
    if (!found) return { kind: 'forged' };
    const last = parseNameAddr(values.pop()!);
    if (!last) return { kind: 'forged' };
    req.uri = formatUri(last.uri);
  }
  // The top entry is parsed once, for the fellow check and the loop below: a dialog's ACK and BYE each parsed our
  // long signed Record-Route twice (3 us of a call's ~90 us of server time, bench/calls-hotpath.bench.ts profile).
  const top = values.length > 0 ? parseNameAddr(values[0])?.uri : undefined;
  if (!found && top && isSipUri(top) && !isUs(top) && top.params.has('sb') && router.verify(top, callId)) return { kind: 'fellow', next: top };
  let popped = 0;
  while (popped < values.length) {
    const u = popped === 0 ? top : parseNameAddr(values[popped])?.uri;
    if (!u || !isSipUri(u) || !isUs(u)) break;
    if (u.params.has('sb')) {
      const r = router.verify(u, callId);
      if (!r) return { kind: 'forged' };
      found ??= r;
    }
    popped++;
  }
  if (popped > 0 || found) {
    req.remove(H.route);
    for (const v of values.slice(popped)) req.append('Route', v);
  }
  return found ? { kind: 'ours', route: found } : { kind: 'none' };
}
