// The app nodes' side of the bridge: linked accounts (their passwords encrypted under the vault's Secret,
// AES-256-GCM, AAD = account id + linked-account id), Connection Requests to the connectors, the live state, and
// IMs both ways. Connectors are found by their hellos (connector-directory.ts); the database says which connector
// holds which link (a compare-and-set, so several app nodes acting on the same event do it once).
//
// Lifetimes: a link is connected when a session with the Secret starts (this node holds the Secret: keyring.ts),
// stays while the account has a live session anywhere, and is disconnected when the last one ends — unless the user
// opted into "stay connected": then a copy of the credential sealed to the connectors' stay key (derived from the
// master key) is kept, and any node hands it to a live connector whenever the link has none (connector restarts,
// logout). A connector silent for CONNECTOR_DEAD_MS loses its links: stay-connected ones go to another connector,
// the others say `disconnected: connector lost` until the next login.

import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import type { BusMessage, EventBus } from '../bus/event-bus.ts';
import { sbError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Inbox } from '../messaging/inbox.ts';
import type { AppSession } from '../messaging/sessions.ts';
import { deriveKey } from '../secrets.ts';
import type { LinkedAccountRecord, LinkedAccountStore, LinkStateName, LinkType, VaultStore } from '../storage/ports/bridge.ts';
import { ConnectorDirectory } from './connector-directory.ts';
import { Keyring } from './keyring.ts';
import { MAX_IM_BODY } from './protocol.ts';
import { boxKeyPairFromSeed, seal } from './sealed-box.ts';
import type { ServerPolicy } from './server-policy.ts';
import { asDelivery, asHello, asIncoming, asStateReport, HELLO_MS, OWNER_LOST, sessionBoxAad, stayBoxAad, stayKeyPurpose, TOPIC, type ConnectRequest, type StateReport } from './wire.ts';

export interface LinkInput {
  type: LinkType;
  server: string;
  username: string;
  password: string;
  options: Record<string, string | number | boolean>;
  stayConnected?: boolean;
}

/** What GET /v1/linked-accounts shows: never a secret. */
export interface LinkView {
  id: string;
  type: LinkType;
  server: string;
  username: string;
  options: Record<string, string | number | boolean>;
  stayConnected: boolean;
  state: LinkStateName;
  reason: string | null;
  updatedAt: number;
}

/** Frames for the app's stream (messaging/stream.ts sends them as they are). */
export type BridgeFrame =
  | { type: 'link-state'; linkedAccount: string; state: LinkStateName; reason: string | null }
  | { type: 'delivery'; id: string; linkedAccount: string; status: 'sent' | 'failed'; reason: string | null };

export interface BridgeOptions {
  store: VaultStore & LinkedAccountStore;
  sessions: { keyOf(kid: string): Promise<Buffer | null>; anyLive(accountId: string): Promise<boolean> };
  inbox: Pick<Inbox, 'send'>;
  bus: EventBus;
  master: Buffer;
  /** This app node's name (as node membership knows it): the owner of the links its sessions connect. */
  node: string;
  /** Where the group queues of this deployment are named on an AMQP bus (`switchboard.<tag>`, the Kazoo directory's
   *  tag): inside the broker permissions of README "Broker permissions", and apart from another deployment's. */
  groupPrefix: string;
  /** Linked accounts per account. */
  maxLinked: number;
  /** Which servers a linked account may name (SSRF: server-policy.ts); checked again by the connector. */
  policy: Pick<ServerPolicy, 'check'>;
  /** The link types this deployment serves: a protocol module exists and a connector runs it (subsystem.ts). */
  servedTypes: () => ReadonlySet<LinkType>;
  now: () => number;
  log: Logger;
}

/** A bridged message's sender in the inbox: which linked account, and the remote address (stream.ts splits it). */
export const imSender = (linkedAccountId: string, from: string) => `im:${linkedAccountId}/${from}`;

