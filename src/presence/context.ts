// What the presence parts share (notifier.ts, publication-state.ts, composition.ts, http-api.ts): the options the
// facade was built with, the event packages, and the checks every SUBSCRIBE and PUBLISH makes before its own
// logic (the presentity from the Request-URI, Expires within bounds, our Contact, the store writes).

import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import { Errors } from '../errors.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { Logger } from '../log.ts';
import type { MaybePromise } from '../maybe-promise.ts';
import { parseDeltaSeconds } from '../registrar/contact.ts';
import { aorOf, H, isSipUri, SipResponse, sipError, type SipRequest } from '../sip/message/index.ts';
import type { TransactionOutcome } from '../sip/endpoint.ts';
import type { Destination, Source, TransportName } from '../sip/transport/types.ts';
import { intervalTooBrief, ownContact, servedRequestUri } from '../sip/uas-checks.ts';
import type { BindingRecord, FlowRecord, PresenceStore, PresenceWrite } from '../storage/ports.ts';
import { EventPackages } from './event-packages.ts';

/** What the service needs of the SIP endpoint. */
export interface NotifySender {
  request(req: SipRequest, dest: Destination): Promise<SipResponse>;
  /** A request as wire text (SipEndpoint.requestWire); without it NOTIFYs go as message objects through `request`. */
  requestWire?(method: string, startLine: string, headers: string, body: Buffer | null, dest: Destination, outcome: TransactionOutcome): void;
  localAddress(transport: TransportName): { host: string; port: number } | null;
}

export interface PresenceServiceOptions {
  endpoint: NotifySender;
  authenticator: Pick<SipAuthenticator, 'authenticate'>;
  /** Bindings by AOR: synchronous from the in-process index, a promise from a shared one (`shared`). */
  location: { lookup(aor: string): MaybePromise<BindingRecord[]>; readonly shared?: boolean };
  store: PresenceStore;
  bus: EventBus;
  /** Whether a presentity (an account's AOR) exists and is enabled. */
  presentityExists: (aor: string) => MaybePromise<boolean>;
  rules: Pick<Config['presence'], 'defaultExpires' | 'minExpires' | 'maxExpires'>;
  /** Served domains, lower-case. */
  realms: string[];
  isLocalHost: (host: string) => boolean;
  node: string;
  log: Logger;
  now?: () => number;
  /** Sweep expired subscriptions and publications once a second (default); tests turn it off and call sweep(). */
  sweepTimer?: boolean;
  /** A subscription rides on this flow until `until` (epoch ms): keep a TCP connection open that long. */
  keepFlow?: (flow: FlowRecord, until: number) => void;
  /**
   * Sends NOTIFYs over their subscription's flow, through the node holding its connection when that is another
   * node (sip/flow-relay.ts). Without it NOTIFYs go out here, and another node's connection is not used.
   */
  relay?: { send(req: SipRequest, flow: FlowRecord): Promise<SipResponse>; isRemote(flow: FlowRecord): boolean };
  /** Derived tuples carry their binding's contact (the device's address): off unless the operator says so. */
  derivedContacts?: boolean;
  /**
   * SUBSCRIBEs per authenticated watcher (a token bucket keyed by its account): beyond it 503 with Retry-After.
   * Without it, unlimited.
   */
  subscribeLimiter?: { take(key: string): MaybePromise<{ ok: true } | { ok: false; retryAfter: number }> };
}

export class PresenceContext {
  readonly o: PresenceServiceOptions;
  readonly packages = new EventPackages();
  readonly realms: Set<string>;
  readonly now: () => number;
  readonly log: Logger;
  private readonly contactByTransport = new Map<string, string>();

  constructor(o: PresenceServiceOptions) {
    this.o = o;
    this.realms = new Set(o.realms);
    this.now = o.now ?? Date.now;
    this.log = o.log;
  }

