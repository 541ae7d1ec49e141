// REGISTER processing, RFC 3261 §10.3 step by step (with RFC 3327 Path and RFC 5626 instance/reg-id keys).
// Protocol rules only: who the client is comes from the SipAuthenticator, where bindings live from the
// LocationService.

import type { Config } from '../config.ts';
import type { AuthOutcome, SipAuthenticator, SipIdentity } from '../identity/sip-authenticator.ts';
import type { Logger } from '../log.ts';
import type { RequestContext } from '../sip/endpoint.ts';
import {
  aorOf,
  detach,
  keep,
  createResponse,
  formatUri,
  H,
  isSipUri,
  parseContactValues,
  type NameAddr,
  SipResponse,
  sipError,
  type SipRequest,
} from '../sip/message/index.ts';
import { intervalTooBrief, servedRequestUri } from '../sip/uas-checks.ts';
import { Errors } from '../errors.ts';
import type { AorState, BindingRecord } from '../storage/ports.ts';
import { bindingKey, contactValue, instanceOf, keptParams, parseDeltaSeconds, parseQ, regIdOf } from './contact.ts';
import type { NetworkSet } from '../sip/transport/networks.ts';
import type { Gruus } from './gruu.ts';
import { live, type BindingChange, type Declined, type LocationPlan, type LocationService } from './location-service.ts';
import { isPromise, settle } from '../maybe-promise.ts';

export type RegisterOutcome = 'query' | 'updated' | 'unregistered-all' | 'rejected';

export interface RegistrarOptions {
  location: LocationService;
  authenticator: SipAuthenticator;
  rules: Config['registrar'];
  /** Served domains, lower-case. */
  realms: string[];
  /** Hosts that address this server itself in a Request-URI (its IPs and names): the domain then comes from To. */
  isLocalHost: (host: string) => boolean;
  node: string;
  log: Logger;
  /**
   * Sources whose Path (RFC 3327) is stored: the edge proxies in front of this registrar. Path from anyone else
   * is dropped, as a Kamailio registrar behind edge proxies does (remove_hf("Path") unless from the dispatcher
   * list): a phone naming its own Path would steer calls to it, and Kazoo (Proxy-Path, fs_path) through, any host.
   */
  trustedProxies?: NetworkSet;
  /**
   * RFC 8599 push: the pn-provider values served here (a contact naming another gets 555), the +sip.pnsreg seconds
   * and Web Push's VAPID public key (+sip.vapid) for the 200 OK's Feature-Caps. Absent: pn-* parameters are stored
   * like any other and nothing is advertised.
   */
  push?: { providers: readonly string[]; pnsreg: number; vapid: string | null };
  /** RFC 5627: pub-gruu and temp-gruu for the bindings of a client that supports gruu. */
  gruus?: Gruus;
  now?: () => number;
  random?: () => number;
  onOutcome?: (outcome: RegisterOutcome, changes: BindingChange[]) => void;
}

export class Registrar {
  private readonly o: RegistrarOptions;
  private readonly realms: Set<string>;
  private readonly now: () => number;
  private readonly random: () => number;
  private dateCache = { second: 0, text: '' };

  constructor(o: RegistrarOptions) {
    this.o = o;
    this.realms = new Set(o.realms);
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
  }