export class Bridge {
  readonly keyring = new Keyring();
  readonly connectors: ConnectorDirectory;
  private readonly o: BridgeOptions;
  private readonly listeners = new Map<string, Set<(f: BridgeFrame) => void>>();
  private readonly unsubscribe: Array<() => void> = [];
  private tick: NodeJS.Timeout | null = null;
  private ticking = false;
  /** Per linked account: the state report being recorded (recordState). */
  private readonly recording = new Map<string, Promise<void>>();

  constructor(o: BridgeOptions) {
    this.o = o;
    this.connectors = new ConnectorDirectory(o.now);
  }

  async start(): Promise<void> {
    const { bus, log } = this.o;
    const safe = (what: string, f: (m: BusMessage) => Promise<void> | void) => (m: BusMessage) =>
      Promise.resolve()
        .then(() => f(m))
        .catch((err: unknown) => log.warn({ err }, `bridge: ${what} failed`));
    this.unsubscribe.push(
      bus.subscribe(TOPIC.hello, safe('hello', (m) => {
        const h = asHello(m.payload);
        if (h && this.connectors.heard(h)) void this.sweep();
      })),
      bus.subscribe(TOPIC.bye, safe('bye', (m) => {
        if (typeof m.payload.connector !== 'string') return;
        this.connectors.left(m.payload.connector);
        void this.sweep();
      })),
      // One node records each state, then announces it recorded; every node forwards that to the sockets it holds
      // (an app that saw a link-state frame and asks GET /v1/linked-accounts gets the same state).
      bus.subscribe(TOPIC.stateRecorded, safe('state', (m) => this.forwardState(m.payload))),

      bus.subscribe(TOPIC.delivery, safe('delivery', (m) => {
        const d = asDelivery(m.payload);
        if (d) this.emit(d.accountId, { type: 'delivery', id: d.id, linkedAccount: d.linkedAccountId, status: d.status, reason: d.reason });
      })),
      // Group subscriptions (one node acts on each message); leaving them leaves the group to the other nodes.
      bus.subscribe(TOPIC.state, safe('state record', (m) => this.recordState(m.payload)), { group: `${this.o.groupPrefix}.bridge-state` }),
      bus.subscribe(TOPIC.incoming, safe('incoming', (m) => this.incoming(m.payload)), { group: `${this.o.groupPrefix}.bridge-incoming` }),
    );
    await bus.subscribed();
    bus.publish(TOPIC.discover, { node: this.o.node }); // the connectors say hello now, not within HELLO_MS
    this.tick = setInterval(() => void this.sweep(), HELLO_MS);
    this.tick.unref();
  }

  stop(): void {
    if (this.tick) clearInterval(this.tick);
    for (const u of this.unsubscribe.splice(0)) u();
    this.keyring.clear();
  }

  /** Stream frames for the account; returns the unsubscribe. */
  listen(accountId: string, f: (frame: BridgeFrame) => void): () => void {
    let set = this.listeners.get(accountId);
    if (!set) this.listeners.set(accountId, (set = new Set()));
    set.add(f);
    return () => {
      set.delete(f);
      if (set.size === 0) this.listeners.delete(accountId);
    };
  }

  private emit(accountId: string, f: BridgeFrame): void {
    for (const l of this.listeners.get(accountId) ?? []) l(f);
  }

  // Sessions -------------------------------------------------------------------------------------------------------

  /** A session started with the Secret (the keyring owns it now): its account's links connect. */
  async sessionOpened(s: AppSession, secret: Buffer): Promise<void> {
    this.keyring.hold(s.kid, s.accountId, secret, s.expiresAt);
    await this.connectAccount(s.accountId);
  }

  /** A session rolled over: the new one holds the Secret too. */
  sessionRolled(fromKid: string, to: AppSession): void {
    this.keyring.copy(fromKid, to.kid, to.expiresAt);
  }

  /** A session (kid) or all the account's (null) ended: Secrets zeroed; links dropped when none is left anywhere. */
  async sessionEnded(accountId: string, kid: string | null): Promise<void> {
    if (kid === null) this.keyring.dropAccount(accountId);
    else this.keyring.drop(kid);
    if (!(await this.o.sessions.anyLive(accountId))) await this.disconnectAccount(accountId, 'logged out');
  }

