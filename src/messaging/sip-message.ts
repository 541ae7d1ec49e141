// SIP MESSAGE (RFC 3428) to an address of record served here, Kamailio msilo's behaviour on the inbox:
//
// - the sender authenticates like a caller: 407 Proxy-Authenticate (identity/proxy-auth.ts), From must be one of its
//   addresses of record (403 otherwise);
// - RFC 3428 §8: over UDP a body above 1300 bytes gets 513 (no congestion control); over TCP, TLS and WS the
//   limit is --message-max-body;
// - delivery to the AOR's registered devices goes through MessageDelivery, the proxy's non-INVITE forking
//   (proxy/non-invite.ts: q groups, each device over its own flow, the first 2xx decides); to a GRUU (RFC 5627),
//   that one device only. 200 when one took it (2xx); otherwise (none registered, a 6xx, every branch failed or
//   timed out) the message is stored durably (the inbox, so the app sees it too) and answered 202 Accepted;
// - m_dump: when a device of an account with messages waiting registers (a new binding or a refresh), the waiting
//   messages go to that binding in order, each removed only after its 2xx. One dump at a time per account here.
// - an app's message (POST /v1/messages, stored first) goes at once to the recipient's registered devices the same
//   way as a SIP MESSAGE (forked; push-only devices woken, fork late), From the sender's AOR, and is removed from the
//   store on a 2xx; with no taker it stays for the recipient's app and the next REGISTER (deliverStored).
// - those two paths (and dumps on two nodes) never send one stored message at once: each attempt holds the message's
//   lease in the shared cache (delivery-lease.ts) and checks it is still undelivered; the other skips it.
//
// - rate (RFC 3261 §21.5.4, RFC 6357 §5): token buckets per source address (before the challenge) and per
//   authenticated sender, in the shared cache so they hold across nodes; beyond them 503 with Retry-After, which the
//   sending UA honours for that request (SIP has no 429; 486 would say the recipient is busy, 403 that it must not
//   retry) and which a stateful proxy upstream turns into 500 (§16.7 step 6) rather than taking this server for down.
//   The same answer SUBSCRIBE gets over its rate (presence). The per-account quota still caps what is stored.
//
// The stored client id is a hash of Call-ID and CSeq, so a UAC that retries after a lost 202 (a new transaction, same
// Call-ID and CSeq) stores it once. CPIM and IMDN bodies pass through untouched.

import { createHash, randomBytes } from 'node:crypto';
import type { EventBus } from '../bus/event-bus.ts';
import { Errors, isSwitchboardError } from '../errors.ts';
import { authenticateAsProxy } from '../identity/proxy-auth.ts';
import type { SipAuthenticator } from '../identity/sip-authenticator.ts';
import type { Logger } from '../log.ts';
import type { RequestContext } from '../sip/endpoint.ts';
import { H } from '../sip/message/header-names.ts';
import { SipRequest, type SipResponse } from '../sip/message/message.ts';
import { createResponse, newTag, sipError } from '../sip/message/response.ts';
import { aorOf, isSipUri, type SipUri } from '../sip/message/uri.ts';
import type { AccountStore, BindingRecord } from '../storage/ports.ts';
import type { StoredMessage } from '../storage/ports/messaging.ts';
import type { Inbox } from './inbox.ts';
import type { DeliveryLeases } from './delivery-lease.ts';
import type { RateLimiter } from '../identity/rate-limiter.ts';

/** RFC 3428 §8: the largest MESSAGE body sent where the path may lack congestion control. */
export const UDP_MESSAGE_LIMIT = 1300;
/** Accounts remembered as having messages waiting (beyond it, their devices get them on the next message). */
const MAX_WAITING = 1_000_000;
/** Stored messages sent to a newly registered device in one dump (the rest wait for the next). */
const DUMP_BATCH = 50;

/** Who a MESSAGE is for: the AOR, narrowed to one device by a GRUU (RFC 5627; registrar/gruu.ts). */
export interface MessageTarget {
  aor: string;
  instance?: string | null;
  callIdHash?: string;
}

/**
 * The proxy's non-INVITE forking (proxy/non-invite.ts), as messaging uses it: the request built per binding, sent to
 * the target's devices by q over their flows; 'delivered' when one answered 2xx.
 */
