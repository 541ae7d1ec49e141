// The stateful forking proxy (RFC 3261 §16): INVITE to a user of a served domain → who may call (407, --calls-from)
// → the location service → branches by q (fork.ts) → best response upstream. In-dialog requests (re-INVITE, ACK for
// a 2xx, BYE, UPDATE, INFO, REFER, NOTIFY, PRACK) follow our Record-Route (record-route.ts) to the other side's flow,
// or, without one, go to the device whose GRUU is their Request-URI (RFC 5627, gruu-target.ts). MESSAGE is forked by
// non-invite.ts. A little over 400 lines: one request's routing steps, read top to bottom, share one closure.
//
// Never an open relay: a request for another domain goes only to the configured outbound proxy, and only for an
// authenticated caller of ours; an in-dialog request is forwarded only under a Record-Route we signed or to a GRUU
// of one of our registered devices (that device only: its dialogs' remote target, which it gave out); a target
// that is one of our own addresses is skipped (two such contacts would otherwise fork 2^70 times under
// Max-Forwards); branches, Route and Record-Route counts are bounded.

import { hash } from 'node:crypto';
import { Errors, type ErrorCode } from '../errors.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { Logger } from '../log.ts';
import type { InviteHandler, AckHandler, RequestContext } from '../sip/endpoint.ts';
import { H } from '../sip/message/header-names.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import { parseNameAddr } from '../sip/message/name-addr.ts';
import { createResponse, sipError } from '../sip/message/response.ts';
import { detach } from '../sip/message/detach.ts';
import { isPromise, type MaybePromise } from '../maybe-promise.ts';
import { aorOf, isIPv4, isIPv6, isSipUri, parseUri, type SipUri } from '../sip/message/uri.ts';
import { followRedirect } from './redirect.ts';
import { maxForwardsValue } from '../sip/message/validate.ts';
import { MAGIC_COOKIE } from '../sip/message/via.ts';
import type { InviteClientCallbacks, InviteClientHandle, InviteServerHandle, OutboundSender } from '../sip/transaction/invite-table.ts';
import type { RelayFlow } from '../sip/flow-relay.ts';
import { NetworkSet } from '../sip/transport/networks.ts';
import type { Destination, Source, TransportName } from '../sip/transport/types.ts';
import type { BindingRecord } from '../storage/ports.ts';
import { gruuMatches, type GruuTarget } from '../registrar/gruu.ts';
import { parked } from '../registrar/push-params.ts';
import { gruuTargets } from './gruu-target.ts';
import type { Registry } from 'prom-client';
import type { EventBus } from '../bus/event-bus.ts';
import { CallAccounting, type CallInfo, type LiveCall } from './accounting.ts';
import { authenticateAsProxy } from '../identity/proxy-auth.ts';
import { decide, type RouteHook } from './routing-hook.ts';
import { Fork, forwardedCopy, popVia, type Target } from './fork.ts';
import type { LateForks, LateWait } from './fork-late.ts';
import { fromCaller, MAX_ROUTES, preprocessRoutes, RecordRouter, type DialogRoute, type Flow } from './record-route.ts';

/** What the proxy needs of the SIP endpoint. */
export interface ProxyEndpoint {
  handleInvite(handler: InviteHandler): void;
  handleAck(handler: AckHandler): void;
  handle(method: string, handler: (req: SipRequest, ctx: RequestContext) => Promise<SipResponse>): void;
  invite(req: SipRequest, dest: Destination, callbacks: InviteClientCallbacks, branch?: string, through?: OutboundSender): InviteClientHandle;
  request(req: SipRequest, dest: Destination, onProvisional?: (res: SipResponse) => void, through?: OutboundSender): Promise<SipResponse>;
  forwardStateless(req: SipRequest, dest: Destination, branch?: string, through?: OutboundSender): void;
  localAddress(transport: TransportName): { host: string; port: number } | null;
}