  /** The Secret of this session, or 409 (started elsewhere, or without the password). */
  private secretOf(s: AppSession): Buffer {
    const h = this.keyring.get(s.kid);
    if (!h || h.expiresAt <= this.o.now()) throw sbError('BRIDGE_ERR_VAULT_LOCKED');
    return h.secret;
  }

  // Linked accounts ------------------------------------------------------------------------------------------------

  async link(s: AppSession, input: LinkInput): Promise<LinkView> {
    const secret = this.secretOf(s);
    const served = this.o.servedTypes();
    if (!served.has(input.type)) throw sbError('BRIDGE_ERR_TYPE_NOT_SERVED', `no connector serves ${input.type} here; served: ${[...served].join(', ') || 'none'}`);
    const allowed = await this.o.policy.check(input.server);
    if (!allowed.ok) throw sbError('BRIDGE_ERR_SERVER_NOT_ALLOWED', allowed.reason);
    const id = randomUUID();
    const now = this.o.now();
    const ciphertext = encryptLinked(secret, s.accountId, id, input.password);
    const staySealed = input.stayConnected ? seal(this.stayKey(input.type), Buffer.from(input.password), stayBoxAad(input.type, { accountId: s.accountId, linkedAccountId: id })) : null;
    const ok = await this.o.store.createLinked(
      { id, accountId: s.accountId, type: input.type, server: input.server, username: input.username, options: JSON.stringify(input.options), ciphertext, staySealed, createdAt: now },
      this.o.maxLinked,
    );
    if (!ok) throw sbError('BRIDGE_ERR_LINKED_LIMIT', `at most ${this.o.maxLinked} linked accounts`);
    const rec = (await this.o.store.getLinked(id))!;
    await this.connectOne(rec, secret);
    return view((await this.o.store.getLinked(id)) ?? rec);
  }

  async list(accountId: string): Promise<LinkView[]> {
    return (await this.o.store.listLinked(accountId)).map(view);
  }

  async unlink(accountId: string, id: string): Promise<void> {
    const rec = await this.o.store.getLinked(id);
    if (!rec || rec.accountId !== accountId) throw sbError('BRIDGE_ERR_LINKED_NOT_FOUND');
    if (rec.connector) this.o.bus.publish(TOPIC.disconnect(rec.connector), { linkedAccountId: id, reason: 'unlinked' });
    if (!(await this.o.store.deleteLinked(accountId, id))) throw sbError('BRIDGE_ERR_LINKED_NOT_FOUND');
  }

  /** POST /v1/messages naming a linked account: to the connector holding it; the delivery report comes as a frame. */
  async send(s: AppSession, linkedAccountId: string, to: string, body: Buffer): Promise<{ id: string; status: 'queued'; delivered: false }> {
    const rec = await this.o.store.getLinked(linkedAccountId);
    if (!rec || rec.accountId !== s.accountId) throw sbError('BRIDGE_ERR_LINKED_NOT_FOUND');
    if (body.length > MAX_IM_BODY) throw sbError('MSG_ERR_TOO_LARGE', `an IM body is at most ${MAX_IM_BODY} bytes`);
    const text = body.toString('utf8');
    if (!rec.connector || !this.connectors.alive(rec.connector) || rec.state !== 'connected') throw sbError('BRIDGE_ERR_NOT_CONNECTED', `the linked account is ${rec.state}`);
    const id = randomUUID();
    this.o.bus.publish(TOPIC.outgoing(rec.connector), { id, linkedAccountId: rec.id, accountId: s.accountId, to, body: text });
    return { id, status: 'queued', delivered: false };
  }

  // Connections ----------------------------------------------------------------------------------------------------

  private stayKey(type: LinkType): string {
    return boxKeyPairFromSeed(deriveKey(this.o.master, stayKeyPurpose(type))).publicKey;
  }