export type RequestFork = (target: MessageTarget, build: (b: BindingRecord) => SipRequest) => Promise<{ outcome: 'delivered' | 'unavailable' }>;

/** Delivery to an AOR's registered devices (the proxy's non-INVITE forking). */
export interface MessageDelivery {
  /** 'delivered' when a device answered 2xx; 'unavailable' when none is registered or none took it. */
  deliver(target: MessageTarget, m: OutgoingMessage): Promise<'delivered' | 'unavailable'>;
  /** Whether the AOR has a binding now: an app's message takes its lease only when there is a device to try. */
  registered(aor: string): Promise<boolean>;
}

/** MessageDelivery over the proxy's forking (one MESSAGE per binding, buildMessage) and the location service. */
export function forkDelivery(fork: RequestFork, registered: (aor: string) => Promise<boolean>): MessageDelivery {
  return { deliver: async (target, m) => (await fork(target, (b) => buildMessage(b, m))).outcome, registered };
}

export interface OutgoingMessage {
  /** The sender's From value (name-addr with our tag). */
  from: string;
  contentType: string;
  body: Buffer;
  /**
   * The Call-ID, when it must name the message: a stored one goes as `<inbox id>@inbox` (deliverStored, the dump on
   * REGISTER), so a device that also reads the inbox (the web phone) knows the two copies for one message. Else fresh.
   */
  callId?: string;
  /** Extra headers carried through (e.g. Date of the stored message). */
  headers?: Array<[string, string]>;
}

interface Sending {
  relay: { send(req: SipRequest, flow: { node: string; transport: string; address: string; port: number; connectionId: number | null }): Promise<SipResponse> };
}

/** The MESSAGE to one binding: Request-URI its contact, Route its Path, To the AOR, a fresh dialog-less Call-ID. */
export function buildMessage(b: BindingRecord, m: OutgoingMessage): SipRequest {
  const req = new SipRequest('MESSAGE', b.contact);
  const hs = req.headers;
  for (const route of b.path) hs.push({ key: H.route, name: 'Route', value: route });
  hs.push({ key: H.from, name: 'From', value: m.from });
  hs.push({ key: H.to, name: 'To', value: `<sip:${b.aor}>` });
  hs.push({ key: H.callId, name: 'Call-ID', value: m.callId ?? `${randomBytes(12).toString('hex')}@message` });
  hs.push({ key: H.cseq, name: 'CSeq', value: '1 MESSAGE' });
  hs.push({ key: H.contentType, name: 'Content-Type', value: m.contentType });
  for (const [name, value] of m.headers ?? []) hs.push({ key: name.toLowerCase(), name, value });
  req.body = m.body;
  return req;
}

function flowOf(b: BindingRecord) {
  return { node: b.node, transport: b.transport, address: b.sourceAddress, port: b.sourcePort, connectionId: b.connectionId };
}

/** Sends to one binding; true on a 2xx. */
async function sendTo(s: Sending, b: BindingRecord, m: OutgoingMessage, log: Logger): Promise<boolean> {
  try {
    const res = await s.relay.send(buildMessage(b, m), flowOf(b));
    return res.status >= 200 && res.status < 300;
  } catch (err) {
    log.debug({ err: (err as Error).message, aor: b.aor, transport: b.transport }, 'MESSAGE to a binding failed');
    return false;
  }
}

export interface SipMessageOptions {
  inbox: Inbox;
  /** One delivery attempt of a stored message at a time, across nodes (the shared cache). */
  leases: DeliveryLeases;
  delivery: MessageDelivery;
  sending: Sending;
  /** RFC 5627: resolves a Request-URI with `gr` (registrar/gruu.ts). */
  gruus: { resolve(u: SipUri): MessageTarget | 'forged' | null };
  authenticator: Pick<SipAuthenticator, 'authenticate'>;
  accounts: Pick<AccountStore, 'findByName' | 'findById'>;
  realms: string[];
  maxBody: number;
  bus: EventBus;
  log: Logger;
  /** Token buckets (identity/rate-limiter.ts): per authenticated sender, per source address; absent: no limit. */
  limits?: { sender: RateLimiter | null; source: RateLimiter | null };
}