export interface CallRules {
  /** Calls from outside the served domains: 'any', 'authenticated', or CIDRs of trusted trunks/SBCs. */
  from: string;
  /** Where calls to other domains go (sip:host[:port][;transport=x], an IP address), or null: refused 403. */
  outboundProxy: string | null;
  /** Where a call to a user without a binding goes (voicemail), or null: 480. */
  fallbackUri: string | null;
  /** Seconds a q group rings before the next starts (serial forking). */
  serialTimeout: number;
  /** busy-to-fallback: a callee who published busy/DND goes to the fallback URI or gets 486. */
  presencePolicy: 'off' | 'busy-to-fallback';
  /** 3xx recursion: a branch's 3xx Contacts rung (redirectTargets), or the best 3xx returned (false, the default). */
  followRedirects?: boolean;
}

/** What presence-aware routing reads of a presentity's composed state. */
export interface PresenceView {
  basic: 'open' | 'closed';
  source: 'published' | 'registration' | 'mixed' | 'none';
  activities: string[];
  notes: string[];
  tuples: Array<{ basic: 'open' | 'closed'; notes: string[] }>;
}

const BUSY_ACTIVITIES = new Set(['busy', 'on-the-phone']);

/**
 * A presentity that said not to ring it: RPID `busy` or `on-the-phone` (RFC 4480), or a published tuple closed
 * with a note (how most phones say do-not-disturb; tuples derived from registrations carry no notes, so another
 * registered device does not cancel it), or all closed with a presence note. Registrations alone never are.
 */
export function doNotRing(p: PresenceView): boolean {
  if (p.source !== 'published' && p.source !== 'mixed') return false;
  if (p.activities.some((a) => BUSY_ACTIVITIES.has(a))) return true;
  if (p.tuples.some((t) => t.basic === 'closed' && t.notes.length > 0)) return true;
  return p.basic === 'closed' && p.notes.length > 0;
}

export interface ProxyDeps {
  endpoint: ProxyEndpoint;
  location: { lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]> };
  userExists: (aor: string) => MaybePromise<boolean>;
  authenticator: SipAuthenticator;
  realms: string[];
  isLocalHost: (host: string) => boolean;
  node: string;
  /** RFC 5627: resolves a Request-URI with `gr` to one device (registrar/gruu.ts). */
  gruus?: { resolve(u: SipUri): GruuTarget | 'forged' | null };
  /** HMAC key for our Record-Route (derived from the master key: every node verifies every node's). */
  routeKey: Buffer;
  rules: CallRules;
  log: Logger;
  /** Timer C in ms (§16.8: more than 3 minutes). */
  timerCMs?: number;
  /** The --routing-module hook, asked before the default routing. */
  route?: RouteHook;
  /** The callee's composed presence (for --call-presence-policy), or absent. */
  presence?: (aor: string) => PresenceView | null;
  /** Call events go here (accounting.ts). */
  bus?: EventBus;
  /** Call metrics register here. */
  registry?: Registry;
  /** Fork late (fork-late.ts): push-only devices are pushed and waited for, `timeoutMs` at most. */
  late?: { forks: LateForks; timeoutMs: number };
  /**
   * The flow relay (sip/flow-relay.ts): a branch to a connection another node holds is sent through that node, our
   * client transaction staying here. Without it such a binding is unreachable from this node.
   */
  relay?: { through(flow: RelayFlow): OutboundSender };
}

/** A destination on another node's connection: sent `through` the relay. */
type RelayedDestination = Destination & { node: string };

/** Most branches one INVITE may fork to (a user with more bindings rings the first this many by q). */
export const MAX_BRANCHES = 16;
const IN_DIALOG = ['BYE', 'UPDATE', 'INFO', 'REFER', 'NOTIFY', 'PRACK'];
const BRANCH_PREFIX = MAGIC_COOKIE + 'sbp';

export interface Proxy {
  start(): void;
  stop(): void;
  /** Adds a routing hook (the library API; --routing-module's comes first). */
  onRoute(hook: RouteHook): void;
  /** The calls this node proxies that are ringing or answered now (accounting.ts). */
  liveCalls(): LiveCall[];
}