  private async connectAccount(accountId: string): Promise<void> {
    const held = this.keyring.forAccount(accountId, this.o.now());
    if (!held) return;
    for (const rec of await this.o.store.listLinked(accountId)) {
      try {
        await this.connectOne(rec, held.secret);
      } catch (err) {
        this.o.log.warn({ err, linked: rec.id }, 'bridge: connection request failed');
      }
    }
  }

  /** Sends a Connection Request for one link unless a live connector holds it up (or coming up). */
  private async connectOne(rec: LinkedAccountRecord, secret: Buffer | null): Promise<void> {
    if (this.connectors.alive(rec.connector) && (rec.state === 'connected' || rec.state === 'connecting')) return;
    const c = this.connectors.pick(rec.type);
    if (!c) {
      await this.publishState(rec, rec.connector ?? 'none', 'unreachable', `no connector serves ${rec.type} now`);
      return;
    }
    let sealed: string;
    let via: ConnectRequest['via'];
    if (secret) {
      const password = decryptLinked(secret, rec);
      sealed = seal(c.publicKey, password, sessionBoxAad(c.connector, { accountId: rec.accountId, linkedAccountId: rec.id }));
      password.fill(0);
      via = 'session';
    } else if (rec.staySealed) {
      sealed = rec.staySealed;
      via = 'stay';
    } else return;
    if (!(await this.o.store.assignConnector(rec.id, rec.connector, c.connector))) return; // another node acted first
    if (rec.connector && rec.connector !== c.connector && this.connectors.alive(rec.connector)) {
      this.o.bus.publish(TOPIC.disconnect(rec.connector), { linkedAccountId: rec.id, reason: 'moved to another connector' });
    }
    const req: ConnectRequest = { linkedAccountId: rec.id, accountId: rec.accountId, type: rec.type, server: rec.server, username: rec.username, options: JSON.parse(rec.options), sealed, via };
    if (!rec.staySealed) req.owner = this.o.node; // this node sees its sessions end; if it dies, the link ends
    this.o.bus.publish(TOPIC.connect(c.connector), { ...req });
  }

  private async disconnectAccount(accountId: string, reason: string): Promise<void> {
    for (const rec of await this.o.store.listLinked(accountId)) {
      if (rec.staySealed || !rec.connector) continue;
      if (await this.o.store.assignConnector(rec.id, rec.connector, null)) this.o.bus.publish(TOPIC.disconnect(rec.connector), { linkedAccountId: rec.id, reason });
    }
  }

  private async publishState(rec: LinkedAccountRecord, connector: string, state: LinkStateName, reason: string): Promise<void> {
    const r: StateReport = { connector, linkedAccountId: rec.id, accountId: rec.accountId, state, reason, at: this.o.now() };
    this.o.bus.publish(TOPIC.state, { ...r });
  }