  /**
   * A REGISTER's answer: at once when nothing had to be waited for (a challenge, a refusal), a promise otherwise (the
   * 200 after its binding is durable). As an async function every answer cost a promise and two suspensions, the
   * first for awaiting an authentication outcome that in process is ready at once.
   */
  handle = (req: SipRequest, ctx: RequestContext): SipResponse | Promise<SipResponse> => {
    // Step 1: the Request-URI names a domain we serve (or this server itself).
    const ruri = servedRequestUri(req, this.realms, this.o.isLocalHost);
    if (ruri instanceof SipResponse) return this.rejected(ruri);
    // Step 5 (checked before authenticating, to challenge in the right realm): the AOR from To.
    const to = req.to()!;
    if (!isSipUri(to.uri)) return this.reject(req, Errors.REG_ERR_UNKNOWN_AOR, 'address of record must be a SIP URI');
    const domain = to.uri.host.toLowerCase();
    if (!this.realms.has(domain)) return this.reject(req, Errors.REG_ERR_NOT_OUR_DOMAIN, 'address of record not in a served domain');
    if (to.uri.user === null) return this.reject(req, Errors.REG_ERR_UNKNOWN_AOR, 'address of record has no user part');
    const aor = aorOf(to.uri);

    // With a shared index, a REGISTER carrying credentials has its AOR read while it is authenticated: the read
    // leaves in the same write to the cache as the lockout checks instead of a round trip of its own (the version
    // it carries still guards the write, so an early read is never a wrong one).
    let prefetch: Promise<AorState> | null = null;
    if (this.o.location.shared && req.get(H.authorization) !== undefined) {
      const r = this.o.location.read(aor);
      if (isPromise(r)) (prefetch = r).catch(() => {});
    }
    // Steps 3–4: authenticate, then authorise this identity for this AOR.
    const auth = this.o.authenticator.authenticate(req, ctx.source, domain);
    if (isPromise(auth)) return auth.then((a) => this.authenticated(req, ctx, aor, a, prefetch));
    return this.authenticated(req, ctx, aor, auth, prefetch);
  };

  /** Steps 4, 6 and 7, once step 3 has an outcome. */
  private authenticated(req: SipRequest, ctx: RequestContext, aor: string, auth: AuthOutcome, prefetch: Promise<AorState> | null): SipResponse | Promise<SipResponse> {
    if (!auth.ok) {
      this.o.onOutcome?.('rejected', []);
      return auth.response;
    }
    const identity = auth.identity;
    if (!identity.aors.includes(aor)) {
      this.o.log.info({ user: identity.authUser, realm: identity.realm, aor }, 'REGISTER for an address of record the identity does not own');
      return this.reject(req, Errors.AUTH_ERR_FORBIDDEN, 'not allowed to register this address of record');
    }

    // Steps 6–7: the contacts.
    const contacts = parseContactValues(req);
    if (contacts === null) return this.reject(req, Errors.SIP_ERR_CONTACT, 'malformed Contact');
    if (contacts === '*') return this.unregisterAll(req, aor, prefetch);
    if (contacts.length === 0) {
      this.o.onOutcome?.('query', []);
      if (prefetch) return prefetch.then((state) => this.ok(req, live(state.bindings, this.now())));
      return settle(this.o.location.lookup(aor), (found) => this.ok(req, found));
    }
    return this.update(req, ctx, aor, contacts, identity, prefetch);
  }

  /**
   * The change `plan` computes, through the location service's compare-and-set loop, and what `then` makes of it
   * once durable; a declined plan's answer as it is, and 500 when the change cannot be stored.
   */
  private change(
    req: SipRequest,
    aor: string,
    plan: (live: BindingRecord[]) => LocationPlan | Declined<SipResponse>,
    prefetch: Promise<AorState> | null,
    then: (done: LocationPlan) => SipResponse,
  ): Promise<SipResponse> {
    return this.o.location.update(aor, plan, { first: prefetch }).then(
      (done) => ('declined' in done ? done.declined : then(done)),
      (err: unknown) => {
        this.o.log.error({ err, aor }, 'binding change not stored; REGISTER refused');
        return this.reject(req, Errors.STORE_ERR_WRITE, 'could not store the binding');
      },
    );
  }

  private unregisterAll(req: SipRequest, aor: string, prefetch: Promise<AorState> | null): SipResponse | Promise<SipResponse> {
    const expires = req.get(H.expires);
    if (expires === undefined || parseDeltaSeconds(expires) !== 0) {
      return this.reject(req, Errors.REG_ERR_WILDCARD, 'Contact: * requires Expires: 0');
    }
    const callId = req.callId()!;
    const cseq = req.cseq()!.seq;
    return this.change(req, aor, (current) => {
      for (const b of current) {
        if (b.callId === callId && cseq <= b.cseq) return { declined: this.reject(req, Errors.REG_ERR_OUT_OF_ORDER, 'CSeq out of order') };
      }
      return { next: [], changes: current.map((binding) => ({ event: 'removed' as const, binding })) };
    }, prefetch, (done) => {
      this.o.onOutcome?.('unregistered-all', done.changes);
      return this.ok(req, done.next);
    });
  }