export function createProxy(d: ProxyDeps): Proxy {
  const hooks: RouteHook[] = d.route ? [d.route] : [];
  const router = new RecordRouter(d.routeKey);
  const accounting = new CallAccounting(d.bus ?? null, d.registry ?? null);
  const realms = new Set(d.realms.map((r) => r.toLowerCase()));
  const trusted = d.rules.from === 'any' || d.rules.from === 'authenticated' ? null : new NetworkSet(d.rules.from.split(',').map((s) => s.trim()));
  const outbound = d.rules.outboundProxy ? uriDestination(d.rules.outboundProxy) : null;
  let counter = 0;
  let stopped = false;

  const localHost = (h: string) => d.isLocalHost(h.charCodeAt(0) === 91 ? h.slice(1, -1).toLowerCase() : h.toLowerCase());
  const served = (host: string) => realms.has(host.toLowerCase()) || localHost(host);

  const reject = (req: SipRequest, code: ErrorCode, detail?: string): SipResponse => {
    const res = sipError(req, Errors[code] as { code: string; sip: number }, detail ?? Errors[code].message);
    res.stateless = true; // as Kamailio's sl_send_reply: nothing held for a refused call
    return res;
  };

  /**
   * §16.6 step 8 / §16.3 step 4: the branch carries a hash of the request's invariants, so a loop is seen. Computed
   * once per INVITE (the loop check's is the branches'), with the one-shot `hash`.
   */
  const loopHash = (req: SipRequest, originalUri: string): string =>
    hash('sha256', [originalUri, req.to()?.params.get('tag') ?? '', req.from()?.params.get('tag') ?? '', req.callId() ?? '', String(req.cseq()?.seq ?? ''), req.getAll(H.proxyRequire).join(',')].join('\n'), 'base64url')
      .slice(0, 16)
      .replace(/[-_]/g, 'x');
  const looped = (req: SipRequest, loop: string): boolean => req.vias().slice(1).some((v) => v.params.get('branch')?.startsWith(`${BRANCH_PREFIX}${loop}.`) ?? false);

  const flowOf = (s: Source): Flow => ({ transport: s.transport, address: s.address, port: s.port, connectionId: s.connectionId, node: d.node });

  /** Where a flow is reached from this node; another node's connection through that node (null without a relay). */
  const flowDestination = (f: Flow): Destination | null => {
    if (f.node === d.node) return { transport: f.transport, address: f.address, port: f.port, connectionId: f.connectionId };
    if (f.transport === 'UDP' || f.connectionId === null) return { transport: f.transport, address: f.address, port: f.port };
    if (!d.relay) return null;
    const remote: RelayedDestination = { transport: f.transport, address: f.address, port: f.port, connectionId: f.connectionId, node: f.node };
    return remote;
  };

  /** The relay's sender for a destination on another node's connection; undefined (our transports) otherwise. */
  const through = (dest: Destination): OutboundSender | undefined => {
    const node = (dest as Partial<RelayedDestination>).node;
    return node === undefined || !d.relay ? undefined : d.relay.through({ node, transport: dest.transport, address: dest.address, port: dest.port, connectionId: dest.connectionId ?? null });
  };

  /**
   * Where a fellow node's Record-Route points (§16.6 step 7 for a loose-routed request: its host, port and transport;
   * the default ports of RFC 3263 §4.2 when it names none).
   */
  const fellowDestination = (u: SipUri): Destination => {
    const t = (u.params.get('transport') ?? '').toUpperCase();
    const transport = u.scheme === 'sips' ? (t === 'WSS' ? 'WSS' : 'TLS') : t === 'TCP' || t === 'TLS' || t === 'WS' || t === 'WSS' ? t : 'UDP';
    return { transport, address: u.host.replace(/^\[|\]$/g, ''), port: u.port ?? (transport === 'TLS' || transport === 'WSS' ? 5061 : 5060) };
  };

  /** A URI naming this proxy: one of our hosts and one of the ports we listen on (5060 when none is given). */
  const isUs = (u: SipUri): boolean => {
    if (!localHost(u.host)) return false;
    const port = u.port ?? (u.scheme === 'sips' ? 5061 : 5060);
    return (['UDP', 'TCP', 'TLS', 'WS', 'WSS'] as const).some((t) => d.endpoint.localAddress(t)?.port === port);
  };

  const isOurAddress = (dest: Destination): boolean => {
    if (!localHost(dest.address)) return false;
    const ours = d.endpoint.localAddress(dest.transport);
    return ours !== null && ours.port === dest.port;
  };

  /** Our Record-Route entries for a leg from `caller` to `callee`: two when the transports differ (RFC 5658). */
  const recordRoutes = (req: SipRequest, caller: Flow, callee: Flow): string[] => {
    const callId = req.callId() ?? '';
    const fromTag = req.from()?.params.get('tag') ?? '';
    const rr = (t: TransportName) => {
      const a = d.endpoint.localAddress(t);
      return a ? `<${router.uri(a.host, a.port, t, callId, fromTag, caller, callee)}>` : null;
    };
    const out = [rr(callee.transport)];
    if (callee.transport !== caller.transport) out.push(rr(caller.transport));
    return out.filter((x): x is string => x !== null);
  };

  const bindingTarget = (req: SipRequest, b: BindingRecord, caller: Flow): Target | null => {
    const flow: Flow = { transport: b.transport as TransportName, address: b.sourceAddress, port: b.sourcePort, connectionId: b.connectionId, node: b.node };
    const dest = flowDestination(flow);
    if (!dest || isOurAddress(dest)) return null;
    return { uri: b.contact, dest, routes: b.path, recordRoute: recordRoutes(req, caller, flow) };
  };

  const gruuTarget = gruuTargets({
    gruus: d.gruus,
    location: d.location,
    served,
    targetAor: (u) => targetAor(u),
    destination: (b) => {
      const dest = flowDestination({ transport: b.transport as TransportName, address: b.sourceAddress, port: b.sourcePort, connectionId: b.connectionId, node: b.node });
      return dest && !isOurAddress(dest) ? dest : null;
    },
  });

  /** A new call (not a re-INVITE): accounted, and its 3xx followed per --call-follow-redirects. */
  type Accounted = { info: CallInfo; arrivedAt: number; caller: Flow; ours: boolean };

  /** 3xx recursion (redirect.ts): a redirect's Contacts as branches, by the rules of a new call's targets. */
  const redirectTargets = (req: SipRequest, call: Accounted) =>
    followRedirect({
      callee: call.info.callee,
      served,
      targetAor,
      userExists: d.userExists,
      bindings: async (aor) => {
        const now = Date.now();
        return groupByQ((await d.location.lookup(aor)).filter((b) => b.expiresAt > now)).map((g) => g.map((b) => bindingTarget(req, b, call.caller)).filter((t): t is Target => t !== null));
      },
      outbound: call.ours && outbound ? (uri) => ({ uri, dest: outbound, routes: [], recordRoute: recordRoutes(req, call.caller, destFlow(outbound)) }) : null,
    });

  /** Devices woken by push while the call waits: each that registers again becomes a branch (fork-late.ts). */
  type Late = { aor: string; devices: BindingRecord[]; caller: Flow };

  /** `loop`: loopHash of the request as received. */
  const fork = (req: SipRequest, txn: InviteServerHandle, groups: Target[][], loop: string, call?: Accounted, late?: Late): void => {
    // Cancelled while we authenticated and looked up (the endpoint answered 487 then): ring no one.
    if (txn.cancelled) return;
    let wait: LateWait | null = null;
    const f = new Fork({
      request: req,
      groups,
      invite: (r, dest, cb, branch) => d.endpoint.invite(r, dest, cb, branch, through(dest)),
      branchId: () => `${BRANCH_PREFIX}${loop}.${(++counter).toString(36)}`,
      respond: responder(txn), // not a closure of this scope, whose context holds the fork (see Fork.handOver)
      timerCMs: d.timerCMs ?? 181_000,
      groupTimeoutMs: d.rules.serialTimeout * 1000,
      onFinal: finalHook(call, () => wait?.stop()),
      redirect: call && d.rules.followRedirects ? redirectTargets(req, call) : undefined,
    });
    if (call) accounting.started(call.info, groups.reduce((n, g) => n + g.length, 0));
    if (late && d.late) wait = startLate(req, f, late);
    txn.onCancel(() => {
      wait?.stop();
      f.cancel();
    });
    txn.respond(createResponse(req, 100)); // forwarding: the caller stops retransmitting (as t_relay does)
    f.start();
  };

  const responder = (txn: InviteServerHandle) => (res: SipResponse) => txn.respond(res);

  /**
   * The fork's onFinal, made apart from fork()'s closures: they share one context, and this one's `call` (whose
   * strings are slices of the INVITE's header text) would stay with them for the 32 s of Accepted.
   */
  const finalHook = (call: Accounted | undefined, stopWait: () => void) => (status: number) => {
    stopWait();
    if (call) accounting.final(call.info, status, call.arrivedAt);
  };

  const startLate = (req: SipRequest, f: Fork, late: Late) => {
    f.hold();
    const w = d.late!.forks.wait(late.aor, late.devices, 'call', d.late!.timeoutMs, (b) => {
      const t = bindingTarget(req, b, late.caller);
      if (!t || !f.addBranch(t)) w.stop();
      if (f.ended) w.stop();
    }, () => f.release(sipError(req, Errors.PROXY_ERR_PUSH_TIMEOUT)));
    return w;
  };

  /** A single-target forward (outbound proxy, fallback URI, in-dialog re-INVITE). */
  const single = (uri: string, dest: Destination, recordRoute: string[] = []): Target[][] => [[{ uri, dest, routes: [], recordRoute }]];

  const onInvite: InviteHandler = (req, ctx, txn) => {
    route(req, ctx, txn).catch((err: unknown) => {
      d.log.error({ err, callId: req.callId() }, 'call routing failed');
      txn.respond(sipError(req, Errors.SIP_ERR_INTERNAL, 'call routing failed'));
    });
  };

  const route = async (req: SipRequest, ctx: RequestContext, txn: InviteServerHandle): Promise<void> => {
    const early = preflight(req);
    if (early) return void txn.respond(early);
    const originalUri = req.uri;
    const routed = preprocessRoutes(req, router, isUs);
    if (routed.kind === 'too-many') return void txn.respond(reject(req, 'PROXY_ERR_ROUTE'));
    if (routed.kind === 'forged') return void txn.respond(reject(req, 'PROXY_ERR_RELAY_DENIED', 'Route not signed by this proxy'));
    if (req.to()?.params.has('tag')) {
      // A re-INVITE: only within a dialog we record-routed, or to a device's GRUU (its remote target).
      if (routed.kind === 'none') {
        const t = await gruuTarget(req);
        if (typeof t === 'string') return void txn.respond(reject(req, t));
        if (t) return fork(req, txn, [[t]], loopHash(req, originalUri));
      }
      if (routed.kind === 'fellow') {
        const to = fellowDestination(routed.next);
        return fork(req, txn, single(req.uri, to), originalUri);
      }
      if (routed.kind !== 'ours') return void txn.respond(reject(req, 'PROXY_ERR_NO_DIALOG'));
      const dest = inDialogDestination(req, routed.route);
      if (!dest) return void txn.respond(reject(req, 'PROXY_ERR_UNREACHABLE'));
      return fork(req, txn, single(req.uri, dest), loopHash(req, originalUri));
    }
    const loop = loopHash(req, originalUri);
    if (looped(req, loop)) return void txn.respond(reject(req, 'PROXY_ERR_LOOP'));
    if (req.has(H.route)) return void txn.respond(reject(req, 'PROXY_ERR_RELAY_DENIED', 'initial request with a Route elsewhere'));
    const ruri = req.requestUri();
    const from = req.from()?.uri;
    if (!ruri || !isSipUri(ruri) || !from || !isSipUri(from)) return void txn.respond(reject(req, 'PROXY_ERR_RELAY_DENIED', 'not a SIP URI'));
    // Who is calling: a user of ours proves it (407); a caller from outside per --calls-from.
    const fromDomain = from.host.toLowerCase();
    let ours = false;
    let identity: string | null = null;
    if (realms.has(fromDomain) || d.rules.from === 'authenticated') {
      const realm = realms.has(fromDomain) ? fromDomain : d.realms[0];
      const outcome = await authenticateAsProxy(d.authenticator, req, ctx.source, realm, 'sip.register');
      if (!outcome.ok) return void txn.respond(outcome.response);
      if (realms.has(fromDomain) && !outcome.identity.aors.includes(aorOf(from))) return void txn.respond(reject(req, 'PROXY_ERR_FROM_NOT_OWNED'));
      ours = realms.has(fromDomain);
      identity = `${outcome.identity.authUser}@${outcome.identity.realm}`;
      req.remove(H.proxyAuthorization); // consumed here (§22.3: credentials for us do not travel on)
    } else if (trusted && !trusted.has(ctx.source.address)) {
      return void txn.respond(reject(req, 'PROXY_ERR_CALLER_DENIED'));
    }
    const caller = flowOf(ctx.source);
    // Detached: the live calls hold these for the call's length (accounting.ts), not the INVITE's header text.
    const call = (callee: string): Accounted => ({ info: { callId: detach(req.callId() ?? ''), caller: detach(aorOf(from)), callee: detach(callee) }, arrivedAt: ctx.arrivedAt, caller, ours });
    if (hooks.length > 0) {
      const callee = served(ruri.host) ? targetAor(ruri) : null;
      const to = req.to()?.uri;
      let decision;
      try {
        decision = await decide(hooks, {
          method: req.method,
          requestUri: req.uri,
          callId: req.callId() ?? '',
          from: aorOf(from),
          to: to && isSipUri(to) ? aorOf(to) : null,
          callee,
          caller: { authenticated: identity !== null, identity, transport: ctx.source.transport, address: ctx.source.address, port: ctx.source.port },
          header: (name) => req.get(name),
        }, uriDestination, MAX_BRANCHES);
      } catch (err) {
        d.log.error({ err, callId: req.callId() }, 'routing hook failed: call refused');
        return void txn.respond(sipError(req, Errors.SIP_ERR_INTERNAL, 'routing hook'));
      }
      if (decision.kind === 'reject') {
        const res = sipError(req, { ...Errors.PROXY_ERR_HOOK_REJECT, sip: decision.status }, decision.reason);
        res.stateless = true;
        return void txn.respond(res);
      }
      if (decision.kind === 'targets') {
        const group = decision.targets.map((t) => ({ uri: t.uri, dest: t.dest, routes: [], recordRoute: recordRoutes(req, caller, destFlow(t.dest)) }));
        return fork(req, txn, [group], loop, call(callee ?? aorOf(ruri)));
      }
    }
    if (!served(ruri.host)) {
      if (!ours || !outbound) return void txn.respond(reject(req, 'PROXY_ERR_RELAY_DENIED'));
      return fork(req, txn, single(req.uri, outbound, recordRoutes(req, caller, destFlow(outbound))), loop, call(aorOf(ruri)));
    }
    // RFC 5627: a GRUU names one device of the AOR (a temp-gruu carries the AOR sealed, registrar/gruu.ts).
    const gruu = d.gruus && ruri.params.has('gr') ? d.gruus.resolve(ruri) : null;
    if (gruu === 'forged') return void txn.respond(reject(req, 'GRUU_ERR_UNKNOWN'));
    const aor = gruu?.callIdHash ? gruu.aor : targetAor(ruri);
    // The embedded account check and location index answer at once: awaited only when they return a promise.
    const exists = d.userExists(aor);
    if (!(isPromise(exists) ? await exists : exists)) return void txn.respond(reject(req, gruu ? 'GRUU_ERR_UNKNOWN' : 'PROXY_ERR_UNKNOWN_USER'));
    const fallback = (code: ErrorCode): void => {
      const fb = d.rules.fallbackUri ? uriDestination(d.rules.fallbackUri) : null;
      if (fb && d.rules.fallbackUri) return fork(req, txn, single(d.rules.fallbackUri, fb, recordRoutes(req, caller, destFlow(fb))), loop, call(aor));
      txn.respond(reject(req, code));
    };
    const presence = d.rules.presencePolicy === 'busy-to-fallback' ? d.presence?.(aor) : null;
    if (presence && doNotRing(presence)) return fallback('PROXY_ERR_BUSY');
    const now = Date.now();
    const found = d.location.lookup(aor);
    const bindings = (isPromise(found) ? await found : found).filter((b) => b.expiresAt > now && (!gruu || gruuMatches(b, gruu)));
    if (gruu && bindings.length === 0) return void txn.respond(reject(req, 'GRUU_ERR_UNAVAILABLE'));
    const pushOnly = d.late?.forks.pushOnly(bindings) ?? [];
    // A parked binding (push-params.ts) has no flow: pushed when its device has no other, never a branch.
    const targets = groupByQ(bindings.filter((b) => !pushOnly.includes(b) && !parked(b))).map((g) => g.map((b) => bindingTarget(req, b, caller)).filter((t): t is Target => t !== null));
    const groups = limitBranches(targets.filter((g) => g.length > 0));
    if (groups.length === 0 && pushOnly.length === 0) return fallback(bindings.length ? 'PROXY_ERR_UNREACHABLE' : 'PROXY_ERR_NOT_REGISTERED');
    fork(req, txn, groups, loop, call(aor), pushOnly.length ? { aor, devices: pushOnly, caller } : undefined);
  };

  /** Max-Forwards (483) and Route/Record-Route counts: checks before any work. */
  const preflight = (req: SipRequest): SipResponse | null => {
    const mf = req.get(H.maxForwards);
    if (mf !== undefined && maxForwardsValue(mf) === 0) return reject(req, 'SIP_ERR_MAX_FORWARDS');
    if (req.values(H.recordRoute).length > MAX_ROUTES) return reject(req, 'PROXY_ERR_ROUTE');
    return null;
  };

  const targetAor = (u: SipUri): string => (realms.has(u.host.toLowerCase()) ? aorOf(u) : aorOf({ ...u, host: d.realms[0] }));

  /** The other side of a dialog: the caller's requests go to the callee's flow, the callee's to the caller's. */
  const inDialogDestination = (req: SipRequest, r: DialogRoute): Destination | null => {
    return flowDestination(fromCaller(r, req.from()?.params.get('tag') ?? '') ? r.callee : r.caller);
  };

  const onAck: AckHandler = (req) => {
    // The ACK for a 2xx (end to end, §16.7 step 10 / §16.11): forwarded statelessly along our Record-Route.
    if (preflight(req)) return;
    const routed = preprocessRoutes(req, router, isUs);
    if (routed.kind === 'none') {
      // The ACK of a 2xx to a device's GRUU (RFC 5627): to that device.
      gruuTarget(req)
        .then((t) => {
          if (t && typeof t !== 'string') return d.endpoint.forwardStateless(forwardedCopy(req, t), t.dest, undefined, through(t.dest));
        })
        .catch((err: unknown) => d.log.debug({ err, callId: req.callId() }, 'ACK to a GRUU not forwarded'));
      return;
    }
    if (routed.kind === 'fellow') {
      const to = fellowDestination(routed.next);
      const copy = forwardedCopy(req, { uri: req.uri, dest: to, routes: [], recordRoute: [] });
      d.endpoint.forwardStateless(copy, to);
      return;
    }
    if (routed.kind !== 'ours') return;
    const dest = inDialogDestination(req, routed.route);
    if (!dest) return;
    d.endpoint.forwardStateless(forwardedCopy(req, { uri: req.uri, dest, routes: [], recordRoute: [] }), dest, undefined, through(dest));
  };

  const inDialog = async (req: SipRequest): Promise<SipResponse> => {
    const early = preflight(req);
    if (early) return early;
    const routed = preprocessRoutes(req, router, isUs);
    if (routed.kind === 'too-many') return reject(req, 'PROXY_ERR_ROUTE');
    if (routed.kind === 'none') {
      // To a device's GRUU (RFC 5627 §8.4: e.g. a NOTIFY or BYE in a dialog whose remote target is the GRUU).
      const t = await gruuTarget(req);
      if (typeof t === 'string') return reject(req, t);
      if (t) {
        const res = await d.endpoint.request(forwardedCopy(req, t), t.dest, undefined, through(t.dest));
        popVia(res);
        return res;
      }
    }
    if (routed.kind === 'fellow' && req.to()?.params.has('tag')) {
      // On to the node that record-routed, which keeps the dialog's state (its accounting sees the BYE): the Route
      // stays for it to consume.
      const to = fellowDestination(routed.next);
      const res = await d.endpoint.request(forwardedCopy(req, { uri: req.uri, dest: to, routes: [], recordRoute: [] }), to);
      popVia(res);
      return res;
    }
    if (routed.kind !== 'ours' || !req.to()?.params.has('tag')) return reject(req, 'PROXY_ERR_NO_DIALOG');
    const dest = inDialogDestination(req, routed.route);
    if (!dest) return reject(req, 'PROXY_ERR_UNREACHABLE');
    const res = await d.endpoint.request(forwardedCopy(req, { uri: req.uri, dest, routes: [], recordRoute: [] }), dest, undefined, through(dest));
    popVia(res);
    if (req.method === 'BYE' && res.status >= 200 && res.status < 300) {
      const by = req.from()?.uri;
      accounting.ended(req.callId() ?? '', by && isSipUri(by) ? aorOf(by) : '');
    }
    return res;
  };

  return {
    start() {
      d.endpoint.handleInvite((req, ctx, txn) => (stopped ? txn.respond(sipError(req, Errors.PROXY_ERR_STOPPING)) : onInvite(req, ctx, txn)));
      d.endpoint.handleAck(onAck);
      for (const m of IN_DIALOG) d.endpoint.handle(m, inDialog);
    },
    stop() {
      stopped = true;
    },
    onRoute(hook) {
      hooks.push(hook);
    },
    liveCalls: () => accounting.liveCalls(),
  };
}

