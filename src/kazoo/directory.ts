// The Kazoo directory: Switchboard as the registrar of a Kazoo switch, or of Kamailio with its `kazoo` module, over
// the bus (reference: docs/kazoo-amqp.md). The protocol rules live in the codec modules beside it; this
// service applies them to Switchboard's own state, through ports only:
//
// - authn_req (callmgr `authn.req.*`, registrar `authn.endpoint.req.*`; one queue shared by the nodes of a deployment)
//   → authn_resp from the CredentialStore: `a1-hash` with the MD5 HA1, or `password` for an account whose operator
//   opted into reversible storage; Custom-Channel-Vars name the account. Unknown or disabled → authn_err.
// - reg_success: published for every binding change the location service makes durable (added and refreshed with
//   the granted Expires, removed and expired with `Expires: 0`); consumed from other switches into the foreign cache
//   (foreign-registrations.ts, ecallmgr's rules) unless `foreignRegistrations` is off. Never for an address of
//   record we are the registrar of (`ownsAor`: an account we hold in a realm we serve): any client of the broker can
//   publish a reg_success, and one for alice@our-realm would put the sender's contact into the reg_query answers
//   that route alice's calls. For the same reason reg_query leaves out a foreign entry for an AOR we hold live
//   bindings of (whatever the case of its user part).
// - reg_query → reg_query_resp | reg_query_error from the union of our live bindings and the foreign cache.
// - Nodes sharing one location index (Redis) are one registrar to Kazoo, as Kazoo's own registrar nodes answer from
//   one shared view: one of them answers each reg_query and reg_sync (a queue they share), and a reg_success from one
//   of them is no foreign registration to the others. They know each other by a tag every node of the deployment
//   derives alike, carried in each one's Server-ID (`kazooServerId`).
// - reg_flush drops the foreign entries and our own bindings (announced as removals) of a realm or of one user in it.
// - reg_sync → one reg_success per live binding to the requester; and we send a reg_sync when we start, so the
//   foreign cache fills from the other registrars' answers.
//
// Messages this node published itself come back through the broker and are recognised by their Server-ID.

import { randomBytes, randomUUID } from 'node:crypto';
import { AUTHN_REQ, buildAuthnErr, buildAuthnResp, parseAuthnReq } from './authn.ts';
import { nonEmptyString, replyTo, type Checked, type KazooMessage, type Sender } from './envelope.ts';
import { CALLMGR, REGISTRAR, TARGETED } from './exchanges.ts';
import { buildRegSync, checkRegFlush, checkRegSync } from './reg-control.ts';
import { buildRegQueryError, buildRegQueryResp, checkRegQuery, pickFields } from './reg-query.ts';
import { bridgeRuri, buildRegSuccess, checkRegSuccess, cleanContact, REG_SUCCESS } from './reg-success.ts';
import { BINDING, KEY } from './routing-keys.ts';
import type { BusMessage, EventBus } from '../bus/event-bus.ts';
import { Errors, sbError } from '../errors.ts';
import type { ReversibleSipPasswords } from '../identity/reversible-passwords.ts';
import { ThrottledLog, type Logger } from '../log.ts';
import type { AccountStore, BindingRecord, CredentialStore, FoundCredential } from '../storage/ports.ts';
import { ForeignRegistrations, type ApplyResult, type ForeignRegistration } from './foreign-registrations.ts';
import type { BindingChange } from '../registrar/location-service.ts';

/** What the directory needs of the location service. */
export interface LocalBindings {
  lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]>;
  entries(): AsyncIterable<[string, BindingRecord[]]>;
  removeAor(aor: string): Promise<void>;
}