  private update(
    req: SipRequest,
    ctx: RequestContext,
    aor: string,
    contacts: NameAddr[],
    identity: SipIdentity,
    prefetch: Promise<AorState> | null,
  ): SipResponse | Promise<SipResponse> {
    const rules = this.o.rules;
    const now = this.now();
    const headerExpires = parseDeltaSeconds(req.get(H.expires));
    const callId = req.callId()!;
    const cseq = req.cseq()!.seq;

    // Validate every contact before changing anything: the REGISTER applies whole or not at all.
    const plans: Array<{ na: NameAddr; key: string; expires: number; q: number | null }> = new Array(contacts.length);
    let pns: string | null = null;
    for (let c = 0; c < contacts.length; c++) {
      const na = contacts[c];
      const q = parseQ(na.params.get('q'));
      if (q === 'invalid') return this.reject(req, Errors.SIP_ERR_CONTACT, 'invalid q value');
      let expires = parseDeltaSeconds(na.params.get('expires')) ?? headerExpires ?? rules.defaultExpires;
      if (expires !== 0 && expires < rules.minExpires) return this.rejected(intervalTooBrief(req, rules.minExpires));
      if (expires > rules.maxExpires) expires = rules.maxExpires;
      // RFC 8599 §4.1.2: a push provider we cannot push through gets 555 (removals pass whatever they name).
      const pn = this.o.push && expires !== 0 && isSipUri(na.uri) ? na.uri.params.get('pn-provider') : undefined;
      if (pn !== undefined) {
        const name = (pn ?? '').toLowerCase();
        if (!this.o.push!.providers.includes(name)) return this.reject(req, Errors.REG_ERR_PUSH_PROVIDER, `pn-provider ${name.slice(0, 32)} not supported`);
        pns = name;
      }
      plans[c] = { na, key: bindingKey(na), expires, q };
    }

    const path = this.pathOf(req, ctx.source);
    const userAgent = req.get(H.userAgent) ?? null;
    const src = ctx.source;
    // Whether a binding key is one this REGISTER names (among its first `upTo` contacts): a scan of the plans, not a
    // Set of their keys (a new string hashed per contact, a fifth of this plan's time in a line-level profile).
    const touched = (key: string, upTo = plans.length): boolean => {
      for (let j = 0; j < upTo; j++) if (plans[j].key === key) return true;
      return false;
    };
    return this.change(req, aor, (current) => {
      const next = current.slice();
      const changes: BindingChange[] = [];
      for (let k = 0; k < plans.length; k++) {
        const p = plans[k];
        let i = 0;
        while (i < next.length && next[i].key !== p.key) i++;
        if (i === next.length) i = -1;
        const existing = i >= 0 ? next[i] : null;
        if (existing && !touched(p.key, k) && existing.callId === callId && cseq <= existing.cseq) {
          return { declined: this.reject(req, Errors.REG_ERR_OUT_OF_ORDER, 'CSeq out of order') };
        }
        if (p.expires === 0) {
          if (existing) {
            next.splice(i, 1);
            changes.push({ event: 'removed', binding: existing });
          }
          continue;
        }
        const granted = this.spread(p.expires);
        // Every string is the existing binding's own when unchanged, else a copy detached from the REGISTER's text
        // (sip/message/detach.ts): a binding lives for its hour without holding the message it came in.
        const instanceId = instanceOf(p.na);
        const binding: BindingRecord = {
          aor: keep(existing?.aor, aor),
          key: keep(existing?.key, p.key),
          contact: keep(existing?.contact, formatUri(p.na.uri)),
          params: keep(existing?.params, keptParams(p.na.params)),
          q: p.q,
          expiresAt: now + granted * 1000,
          callId: keep(existing?.callId, callId),
          cseq,
          path: existing && samePath(existing.path, path) ? existing.path : path.map(detach),
          instanceId: instanceId === null ? null : keep(existing?.instanceId, instanceId),
          regId: regIdOf(p.na),
          transport: src.transport,
          sourceAddress: keep(existing?.sourceAddress, src.address),
          sourcePort: src.port,
          localAddress: src.local.address,
          localPort: src.local.port,
          connectionId: src.connectionId,
          node: this.o.node,
          userAgent: userAgent === null ? null : keep(existing?.userAgent, userAgent),
          createdAt: existing ? existing.createdAt : now,
          updatedAt: now,
          accountId: identity.accountId,
        };
        if (existing) {
          next[i] = binding;
          // A refresh of a binding this same REGISTER added is still an addition.
          const prior = changes.findIndex((c) => c.binding === existing);
          if (prior >= 0) changes[prior] = { event: changes[prior].event, binding };
          else changes.push({ event: 'refreshed', binding });
        } else {
          next.push(binding);
          changes.push({ event: 'added', binding });
        }
      }

      const max = rules.maxContacts;
      if (max > 0 && next.length > max) {
        if (rules.maxContactsPolicy === 'reject') {
          return { declined: this.reject(req, Errors.REG_ERR_TOO_MANY_CONTACTS, `too many contacts: at most ${max} per address of record`) };
        }
        // evict-oldest: drop the longest-standing bindings this request did not touch.
        const evictable = next.filter((b) => !touched(b.key)).sort((a, b) => a.createdAt - b.createdAt);
        while (next.length > max && evictable.length) {
          const victim = evictable.shift()!;
          next.splice(next.indexOf(victim), 1);
          changes.push({ event: 'removed', binding: victim });
        }
        if (next.length > max) {
          return { declined: this.reject(req, Errors.REG_ERR_TOO_MANY_CONTACTS, `too many contacts in one request: at most ${max} per address of record`) };
        }
      }
      return { next, changes };
    }, prefetch, (done) => {
      this.o.onOutcome?.('updated', done.changes);
      const res = this.ok(req, done.next);
      // RFC 8599 §5.2: the push service we will use, when to re-register before expiry, and Web Push's VAPID key.
      if (pns !== null) {
        const vapid = pns === 'webpush' && this.o.push!.vapid ? `;+sip.vapid="${this.o.push!.vapid}"` : '';
        res.append('Feature-Caps', `*;+sip.pns="${pns}"${vapid};+sip.pnsreg="${this.o.push!.pnsreg}"`);
      }
      // RFC 3327 §5.3: echo the stored Path when the client said it supports it.
      if (path.length && req.values(H.supported).some((t) => t.toLowerCase() === 'path')) {
        for (const p of path) res.append('Path', p);
      }
      return res;
    });
  }