/** Bindings in q groups, highest first (no q counts as 1.0, RFC 3261 §10.2.1.2); within a group newest first. */
export function groupByQ(bindings: BindingRecord[]): BindingRecord[][] {
  const byQ = new Map<number, BindingRecord[]>();
  for (const b of bindings) {
    const q = b.q ?? 1;
    let g = byQ.get(q);
    if (!g) byQ.set(q, (g = []));
    g.push(b);
  }
  return [...byQ.entries()].sort((a, b) => b[0] - a[0]).map(([, g]) => g.sort((x, y) => y.updatedAt - x.updatedAt));
}

function limitBranches(groups: Target[][]): Target[][] {
  const out: Target[][] = [];
  let n = 0;
  for (const g of groups) {
    if (n >= MAX_BRANCHES) break;
    const take = g.slice(0, MAX_BRANCHES - n);
    n += take.length;
    out.push(take);
  }
  return out;
}

/** A configured URI (outbound proxy, fallback) as a destination: IP literals only, no DNS on the call path. */
export function uriDestination(uri: string): Destination | null {
  // A bare URI's parameters are the URI's (transport=tcp); in a name-addr only those inside <> are.
  const u = uri.includes('<') ? parseNameAddr(uri)?.uri : parseUri(uri.trim());
  if (!u || !isSipUri(u)) return null;
  const host = u.host.charCodeAt(0) === 91 ? u.host.slice(1, -1) : u.host;
  if (!isIPv4(host) && !isIPv6(host)) return null;
  const t = (u.params.get('transport') ?? 'udp').toUpperCase();
  const transport: TransportName = t === 'TCP' || t === 'TLS' || t === 'WS' || t === 'WSS' ? t : u.scheme === 'sips' ? 'TLS' : 'UDP';
  return { transport, address: host, port: u.port ?? (transport === 'TLS' ? 5061 : 5060) };
}

function destFlow(dest: Destination): Flow {
  return { transport: dest.transport, address: dest.address, port: dest.port, connectionId: null, node: '' };
}