export class SipMessages {
  private readonly o: SipMessageOptions;
  private readonly realms: Set<string>;
  /** Accounts with a dump running here (one at a time each). */
  private readonly dumping = new Set<string>();
  /**
   * Accounts with messages waiting (primed from the store, then from message.stored on the bus): a REGISTER of any
   * other account costs nothing here, so the REGISTER path does not read the message store.
   */
  private readonly waiting = new Set<string>();
  private unsubscribe: (() => void) | null = null;

  constructor(o: SipMessageOptions) {
    this.o = o;
    this.realms = new Set(o.realms);
  }

  /** Follows message.stored from every node, then primes the set from the store (no store read on a REGISTER). */
  async start(): Promise<void> {
    this.unsubscribe = this.o.bus.subscribe('message.stored', (m) => {
      if (typeof m.payload.accountId === 'string' && this.waiting.size < MAX_WAITING) this.waiting.add(m.payload.accountId);
    });
    await this.o.bus.subscribed();
    for (const id of await this.o.inbox.accountsWaiting(MAX_WAITING)) this.waiting.add(id);
  }

  stop(): void {
    this.unsubscribe?.();
  }

  handle = async (req: SipRequest, ctx: RequestContext): Promise<SipResponse> => {
    const ruri = req.requestUri();
    if (!ruri || !isSipUri(ruri) || ruri.user === null) return sipError(req, Errors.MSG_ERR_RECIPIENT);
    const domain = ruri.host.toLowerCase();
    if (!this.realms.has(domain)) return sipError(req, Errors.MSG_ERR_RECIPIENT, 'domain not served here');
    const from = req.from();
    if (!from || !isSipUri(from.uri) || from.uri.user === null) return sipError(req, Errors.PROXY_ERR_FROM_NOT_OWNED, 'From must be a SIP address of record');
    const sender = aorOf(from.uri);
    const contentType = req.get(H.contentType);
    if (!contentType || req.body.length === 0) return sipError(req, Errors.MSG_ERR_BODY, 'MESSAGE needs a body and its Content-Type');
    const limit = ctx.source.transport === 'UDP' ? Math.min(UDP_MESSAGE_LIMIT, this.o.maxBody) : this.o.maxBody;
    if (req.body.length > limit) return sipError(req, Errors.MSG_ERR_TOO_LARGE, `at most ${limit} bytes over ${ctx.source.transport}`);

    const bySource = await this.o.limits?.source?.take(ctx.source.address);
    if (bySource && !bySource.ok) return this.throttled(req, bySource.retryAfter, 'from this address');
    const senderDomain = from.uri.host.toLowerCase();
    const auth = await authenticateAsProxy(this.o.authenticator, req, ctx.source, this.realms.has(senderDomain) ? senderDomain : domain, 'sip.register');
    if (!auth.ok) return auth.response;
    if (!auth.identity.aors.includes(sender)) return sipError(req, Errors.PROXY_ERR_FROM_NOT_OWNED, 'From is not the authenticated identity');
    const bySender = await this.o.limits?.sender?.take(sender);
    if (bySender && !bySender.ok) return this.throttled(req, bySender.retryAfter, 'from this sender');

    // A GRUU (RFC 5627) names one device: delivered to it or refused, never stored for the others to get.
    const gruu = ruri.params.has('gr') ? this.o.gruus.resolve(ruri) : null;
    if (gruu === 'forged') return sipError(req, Errors.GRUU_ERR_UNKNOWN);
    const aor = gruu ? gruu.aor : aorOf(ruri);
    const at = aor.lastIndexOf('@');
    const account = await this.o.accounts.findByName(aor.slice(0, at), aor.slice(at + 1));
    if (!account || account.disabled) return sipError(req, Errors.MSG_ERR_RECIPIENT);

    const out: OutgoingMessage = { from: `<sip:${sender}>;tag=${newTag()}`, contentType, body: req.body };
    const target: MessageTarget = gruu ? { aor: account.aor, instance: gruu.instance, callIdHash: gruu.callIdHash } : { aor: account.aor };
    if ((await this.o.delivery.deliver(target, out)) === 'delivered') return createResponse(req, 200, 'OK');
    if (gruu) return sipError(req, Errors.GRUU_ERR_UNAVAILABLE);
    try {
      const clientId = createHash('sha256').update(`${req.callId()} ${req.cseq()!.seq}`).digest('hex');
      await this.o.inbox.send({ accountId: account.id, sender: `sip:${sender}`, contentType, body: req.body, clientId, via: 'sip' });
    } catch (e) {
      if (isSwitchboardError(e) && e.sip) return sipError(req, { code: e.code, sip: e.sip }, e.code === 'MSG_ERR_QUOTA' ? 'mailbox full' : e.message);
      throw e;
    }
    return createResponse(req, 202, 'Accepted');
  };