  /**
   * Every HELLO_MS (and when a connector appears): Secrets of sessions that ended elsewhere or expired are zeroed;
   * dead connectors' links are freed (and said so); stay-connected links without a live connector get one.
   */
  async sweep(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const ended = new Set<string>();
      for (const [kid, h] of this.keyring.kids()) {
        if (h.expiresAt <= this.o.now() || (await this.o.sessions.keyOf(kid)) === null) {
          this.keyring.drop(kid);
          ended.add(h.accountId);
        }
      }
      for (const accountId of ended) await this.sessionEnded(accountId, null).catch(() => undefined);
      for (const id of this.connectors.dead()) {
        for (const rec of await this.o.store.listByConnector(id)) {
          if (await this.o.store.assignConnector(rec.id, id, null)) await this.publishState(rec, id, 'disconnected', 'connector lost');
        }
        this.connectors.gone(id);
      }
      for (const type of this.connectors.types()) {
        for (const rec of await this.o.store.listStayConnected(type, 1000)) {
          if (!this.connectors.alive(rec.connector) && rec.state !== 'bad_credentials') await this.connectOne({ ...rec, state: 'disconnected' }, null);
        }
      }
    } catch (err) {
      this.o.log.warn({ err }, 'bridge sweep failed');
    } finally {
      this.ticking = false;
    }
  }

  // From the connectors ---------------------------------------------------------------------------------------------

  private async forwardState(p: Record<string, unknown>): Promise<void> {
    const r = asStateReport(p);
    if (!r) return;
    this.emit(r.accountId, { type: 'link-state', linkedAccount: r.linkedAccountId, state: r.state, reason: r.reason });
    // The node that held this link up is gone: a node holding a Secret of the account (a live session started here
    // with the password) takes it over; the store's compare-and-set lets one of them do it.
    const held = r.state === 'disconnected' && r.reason === OWNER_LOST ? this.keyring.forAccount(r.accountId, this.o.now()) : null;
    if (!held) return;
    const rec = await this.o.store.getLinked(r.linkedAccountId);
    if (rec && rec.accountId === r.accountId && rec.connector === r.connector) await this.connectOne({ ...rec, state: 'disconnected' }, held.secret);
  }

  /**
   * Records a state unless it is from a connector that no longer holds the link (a late report after a move) or older
   * than the one recorded, then announces it. Reports of one link are recorded one after the other, in the order the
   * bus delivered them: 'connecting' and 'bad_credentials' 80 ms apart were written in either order when handled
   * concurrently (CI of 2026-12-07's first stop), and the store's update is conditional on the instant for reports a second node of
   * the group handles.
   */
  private recordState(p: Record<string, unknown>): Promise<void> {
    const r = asStateReport(p);
    if (!r) return Promise.resolve();
    const prev = this.recording.get(r.linkedAccountId) ?? Promise.resolve();
    const next = prev.then(() => this.recordOne(r)).finally(() => {
      if (this.recording.get(r.linkedAccountId) === next) this.recording.delete(r.linkedAccountId);
    });
    this.recording.set(r.linkedAccountId, next);
    return next;
  }

  private async recordOne(r: StateReport): Promise<void> {
    const rec = await this.o.store.getLinked(r.linkedAccountId);
    if (!rec || rec.accountId !== r.accountId) return;
    if (rec.connector !== null && rec.connector !== r.connector) return;
    if (!(await this.o.store.setLinkState(rec.id, r.state, r.reason, r.at))) return; // older than the one recorded
    this.o.bus.publish(TOPIC.stateRecorded, { ...r });
  }

  private async incoming(p: Record<string, unknown>): Promise<void> {
    const m = asIncoming(p, MAX_IM_BODY);
    if (!m) return;
    const rec = await this.o.store.getLinked(m.linkedAccountId);
    // Only from the connector holding the link for that account: a message cannot be put in another account's inbox.
    if (!rec || rec.accountId !== m.accountId || rec.connector !== m.connector) return;
    await this.o.inbox.send({
      accountId: rec.accountId,
      sender: imSender(rec.id, m.from),
      contentType: 'text/plain;charset=utf-8',
      body: Buffer.from(m.body, 'utf8'),
      clientId: m.remoteId ? `im:${m.remoteId}` : null,
      via: 'im',
    });
  }
}

function view(r: LinkedAccountRecord): LinkView {
  return { id: r.id, type: r.type, server: r.server, username: r.username, options: JSON.parse(r.options), stayConnected: r.staySealed !== null, state: r.state, reason: r.reason, updatedAt: r.updatedAt };
}

const linkedAad = (accountId: string, linkedAccountId: string) => Buffer.from(`switchboard linked account\n${accountId}\n${linkedAccountId}`);

export function encryptLinked(secret: Buffer, accountId: string, linkedAccountId: string, password: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', secret, iv);
  c.setAAD(linkedAad(accountId, linkedAccountId));
  const body = Buffer.concat([c.update(password, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
}

/** The plaintext password (a buffer the caller zeroes); throws when the Secret is not the one it was sealed under. */
export function decryptLinked(secret: Buffer, rec: Pick<LinkedAccountRecord, 'accountId' | 'id' | 'ciphertext'>): Buffer {
  const raw = Buffer.from(rec.ciphertext, 'base64url');
  const d = createDecipheriv('aes-256-gcm', secret, raw.subarray(0, 12));
  d.setAAD(linkedAad(rec.accountId, rec.id));
  d.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
}