export interface KazooDirectoryOptions {
  bus: EventBus;
  credentials: CredentialStore;
  /** Reversible SIP passwords (null: every answer is a1-hash). */
  passwords: ReversibleSipPasswords | null;
  location: LocalBindings;
  /** App-Name/App-Version/Node/Server-ID of what we send; Server-ID must be this process's queue. */
  sender: Sender;
  /** Seconds added to Expires of foreign registrations (Kazoo: 180). */
  expiresDeviation: number;
  log: Logger;
  /** The queue of authn requests shared by the nodes of this deployment (default `switchboard.authn`). */
  authnGroup?: string;
  /** The tag of the nodes sharing this one's location index (in their Server-IDs, `kazooServerId`); none: alone. */
  cluster?: string | null;
  /**
   * Keep other registrars' registrations (default true): consume every reg_success, and send reg_sync at start.
   * Off, the node's queue gets none of the registrations announced on the bus (its own would come back too).
   */
  foreignRegistrations?: boolean;
  /**
   * Whether we are the registrar of user@realm (the user as announced, the realm lower-cased): other registrars'
   * reg_success for such an AOR are refused. Absent: any AOR may be registered elsewhere
   * (`--kazoo-foreign-registrations all`, for a Kamailio that registers our accounts itself).
   */
  ownsAor?: (user: string, realm: string) => boolean | Promise<boolean>;
  now?: () => number;
}

/**
 * The AORs a deployment is the registrar of: those of an account it holds (disabled ones included: a disabled
 * account's calls must not go to whoever announces a contact for it) in a realm it serves. The user part is tried as
 * announced and lower-cased (Kazoo lower-cases it, and the foreign cache is keyed lower-cased). Realms we do not serve
 * cost nothing; the others one indexed account read per announcement.
 */
export function registrarOf(realms: readonly string[], accounts: Pick<AccountStore, 'findByName'>): (user: string, realm: string) => Promise<boolean> {
  const served = new Set(realms.map((r) => r.toLowerCase()));
  return async (user, realm) => {
    if (!served.has(realm)) return false;
    if (await accounts.findByName(user, realm)) return true;
    const lower = user.toLowerCase();
    return lower !== user && (await accounts.findByName(lower, realm)) !== null;
  };
}