  private throttled(req: SipRequest, retryAfter: number, what: string): SipResponse {
    const res = sipError(req, Errors.MSG_ERR_RATE, `too many messages ${what}`);
    res.append('Retry-After', String(retryAfter));
    return res;
  }

  /** After a REGISTER here: a new binding (or a refresh while messages wait) gets what is stored for its account. */
  bindingsChanged(changes: ReadonlyArray<{ event: string; binding: BindingRecord }>): void {
    for (const c of changes) {
      const b = c.binding;
      if (!b.accountId) continue;
      // After this turn: the REGISTER's 200 OK leaves before the first stored MESSAGE does.
      if ((c.event === 'added' || c.event === 'refreshed') && this.waiting.has(b.accountId)) setImmediate(() => void this.dump(b.accountId!, b));
    }
  }

  /** msilo's m_dump: the waiting messages to one binding, in order, each acked after its 2xx; stops at a failure. */
  async dump(accountId: string, b: BindingRecord): Promise<number> {
    if (this.dumping.has(accountId)) return 0;
    this.dumping.add(accountId);
    let sent = 0;
    try {
      const pending = await this.o.inbox.pending(accountId, null, DUMP_BATCH);
      if (pending.length === 0) this.waiting.delete(accountId);
      for (const m of pending) {
        // Leased: on its way by deliverStored or another node's dump; it stays stored if that attempt fails.
        const r = await this.o.leases.hold(m.id, async () => {
          if (!(await this.stillWaiting(m))) return 'gone';
          if (!(await sendTo(this.o.sending, b, this.outgoing(m), this.o.log))) return 'failed';
          await this.o.inbox.ack(accountId, m.id, 'sip');
          return 'sent';
        });
        if (r === 'failed') break;
        if (r === 'sent') sent++;
      }
      // One skipped (leased, or acked elsewhere) keeps the account waiting: the next REGISTER reads the store again.
      if (sent === pending.length && pending.length < DUMP_BATCH) this.waiting.delete(accountId);
    } catch (err) {
      this.o.log.warn({ err, account: accountId }, 'stored message delivery failed');
    } finally {
      this.dumping.delete(accountId);
    }
    return sent;
  }

  /**
   * A message an app stored for an account (any device of it): forked to the account's registered devices now, and
   * acked (removed, receipt to the sender) when one answers 2xx. False when none took it (it stays stored). Messages
   * for one phone device (deviceId) are that device's app's.
   */
  async deliverStored(m: StoredMessage): Promise<boolean> {
    if (m.deviceId !== null) return false;
    try {
      const account = await this.o.accounts.findById(m.accountId);
      if (!account || account.disabled) return false;
      // No device, no lease: a lease taken for nothing and orphaned by a node dying right after its 200 kept the
      // message from the next REGISTER's dump on another node for the lease's minute (two-node test, loaded CI).
      if (!(await this.o.delivery.registered(account.aor))) return false;
      const r = await this.o.leases.hold(m.id, async () => {
        if (!(await this.stillWaiting(m))) return false;
        if ((await this.o.delivery.deliver({ aor: account.aor }, this.outgoing(m))) !== 'delivered') return false;
        await this.o.inbox.ack(m.accountId, m.id, 'sip');
        return true;
      });
      return r === true;
    } catch (err) {
      this.o.log.warn({ err, account: m.accountId }, 'app message delivery to SIP devices failed; it stays stored');
      return false;
    }
  }

  /** Still stored and unacked, read under the lease: the other path may have delivered it since `m` was read. */
  private async stillWaiting(m: StoredMessage): Promise<boolean> {
    const s = await this.o.inbox.status(m.sender, m.id);
    return s !== null && s.deliveredAt === null;
  }

  private outgoing(m: StoredMessage): OutgoingMessage {
    return { from: `<${m.sender}>;tag=${newTag()}`, callId: `${m.id}@inbox`, contentType: m.contentType, body: m.body, headers: [['Date', new Date(m.createdAt).toUTCString()]] };
  }
}
