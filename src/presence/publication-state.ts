// The event state compositor's publications (RFC 3903; Kamailio's presence module's PUBLISH side): entity tags,
// refresh without body, modify and remove with SIP-If-Match, 412 for an entity tag we do not hold, one publication
// per device flow. The HTTP API publishes through here too. Publications expire on a wheel of one-second buckets;
// every change is durable before its 200 OK, replicated ones (another node's PUBLISH) are applied without writing.

import { Errors } from '../errors.ts';
import { isPromise } from '../maybe-promise.ts';
import type { RequestContext } from '../sip/endpoint.ts';
import { createResponse, H, sipError, type SipRequest, type SipResponse } from '../sip/message/index.ts';
import type { FlowRecord, PresenceWrite, PublicationRecord } from '../storage/ports.ts';
import { sameFlow } from './compose.ts';
import type { PresenceCompositor } from './composition.ts';
import { domainOf, type PresenceContext } from './context.ts';
import { isPackageType, parseEvent } from './event-packages.ts';
import { ExpiryWheel } from './expiry-wheel.ts';
import type { PresenceState } from './model.ts';
import { parsePidf, PidfError } from './pidf.ts';
import { newEntityTag, type PublicationTable } from './publications.ts';

export class PublicationState {
  private readonly ctx: PresenceContext;
  private readonly pubs: PublicationTable;
  private readonly compositor: PresenceCompositor;
  private readonly wheel: ExpiryWheel<PublicationRecord>;

  constructor(ctx: PresenceContext, pubs: PublicationTable, compositor: PresenceCompositor) {
    this.ctx = ctx;
    this.pubs = pubs;
    this.compositor = compositor;
    this.wheel = new ExpiryWheel<PublicationRecord>(ctx.now(), (p) => p.expiresAt, (p) => this.pubs.has(p));
  }

  get size(): number {
    return this.pubs.size;
  }

  /** Takes the stored publications at start; those expired while down are deleted (added to `gone`). */
  prime(records: PublicationRecord[], now: number, gone: PresenceWrite[]): void {
    for (const p of records) {
      if (p.expiresAt <= now) {
        gone.push({ op: 'delete-publication', etag: p.etag });
        continue;
      }
      p.flow.connectionId = null;
      this.pubs.add(p);
      this.wheel.add(p);
      this.compositor.followAtStart(p.aor);
    }
  }

  // ---- PUBLISH (RFC 3903 §6) ----