  /** The Path to store: the request's when it came from a trusted edge proxy, else none. */
  private pathOf(req: SipRequest, source: RequestContext['source']): string[] {
    if (req.get(H.path) === undefined) return [];
    if (this.o.trustedProxies?.has(source.address)) return req.values(H.path);
    // Debug, not info: the sender controls how often this happens, and a phone that adds Path still registers.
    this.o.log.debug({ from: source.address }, 'Path from a source that is not a trusted proxy ignored');
    return [];
  }

  /** Shortens a granted lifetime by up to expirySpread percent, never below the minimum. */
  private spread(expires: number): number {
    const pct = this.o.rules.expirySpread;
    if (pct === 0) return expires;
    const cut = Math.floor(expires * (pct / 100) * this.random());
    return Math.max(this.o.rules.minExpires, expires - cut);
  }

  /** 200 OK listing every current binding with its remaining lifetime (step 8). */
  private ok(req: SipRequest, bindings: BindingRecord[]): SipResponse {
    const now = this.now();
    const res = createResponse(req, 200);
    // RFC 5627 §5: GRUUs only for a client that said it supports them (no work on anyone else's REGISTER).
    const gruus = this.o.gruus && req.has(H.supported) && req.values(H.supported).some((t) => t.toLowerCase() === 'gruu') ? this.o.gruus : null;
    for (const b of bindings) res.append('Contact', gruus && b.instanceId ? contactValue(b, now, gruus.contactParams(b)) : contactValue(b, now));
    res.append('Date', this.httpDate(now));
    return res;
  }

  private reject(req: SipRequest, err: { readonly code: string; readonly sip: number }, detail: string): SipResponse {
    return this.rejected(sipError(req, err, detail));
  }

  private rejected(res: SipResponse): SipResponse {
    this.o.onOutcome?.('rejected', []);
    return res;
  }

  /** RFC 1123 date, recomputed once a second. */
  private httpDate(now: number): string {
    const sec = Math.floor(now / 1000);
    if (sec !== this.dateCache.second) this.dateCache = { second: sec, text: new Date(sec * 1000).toUTCString() };
    return this.dateCache.text;
  }
}

function samePath(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