/** A process's Server-ID, its queue on the targeted exchange: unique to the process, and carrying its cluster's tag. */
export function kazooServerId(node: string, cluster: string | null): string {
  return `${node}-${cluster === null ? '' : cluster + '-'}${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Custom-Channel-Vars of an account: it is the endpoint (Kazoo's device) and its own owner. */
export function channelVars(accountId: string, username: string, realm: string): Record<string, string> {
  return {
    Username: username,
    Realm: realm,
    'Account-ID': accountId,
    'Authorizing-ID': accountId,
    'Authorizing-Type': 'device',
    'Owner-ID': accountId,
    'Presence-ID': `${username}@${realm}`,
  };
}

function splitAor(aor: string): { user: string; realm: string } {
  const at = aor.lastIndexOf('@');
  return { user: aor.slice(0, at), realm: aor.slice(at + 1) };
}

/** A binding as a reg_success reports it. `expires` 0: gone. */
export function bindingFields(b: BindingRecord, o: { node: string; expires: number; timestamp: number; first?: boolean }): Record<string, unknown> {
  const { user, realm } = splitAor(b.aor);
  const contact = `<${b.contact}>${b.params}`;
  return {
    'Event-Timestamp': o.timestamp,
    Contact: contact,
    'Original-Contact': contact,
    Expires: o.expires,
    Username: user,
    Realm: realm,
    AOR: `sip:${b.aor}`,
    'From-User': user,
    'From-Host': realm,
    'To-User': user,
    'To-Host': realm,
    'Call-ID': b.callId,
    'User-Agent': b.userAgent ?? undefined,
    Status: o.expires > 0 ? 'Registered' : 'Unregistered',
    'Network-IP': b.sourceAddress,
    'Network-Port': String(b.sourcePort),
    'Source-IP': b.sourceAddress,
    'Source-Port': String(b.sourcePort),
    'Proxy-Path': b.path[0],
    'Registrar-Node': o.node,
    RUID: b.key,
    'Account-ID': b.accountId ?? undefined,
    'Authorizing-ID': b.accountId ?? undefined,
    'Custom-Channel-Vars': b.accountId ? channelVars(b.accountId, user, realm) : undefined,
    'First-Registration': o.first,
  };
}

function malformed<T>(c: Checked<T>): T {
  if (!c.ok) throw sbError('BUS_ERR_MALFORMED', c.error);
  return c.value;
}

export class KazooDirectory {
  readonly foreign: ForeignRegistrations;
  private readonly o: KazooDirectoryOptions;
  private readonly from: Sender;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly warn: ThrottledLog;
  /** Other registrars' reg_success are taken in (KazooDirectoryOptions.foreignRegistrations). */
  private readonly intake: boolean;
  /** `-<cluster>-`, found in the Server-ID of every node sharing our location index; null when we are alone. */
  private readonly tag: string | null;
  private unsubscribe: Array<() => void> = [];
  /** reg_success from elsewhere for AORs we are the registrar of, refused (ownsAor). */
  refused = 0;

  constructor(o: KazooDirectoryOptions) {
    this.o = o;
    this.from = o.sender;
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.warn = new ThrottledLog(o.log, 10);
    this.intake = o.foreignRegistrations ?? true;
    this.tag = o.cluster ? `-${o.cluster}-` : null;
    this.foreign = new ForeignRegistrations({ deviationSeconds: o.expiresDeviation, now: this.now });
  }

  /** Subscribes to the directory's requests and announcements, and asks the other registrars to re-announce. */
  start(): void {
    const { bus } = this.o;
    const group = this.o.authnGroup ?? 'switchboard.authn';
    this.unsubscribe = [
      bus.subscribe(BINDING.authnReq, this.onAuthn, { exchange: CALLMGR.name, group }),
      bus.subscribe(BINDING.authnEndpointReq, this.onAuthn, { exchange: REGISTRAR.name, group }),
      // One answer from the cluster (every node sees the same bindings); a reg_flush is every node's (its foreign cache).
      bus.subscribe(BINDING.regQuery, this.onRegQuery, { exchange: REGISTRAR.name, group: this.answerGroup }),
      bus.subscribe(BINDING.regFlush, this.onRegFlush, { exchange: REGISTRAR.name }),
      bus.subscribe(BINDING.regSync, this.onRegSync, { exchange: REGISTRAR.name, group: this.answerGroup }),
      bus.subscribe(this.from.serverId, this.onTargeted, { exchange: TARGETED.name }),
    ];
    if (!this.intake) return;
    this.unsubscribe.push(bus.subscribe(BINDING.regSuccess, this.onRegSuccess, { exchange: REGISTRAR.name }));
    this.foreign.start();
    bus.publish(KEY.regSync, buildRegSync(this.from, randomUUID()), { exchange: REGISTRAR.name });
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    this.foreign.stop();
  }

  get registrarAge(): number {
    return Math.floor((this.now() - this.startedAt) / 1000);
  }

  private own(m: Record<string, unknown>): boolean {
    return m['Server-ID'] === this.from.serverId;
  }

  /** Sent by this node or by another sharing its location index. */
  private fellow(m: Record<string, unknown>): boolean {
    const id = m['Server-ID'];
    return id === this.from.serverId || (this.tag !== null && typeof id === 'string' && id.includes(this.tag));
  }

  private get answerGroup(): string | undefined {
    return this.o.cluster ? `switchboard.${this.o.cluster}.directory` : undefined;
  }

  private reply(request: KazooMessage, msg: KazooMessage): void {
    const to = replyTo(request);
    if (to === null) throw sbError('BUS_ERR_MALFORMED', 'Server-ID missing: nowhere to send the reply');
    this.o.bus.publish(to, msg, { exchange: TARGETED.name });
  }

  // authn_req -------------------------------------------------------------------------------------------------

  private readonly onAuthn = async (bm: BusMessage): Promise<void> => {
    const req = malformed(parseAuthnReq(bm.payload));
    if (replyTo(req.msg) === null) throw sbError('BUS_ERR_MALFORMED', `${AUTHN_REQ} without Server-ID`);
    let found = await this.o.credentials.findSipCredential(req.user, req.realm, 'MD5');
    if (!found && req.rawUser !== req.user) found = await this.o.credentials.findSipCredential(req.rawUser, req.realm, 'MD5');
    if (!found) {
      this.o.log.debug({ user: req.user, realm: req.realm, msgId: req.msg['Msg-ID'] }, 'authn_req: unknown credentials, authn_err');
      this.reply(req.msg, buildAuthnErr(this.from, req.msg));
      return;
    }
    this.reply(req.msg, buildAuthnResp(this.from, req.msg, await this.answer(found)));
  };

  private async answer(found: FoundCredential) {
    const c = found.credential;
    const ccvs = channelVars(c.accountId, c.authUser, c.realm);
    if (this.o.passwords) {
      const r = await this.o.passwords.reveal(c.accountId, c.authUser, c.realm, c.ha1);
      if (r.status === 'ok') return { method: 'password' as const, secret: r.password, username: c.authUser, ccvs };
      if (r.status === 'stale') {
        this.warn.warn({ accountId: c.accountId }, 'reversible SIP password no longer matches the account (password changed since): answering a1-hash; enable it again with the new password');
      }
    }
    return { method: 'a1-hash' as const, secret: c.ha1, username: c.authUser, ccvs };
  }

  // reg_success -----------------------------------------------------------------------------------------------

  /** Announces binding changes made durable by the location service (wire to LocationService's onChange). */
  onBindingChanges(changes: readonly BindingChange[]): void {
    const now = this.now();
    for (const c of changes) {
      const b = c.binding;
      const live = c.event === 'added' || c.event === 'refreshed';
      const expires = live ? Math.max(0, Math.round((b.expiresAt - now) / 1000)) : 0;
      this.announce(b, expires, Math.floor(now / 1000), live ? c.event === 'added' : undefined);
    }
  }

  private announce(b: BindingRecord, expires: number, timestamp: number, first: boolean | undefined, to?: string): void {
    const fields = bindingFields(b, { node: this.from.node, expires, timestamp, first });
    const msg = buildRegSuccess(this.from, randomUUID(), fields);
    if (to === undefined) this.o.bus.publish(KEY.regSuccess(fields.Realm as string, fields.Username as string), msg, { exchange: REGISTRAR.name, batch: true });
    else this.o.bus.publish(to, msg, { exchange: TARGETED.name });
  }

  private readonly onRegSuccess = async (bm: BusMessage): Promise<void> => {
    if (this.fellow(bm.payload)) return; // ours: in the shared index already
    await this.learn(bm.payload);
  };

  private async learn(payload: Record<string, unknown>): Promise<ApplyResult | 'refused'> {
    const rs = malformed(checkRegSuccess(payload));
    if (this.o.ownsAor && (await this.o.ownsAor(rs.username, rs.realm.toLowerCase()))) {
      this.refused++;
      this.warn.warn(
        { user: rs.username, realm: rs.realm, node: payload.Node, serverId: payload['Server-ID'], code: Errors.BUS_ERR_OWN_AOR.code },
        'reg_success from another registrar for an address of record we are the registrar of: refused',
      );
      return 'refused';
    }
    const r = this.foreign.apply(rs);
    this.o.log.debug({ user: rs.username, realm: rs.realm, expires: rs.expires, result: r }, 'reg_success from another registrar');
    return r;
  }

  /** Messages to our own queue: answers to our reg_sync (reg_success), or stray replies. */
  private readonly onTargeted = async (bm: BusMessage): Promise<void> => {
    if (bm.payload['Event-Name'] === REG_SUCCESS && this.intake && !this.fellow(bm.payload)) await this.learn(bm.payload);
  };

  // reg_query -------------------------------------------------------------------------------------------------

  /** Our live bindings matching a query, by lower-cased user and realm (null: any). */
  private async localMatches(username: string | null, realm: string | null, rawUser: string | null): Promise<BindingRecord[]> {
    if (username !== null && realm !== null) {
      const out = await this.o.location.lookup(`${username}@${realm}`);
      if (rawUser !== null && rawUser !== username) return [...out, ...(await this.o.location.lookup(`${rawUser}@${realm}`))];
      return out;
    }
    const out: BindingRecord[] = [];
    for await (const [aor, list] of this.o.location.entries()) {
      const { user, realm: r } = splitAor(aor);
      if (realm !== null && r !== realm) continue;
      if (username !== null && user.toLowerCase() !== username) continue;
      out.push(...list);
    }
    return out;
  }

  /** A live binding as a registrar reports it in reg_query_resp (Expires as granted, Contact cleaned). */
  private localView(b: BindingRecord): Record<string, unknown> {
    const granted = Math.max(0, Math.round((b.expiresAt - b.updatedAt) / 1000));
    const f = bindingFields(b, { node: this.from.node, expires: granted, timestamp: Math.floor(b.updatedAt / 1000) });
    const original = f['Original-Contact'] as string;
    f.Contact = cleanContact(original);
    f['Last-Registration'] = Math.floor(b.updatedAt / 1000);
    f['Initial-Registration'] = Math.floor(b.createdAt / 1000);
    const bridge = bridgeRuri(original, b.path[0], f.Username as string, f.Realm as string);
    if (bridge) f['Bridge-RURI'] = bridge;
    return f;
  }

  private readonly onRegQuery = async (bm: BusMessage): Promise<void> => {
    if (this.fellow(bm.payload)) return;
    const q = malformed(checkRegQuery(bm.payload));
    if (replyTo(q.msg) === null) throw sbError('BUS_ERR_MALFORMED', 'reg_query without Server-ID');
    const rawUser = nonEmptyString(q.msg.Username) ? q.msg.Username : null;
    const local = await this.localMatches(q.username, q.realm, rawUser);
    const foreign = this.withoutOurs(this.foreign.query(q.username, q.realm), local);
    const age = this.registrarAge;
    if (q.countOnly) {
      this.reply(q.msg, buildRegQueryResp(this.from, q.msg, age, [], local.length + foreign.length));
      return;
    }
    if (local.length + foreign.length === 0) {
      this.reply(q.msg, buildRegQueryError(this.from, q.msg, age));
      return;
    }
    const rows = [...local.map((b) => pickFields(this.localView(b), q.fields)), ...foreign.map((r) => pickFields(r.fields, q.fields))];
    this.reply(q.msg, buildRegQueryResp(this.from, q.msg, age, rows));
  };

  /**
   * Foreign entries for AORs we hold live bindings of are not reported: those AORs are ours (an entry taken before
   * the account existed, or under another case of its user part than the account's).
   */
  private withoutOurs(foreign: ForeignRegistration[], local: readonly BindingRecord[]): ForeignRegistration[] {
    if (foreign.length === 0 || local.length === 0) return foreign;
    const ours = new Set(local.map((b) => b.aor.toLowerCase()));
    return foreign.filter((r) => !ours.has(r.key));
  }

  // reg_flush, reg_sync ---------------------------------------------------------------------------------------

  private readonly onRegFlush = async (bm: BusMessage): Promise<void> => {
    if (this.own(bm.payload)) return;
    const f = malformed(checkRegFlush(bm.payload));
    const dropped = this.foreign.flush(f.realm, f.username);
    const rawUser = nonEmptyString(f.msg.Username) ? f.msg.Username : null;
    const aors = new Set((await this.localMatches(f.username, f.realm, rawUser)).map((b) => b.aor));
    for (const aor of aors) await this.o.location.removeAor(aor);
    this.o.log.info({ realm: f.realm, user: f.username, foreign: dropped, aors: aors.size }, 'reg_flush: registrations dropped');
  };

  private readonly onRegSync = async (bm: BusMessage): Promise<void> => {
    if (this.fellow(bm.payload)) return; // a fellow node sees our bindings in the shared index
    const req = malformed(checkRegSync(bm.payload));
    const to = replyTo(req);
    if (to === null) throw sbError('BUS_ERR_MALFORMED', 'reg_sync without Server-ID');
    const now = this.now();
    let n = 0;
    for await (const [, list] of this.o.location.entries()) {
      for (const b of list) {
        this.announce(b, Math.max(0, Math.round((b.expiresAt - now) / 1000)), Math.floor(now / 1000), undefined, to);
        n++;
      }
    }
    this.o.log.info({ to, registrations: n }, 'reg_sync: re-announced our registrations');
  };
}