  handlePublish = async (req: SipRequest, rc: RequestContext): Promise<SipResponse> => {
    const ctx = this.ctx;
    const ev = parseEvent(req.get(H.event));
    if (!ev) return sipError(req, Errors.SIP_ERR_MISSING_HEADER, 'PUBLISH needs an Event header');
    const pkg = ctx.packages.get(ev.event);
    if (!pkg) return ctx.badEvent(req);
    const aor = ctx.presentityOf(req);
    if (typeof aor !== 'string') return aor;
    const expires = ctx.expiresOf(req);
    if (typeof expires !== 'number') return expires;
    const auth = await ctx.o.authenticator.authenticate(req, rc.source, domainOf(aor), 'presence');
    if (!auth.ok) return auth.response;
    if (!auth.identity.aors.includes(aor)) return sipError(req, Errors.AUTH_ERR_FORBIDDEN, 'only the presentity itself may publish its state');
    await this.compositor.follow(aor);

    const ifMatch = req.get(H.sipIfMatch)?.trim();
    const hasBody = req.body.length > 0;
    let state: PresenceState | null = null;
    if (hasBody) {
      if (!isPackageType(req.get(H.contentType), pkg)) {
        const res = sipError(req, Errors.PRES_ERR_MEDIA_TYPE);
        res.append('Accept', pkg.contentType);
        return res;
      }
      try {
        const parsed = parsePidf(req.body.toString('utf8'));
        state = { tuples: parsed.tuples, person: parsed.person, notes: parsed.notes };
      } catch (e) {
        if (e instanceof PidfError) return sipError(req, Errors.PRES_ERR_BODY, e.message);
        throw e;
      }
    }
    const flow = ctx.flowOf(rc.source);
    if (ifMatch === undefined) {
      if (!state) return sipError(req, Errors.PRES_ERR_BODY, 'an initial PUBLISH needs a body');
      const etag = newEntityTag();
      if (expires === 0) return this.published(req, etag, 0); // published and at once expired: nothing to keep
      const exists = ctx.o.presentityExists(aor);
      if (!(isPromise(exists) ? await exists : exists)) return sipError(req, Errors.PRES_ERR_NO_PRESENTITY, 'no such presentity');
      const now = ctx.now();
      const p: PublicationRecord = { etag, aor, event: pkg.name, state, flow, accountId: auth.identity.accountId, expiresAt: now + expires * 1000, createdAt: now, updatedAt: now };
      // One device, one publication: an initial PUBLISH over the flow of an earlier one replaces it (a device that
      // publishes afresh has lost its entity tag, or sent two at once, as baresip does at start). Its entity tag
      // is then unknown: a refresh with it gets 412 and the device publishes afresh (RFC 3903 §6).
      const writes: PresenceWrite[] = [];
      for (const q of this.pubs.of(aor)) {
        if (q.event !== pkg.name || !sameFlow(q.flow, flow)) continue;
        this.pubs.remove(q);
        writes.push({ op: 'delete-publication', etag: q.etag });
      }
      this.pubs.add(p);
      this.wheel.add(p);
      writes.push({ op: 'put-publication', publication: p });
      if (!(await ctx.persist(writes))) return ctx.storeFailed(req);
      ctx.o.bus.publish('presence.publication.created', publicationEvent(p, now));
      this.compositor.changed(aor, 'publication');
      return this.published(req, p.etag, expires);
    }

    const p = this.pubs.get(ifMatch);
    if (!p || p.aor !== aor || p.event !== pkg.name) return sipError(req, Errors.PRES_ERR_ETAG, 'unknown entity tag');
    const now = ctx.now();
    if (expires === 0) {
      this.pubs.remove(p);
      if (!(await ctx.persist([{ op: 'delete-publication', etag: p.etag }]))) return ctx.storeFailed(req);
      ctx.o.bus.publish('presence.publication.removed', publicationEvent(p, now));
      this.compositor.changed(aor, 'publication');
      return this.published(req, null, 0);
    }
    // Refresh (no body) or modify (a body): either way a new entity tag (RFC 3903 §6 step 7).
    const old = p.etag;
    this.pubs.retag(p, newEntityTag());
    p.expiresAt = now + expires * 1000;
    p.updatedAt = now;
    p.flow = flow;
    if (state) p.state = state;
    this.wheel.add(p);
    if (!(await ctx.persist([{ op: 'put-publication', publication: p, replaces: old }]))) return ctx.storeFailed(req);
    ctx.o.bus.publish(state ? 'presence.publication.modified' : 'presence.publication.refreshed', publicationEvent(p, now));
    if (state) this.compositor.changed(aor, 'publication');
    return this.published(req, p.etag, expires);
  };

  private published(req: SipRequest, etag: string | null, expires: number): SipResponse {
    const res = createResponse(req, 200);
    if (etag !== null) res.append('SIP-ETag', etag);
    res.append('Expires', String(expires));
    return res;
  }

  // ---- the HTTP API's publication: one per presentity, replaced on every call ----

  /** The state set over HTTP, if any. */
  private httpOf(aor: string): PublicationRecord | undefined {
    return this.pubs.of(aor).find((p) => p.flow.transport === 'HTTP');
  }