  /** The presentity a SUBSCRIBE or PUBLISH is for: the Request-URI's AOR, or To's when addressed to this server. */
  presentityOf(req: SipRequest): string | SipResponse {
    const ruri = servedRequestUri(req, this.realms, this.o.isLocalHost);
    if (ruri instanceof SipResponse) return ruri;
    let uri = ruri;
    if (!this.realms.has(ruri.host.toLowerCase())) {
      // Addressed to this server itself: the presentity is the To URI.
      const to = req.to()!.uri;
      if (!isSipUri(to)) return sipError(req, Errors.PRES_ERR_NO_PRESENTITY, 'presentity must be a SIP URI');
      uri = to;
    }
    if (!this.realms.has(uri.host.toLowerCase()) || uri.user === null) return sipError(req, Errors.PRES_ERR_NO_PRESENTITY, 'no such presentity');
    return aorOf(uri);
  }

  defaultExpires(): number {
    return Math.min(this.o.rules.maxExpires, Math.max(this.o.rules.minExpires, this.o.rules.defaultExpires));
  }

  /** The lifetime asked for: absent → default; below the minimum → 423 (0 excepted); above the maximum → lowered. */
  expiresOf(req: SipRequest): number | SipResponse {
    const raw = req.get(H.expires);
    let e: number;
    if (raw === undefined) e = this.defaultExpires();
    else {
      const v = parseDeltaSeconds(raw);
      if (v === null) return sipError(req, Errors.SIP_ERR_HEADER_SYNTAX, 'malformed Expires');
      e = v;
    }
    if (e !== 0 && e < this.o.rules.minExpires) return intervalTooBrief(req, this.o.rules.minExpires);
    return Math.min(e, this.o.rules.maxExpires);
  }

  flowOf(source: Source): FlowRecord {
    return { transport: source.transport, address: source.address, port: source.port, connectionId: source.connectionId, node: this.o.node };
  }

  /** Our Contact for dialogs over `transport`. */
  contact(transport: TransportName): string {
    let c = this.contactByTransport.get(transport);
    if (c === undefined) {
      c = ownContact(transport, this.o.endpoint.localAddress(transport));
      this.contactByTransport.set(transport, c);
    }
    return c;
  }

  badEvent(req: SipRequest): SipResponse {
    const res = sipError(req, Errors.PRES_ERR_BAD_EVENT);
    res.append('Allow-Events', this.packages.allowEvents);
    return res;
  }

  storeFailed(req: SipRequest): SipResponse {
    return sipError(req, Errors.STORE_ERR_WRITE, 'could not store the change');
  }

  /** Writes and waits; false (logged) when the store failed. */
  persist(writes: PresenceWrite[]): Promise<boolean> {
    return this.o.store.write(writes).then(
      () => true,
      (err: unknown) => {
        this.notStored(err);
        return false;
      },
    );
  }

  /**
   * Writes, then answers with `stored()`, or with the 500 (logged) when the store failed: the store's own promise
   * and one reaction, where persist's boolean and an await after it made a second promise and microtask hop (a
   * new SUBSCRIBE's, on the set-up path).
   */
  persistThen<T>(writes: PresenceWrite[], req: SipRequest, stored: () => T): Promise<T | SipResponse> {
    return this.o.store.write(writes).then(stored, (err: unknown) => {
      this.notStored(err);
      return this.storeFailed(req);
    });
  }

  persistInBackground(writes: PresenceWrite[]): void {
    this.o.store.write(writes).catch(this.notStored);
  }

  private readonly notStored = (err: unknown): void => {
    this.log.error({ err }, 'presence change not stored');
  };
}

export function domainOf(aor: string): string {
  return aor.slice(aor.lastIndexOf('@') + 1);
}

/** user@Domain → user@domain (users compare case-sensitively, hosts not). */
export function normalizeAor(aor: string): string {
  const at = aor.lastIndexOf('@');
  return at < 0 ? aor : aor.slice(0, at + 1) + aor.slice(at + 1).toLowerCase();
}
