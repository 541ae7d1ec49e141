// The connector runtime: takes Connection Requests from the bus (wire.ts), opens the sealed credential with its own
// key (or its type's stay key), and holds one ProtocolLink (protocol.ts) per linked account: state reported on the
// bus at every change, incoming IMs published as message.incoming, outgoing ones sent and a delivery report back.
//
// Backoff (mautrix's rule): unreachable → retry after 1 s, 2 s, 4 s … capped at MAX_BACKOFF_MS, each with up to 20%
// jitter (a broker restart must not bring every link back in the same second); bad_credentials → no retry at all
// until a new Connection Request (the next login, or the user fixing the password); a link dropped by the remote
// while connected counts as unreachable. In-process by default (bridge/subsystem.ts); `switchboard connector --type
// xmpp` runs one on its own (cli.ts) with only the bus and the master key: it never reads the database.

import { randomBytes } from 'node:crypto';
import type { BusMessage, EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import type { LinkType } from '../storage/ports/bridge.ts';
import { deriveKey } from '../secrets.ts';
import type { IncomingIm, LinkState, ProtocolLink } from './protocol.ts';
import { MAX_IM_BODY } from './protocol.ts';
import type { ProtocolRegistry } from './registry.ts';
import { boxKeyPairFromSeed, generateBoxKeyPair, open, type BoxKeyPair } from './sealed-box.ts';
import type { ServerPolicy } from './server-policy.ts';
import { asConnectRequest, asOutgoing, HELLO_MS, OWNER_LOST, sessionBoxAad, stayBoxAad, stayKeyPurpose, TOPIC, type ConnectRequest, type Hello, type StateReport } from './wire.ts';

export const MIN_BACKOFF_MS = 1_000;
export const MAX_BACKOFF_MS = 60_000;

export interface ConnectorOptions {
  bus: EventBus;
  master: Buffer;
  types: LinkType[];
  protocols: ProtocolRegistry;
  /** Which servers may be reached (server-policy.ts): checked on the addresses resolved right before connecting. */
  policy: Pick<ServerPolicy, 'check'>;
  node: string;
  log: Logger;
  now?: () => number;
  /** Links one connector holds at most (each is a socket and a client library's state). */
  maxLinks?: number;
}

interface Held {
  req: ConnectRequest;
  link: ProtocolLink | null;
  state: LinkState['state'];
  failures: number;
  retry: NodeJS.Timeout | null;
  closed: boolean;
  /** Bumped on every (re)connect attempt: events of an older attempt's link are ignored. */
  attempt: number;
}

export class Connector {
  readonly id = randomBytes(12).toString('base64url');
  private readonly o: ConnectorOptions;
  private readonly keys: BoxKeyPair = generateBoxKeyPair();
  private readonly stayKeys = new Map<LinkType, BoxKeyPair>();
  private readonly links = new Map<string, Held>();
  private readonly unsubscribe: Array<() => void> = [];
  private hello: NodeJS.Timeout | null = null;

  constructor(o: ConnectorOptions) {
    this.o = o;
    for (const t of o.types) {
      if (!o.protocols.has(t)) throw new Error(`no protocol module for ${t}`);
      this.stayKeys.set(t, boxKeyPairFromSeed(deriveKey(o.master, stayKeyPurpose(t))));
    }
  }

  /** The hello this connector announces (what an app node seals to). */
  announcement(): Hello {
    return { connector: this.id, types: this.o.types, publicKey: this.keys.publicKey, stayKeys: Object.fromEntries([...this.stayKeys].map(([t, k]) => [t, k.publicKey])), node: this.o.node };
  }

  async start(): Promise<void> {
    const { bus } = this.o;
    const guard = (f: (m: BusMessage) => void | Promise<void>) => (m: BusMessage) => {
      void Promise.resolve()
        .then(() => f(m))
        .catch((err: unknown) => this.o.log.warn({ err }, 'connector request failed'));
    };
    this.unsubscribe.push(bus.subscribe(TOPIC.connect(this.id), guard((m) => this.onConnect(m.payload))));
    this.unsubscribe.push(bus.subscribe(TOPIC.disconnect(this.id), guard((m) => this.onDisconnect(m.payload))));
    this.unsubscribe.push(bus.subscribe(TOPIC.outgoing(this.id), guard((m) => this.onOutgoing(m.payload))));
    this.unsubscribe.push(bus.subscribe(TOPIC.nodeDeparted, guard((m) => this.onNodeDeparted(m.payload))));
    const announce = () => bus.publish(TOPIC.hello, { ...this.announcement() });
    // An app node that just started knows no connector until the next hello: answer its discover at once (at most
    // one extra hello a second, however many nodes start).
    let answered = 0;
    this.unsubscribe.push(
      bus.subscribe(TOPIC.discover, () => {
        const now = Date.now();
        if (now - answered < 1000) return;
        answered = now;
        announce();
      }),
    );
    await bus.subscribed();
    announce();
    this.hello = setInterval(announce, HELLO_MS);
    this.hello.unref();
    this.o.log.info({ connector: this.id, types: this.o.types }, 'connector started');
  }

  async stop(): Promise<void> {
    if (this.hello) clearInterval(this.hello);
    for (const u of this.unsubscribe.splice(0)) u();
    await Promise.all([...this.links.keys()].map((id) => this.drop(id, 'connector stopping')));
    this.o.bus.publish(TOPIC.bye, { connector: this.id });
  }

  /** Linked accounts held now (tests, metrics). */
  held(): string[] {
    return [...this.links.keys()];
  }

  private async onConnect(payload: Record<string, unknown>): Promise<void> {
    const req = asConnectRequest(payload);
    if (!req || !this.o.types.includes(req.type)) return void this.o.log.warn({ connector: this.id }, 'malformed or foreign connection request dropped');
    if (this.links.has(req.linkedAccountId)) await this.drop(req.linkedAccountId, 'replaced by a new connection request');
    if (this.links.size >= (this.o.maxLinks ?? 10_000)) return this.report(req, { state: 'unreachable', reason: 'connector full' });
    const held: Held = { req, link: null, state: 'connecting', failures: 0, retry: null, closed: false, attempt: 0 };
    this.links.set(req.linkedAccountId, held);
    await this.attempt(held);
  }

  private password(req: ConnectRequest): string | null {
    try {
      const keys = req.via === 'stay' ? this.stayKeys.get(req.type)! : this.keys;
      const aad = req.via === 'stay' ? stayBoxAad(req.type, req) : sessionBoxAad(this.id, req);
      const plain = open(keys, req.sealed, aad);
      const s = plain.toString('utf8');
      plain.fill(0);
      return s;
    } catch {
      return null;
    }
  }

  private async attempt(held: Held): Promise<void> {
    if (held.closed) return;
    const { req } = held;
    const password = this.password(req);
    if (password === null) {
      this.links.delete(req.linkedAccountId);
      this.report(req, { state: 'bad_credentials', reason: 'the sealed credential does not open here' });
      return;
    }
    const attempt = ++held.attempt;
    const current = () => held.attempt === attempt && !held.closed;
    // SSRF: the app node checked the server when it was linked, but DNS may say otherwise now; the link connects to
    // the address checked here, never to the name resolved again by the library.
    const allowed = await this.o.policy.check(req.server);
    if (!current()) return;
    if (!allowed.ok) {
      held.state = 'unreachable';
      this.report(req, { state: 'unreachable', reason: allowed.reason.slice(0, 200) });
      this.schedule(held);
      return;
    }
    const link = this.o.protocols.get(req.type)!(
      { server: req.server, address: allowed.addresses[0], username: req.username, password, options: req.options },
      {
        state: (s) => {
          if (!current()) return;
          held.state = s.state;
          this.report(req, s);
          if (s.state === 'connected') held.failures = 0;
          // Dropped by the remote after it was up: try again (with backoff); refused credentials: never by itself.
          else if (s.state === 'unreachable' || (s.state === 'disconnected' && !held.closed)) this.schedule(held);
        },
        message: (m) => {
          if (current()) this.incoming(req, m);
        },
      },
    );
    held.link = link;
    try {
      await link.connect();
    } catch {
      // The link reported bad_credentials or unreachable through its state (and the retry is scheduled there).
    }
  }

  private schedule(held: Held): void {
    if (held.closed || held.retry) return;
    const delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** held.failures) * (1 + Math.random() * 0.2);
    held.failures++;
    held.attempt++; // the old link's own 'disconnected' (from the close below) is not news
    const old = held.link;
    held.link = null;
    void old?.close('reconnecting').catch(() => undefined);
    held.retry = setTimeout(() => {
      held.retry = null;
      void this.attempt(held);
    }, delay);
    held.retry.unref();
  }

  private incoming(req: ConnectRequest, m: IncomingIm): void {
    if (Buffer.byteLength(m.body) > MAX_IM_BODY || m.from.length > 300) return;
    this.o.bus.publish(TOPIC.incoming, { connector: this.id, linkedAccountId: req.linkedAccountId, accountId: req.accountId, from: m.from, body: m.body, remoteId: m.remoteId ?? null });
  }

  private report(req: ConnectRequest, s: LinkState): void {
    const r: StateReport = { connector: this.id, linkedAccountId: req.linkedAccountId, accountId: req.accountId, state: s.state, reason: 'reason' in s ? s.reason : null, at: (this.o.now ?? Date.now)() };
    this.o.log.info({ connector: this.id, linked: req.linkedAccountId, state: s.state, reason: r.reason }, 'link state');
    this.o.bus.publish(TOPIC.state, { ...r });
  }

  private async onDisconnect(payload: Record<string, unknown>): Promise<void> {
    const id = payload.linkedAccountId;
    if (typeof id === 'string') await this.drop(id, typeof payload.reason === 'string' ? payload.reason.slice(0, 200) : 'disconnected');
  }

  /**
   * An app node is gone (its heartbeat lapsed, or it stopped): the links its sessions held up have nobody left to end
   * them when those sessions end, nor to reconnect them; they end now (another node holding a Secret of the account
   * takes them over on the `disconnected` report: links.ts). Stay-connected links have no owner and stay.
   */
  private async onNodeDeparted(payload: Record<string, unknown>): Promise<void> {
    const node = payload.node;
    if (typeof node !== 'string') return;
    const owned = [...this.links].filter(([, h]) => h.req.owner === node).map(([id]) => id);
    if (owned.length) this.o.log.info({ connector: this.id, node, links: owned.length }, 'app node departed: dropping the links its sessions held');
    await Promise.all(owned.map((id) => this.drop(id, OWNER_LOST)));
  }

  private async drop(id: string, reason: string): Promise<void> {
    const held = this.links.get(id);
    if (!held) return;
    this.links.delete(id);
    held.closed = true;
    if (held.retry) clearTimeout(held.retry);
    const link = held.link;
    held.link = null;
    if (link) await link.close(reason).catch(() => undefined);
    this.report(held.req, { state: 'disconnected', reason });
  }

  private async onOutgoing(payload: Record<string, unknown>): Promise<void> {
    const out = asOutgoing(payload, MAX_IM_BODY);
    if (!out) return;
    const held = this.links.get(out.linkedAccountId);
    const reply = (status: 'sent' | 'failed', reason: string | null) =>
      this.o.bus.publish(TOPIC.delivery, { id: out.id, linkedAccountId: out.linkedAccountId, accountId: out.accountId, status, reason });
    if (!held || held.req.accountId !== out.accountId || !held.link || held.state !== 'connected') return reply('failed', 'not connected');
    try {
      await held.link.send(out.to, out.body);
      reply('sent', null);
    } catch (err) {
      reply('failed', err instanceof Error ? err.message.slice(0, 200) : 'send failed');
    }
  }
}