  /** Sets (or replaces) the presentity's HTTP publication, durably, and recomposes. */
  async putHttp(aor: string, build: (now: number) => PresenceState, expires: number, accountId: string | null): Promise<void> {
    const ctx = this.ctx;
    await this.compositor.follow(aor);
    const now = ctx.now();
    const state = build(now);
    const existing = this.httpOf(aor);
    if (existing) {
      const old = existing.etag;
      this.pubs.retag(existing, newEntityTag());
      Object.assign(existing, { state, expiresAt: now + expires * 1000, updatedAt: now, accountId });
      this.wheel.add(existing);
      await ctx.o.store.write([{ op: 'put-publication', publication: existing, replaces: old }]);
      ctx.o.bus.publish('presence.publication.modified', publicationEvent(existing, now));
    } else {
      const flow: FlowRecord = { transport: 'HTTP', address: '', port: 0, connectionId: null, node: ctx.o.node };
      const p: PublicationRecord = { etag: newEntityTag(), aor, event: 'presence', state, flow, accountId, expiresAt: now + expires * 1000, createdAt: now, updatedAt: now };
      this.pubs.add(p);
      this.wheel.add(p);
      await ctx.o.store.write([{ op: 'put-publication', publication: p }]);
      ctx.o.bus.publish('presence.publication.created', publicationEvent(p, now));
    }
    this.compositor.changed(aor, 'http');
  }

  /** Removes the state set over HTTP; false when there was none. */
  async removeHttp(aor: string): Promise<boolean> {
    const existing = this.httpOf(aor);
    if (!existing) return false;
    await this.compositor.refresh(aor);
    this.pubs.remove(existing);
    await this.ctx.o.store.write([{ op: 'delete-publication', etag: existing.etag }]);
    this.ctx.o.bus.publish('presence.publication.removed', publicationEvent(existing, this.ctx.now()));
    this.compositor.changed(aor, 'http');
    return true;
  }

  /** Every publication of the presentity goes (its account was removed). */
  async removeAll(aor: string): Promise<void> {
    const pubs = this.pubs.of(aor);
    for (const p of pubs) this.pubs.remove(p);
    if (pubs.length) await this.ctx.o.store.write(pubs.map((p) => ({ op: 'delete-publication' as const, etag: p.etag })));
  }

  /**
   * Publication changes made on another node (`presence.replicate` on the bus): applied to this node's table so
   * that its watchers are notified and PUBLISH refreshes with SIP-If-Match work wherever they arrive. Nothing is
   * written: the node that took the PUBLISH stored it.
   */
  async applyReplica(ops: PresenceWrite[]): Promise<void> {
    const aors = new Set<string>();
    for (const op of ops) {
      if (op.op === 'put-publication') {
        const p = op.publication;
        const prior = this.pubs.get(op.replaces ?? p.etag) ?? this.pubs.get(p.etag);
        if (prior) this.pubs.remove(prior);
        const copy: PublicationRecord = { ...p };
        this.pubs.add(copy);
        this.wheel.add(copy);
        aors.add(p.aor);
      } else if (op.op === 'delete-publication') {
        const prior = this.pubs.get(op.etag);
        if (prior) {
          this.pubs.remove(prior);
          aors.add(prior.aor);
        }
      }
    }
    for (const aor of aors) {
      await this.compositor.follow(aor);
      this.compositor.changed(aor, 'publication');
    }
  }

  /** Removes the publications that expired, durably in the background, and recomposes their presentities. */
  sweep(now: number): void {
    const aors = new Set<string>();
    const writes: PresenceWrite[] = [];
    for (const p of this.wheel.due(now)) {
      this.pubs.remove(p);
      writes.push({ op: 'delete-publication', etag: p.etag });
      aors.add(p.aor);
      this.ctx.o.bus.publish('presence.publication.expired', publicationEvent(p, now));
    }
    if (writes.length) this.ctx.persistInBackground(writes);
    for (const aor of aors) this.compositor.changed(aor, 'expiry');
  }
}

export function publicationEvent(p: PublicationRecord, now: number): Record<string, unknown> {
  return {
    aor: p.aor,
    event: p.event,
    origin: p.flow.transport === 'HTTP' ? 'http' : 'sip',
    expires: Math.max(0, Math.round((p.expiresAt - now) / 1000)),
    tuples: p.state.tuples.map((t) => ({ id: t.id, basic: t.basic })),
    activities: p.state.person?.activities ?? [],
  };
}
