// Registrations other switches announce over the bus (reg_success from Kamailio, FreeSWITCH/ecallmgr, other
// Switchboard nodes), kept by ecallmgr_registrar's rules so reg_query can answer for them:
//
// - keyed by lower-cased {Username, Realm}; one registration per key, as in ecallmgr (a new contact for the key
//   replaces the old one; the old contact is kept as Previous-Contact);
// - cache id = md5 of the cleaned contact, with a {Username, Realm} → cache id mapping (seed 000): the same contact
//   announced again updates its entry; a contact claimed by another user moves to that user (the latest claim wins);
// - Contact cleaned of every '<' and '>', Original-Contact the raw value; Bridge-RURI built from Proxy-Path;
// - stored Expires = Expires + the deviation (Kazoo: 180 s), the entry expiring that long after the announcement;
//   `Expires: 0` removes the entry when it holds that contact;
// - expired entries are removed by a one-second timer.
//
// Nothing here is durable: after a restart the cache fills again from the next announcements (switches re-register
// their phones) and from the answers to the reg_sync the directory sends when it starts.

import { createHash } from 'node:crypto';
import { isTrue } from './envelope.ts';
import { bridgeRuri, cleanContact, REG_SUCCESS_KEYS, type RegSuccess } from './reg-success.ts';

export interface ForeignRegistration {
  /** md5 of the cleaned contact. */
  id: string;
  /** lower-cased user@realm. */
  key: string;
  /** reg_success fields as a registrar reports them (Contact cleaned, Expires with the deviation, Bridge-RURI, …). */
  fields: Record<string, unknown>;
  /** Epoch ms. */
  expiresAt: number;
}

export type ApplyResult = 'new' | 'updated' | 'replaced' | 'removed' | 'ignored';

export interface ForeignRegistrationsOptions {
  /** Seconds added to Expires (Kazoo's expires_deviation_time, 180). */
  deviationSeconds: number;
  now?: () => number;
}

const lower = (s: string) => s.toLowerCase();

export class ForeignRegistrations {
  private readonly byId = new Map<string, ForeignRegistration>();
  private readonly byUser = new Map<string, string>();
  private readonly wheel = new Map<number, string[]>();
  private cursor: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly deviation: number;
  private readonly now: () => number;

  constructor(o: ForeignRegistrationsOptions) {
    this.deviation = o.deviationSeconds;
    this.now = o.now ?? Date.now;
    this.cursor = Math.floor(this.now() / 1000);
  }

  get size(): number {
    return this.byId.size;
  }

  start(): void {
    this.timer ??= setInterval(() => this.expire(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Applies a validated reg_success. */
  apply(rs: RegSuccess): ApplyResult {
    const m = rs.msg;
    const key = `${lower(rs.username)}@${lower(rs.realm)}`;
    const original = typeof m['Original-Contact'] === 'string' && m['Original-Contact'] !== '' ? m['Original-Contact'] : (m.Contact as string);
    const contact = cleanContact(original);
    const id = createHash('md5').update(contact).digest('hex');
    const held = this.byUser.get(key);
    if (rs.expires === 0) {
      if (held !== id) return 'ignored';
      this.remove(id);
      return 'removed';
    }
    const now = this.now();
    const nowSec = Math.floor(now / 1000);
    let result: ApplyResult;
    let previous: ForeignRegistration | undefined;
    if (held === id) {
      result = 'updated';
      previous = this.byId.get(id);
    } else {
      if (held !== undefined) {
        previous = this.byId.get(held);
        this.remove(held);
        result = 'replaced';
      } else result = 'new';
      // The contact was someone else's: it is this user's now.
      if (this.byId.has(id)) this.remove(id);
    }
    const expires = rs.expires + this.deviation;
    const fields: Record<string, unknown> = {};
    for (const k of REG_SUCCESS_KEYS) if (m[k] !== undefined && m[k] !== null) fields[k] = m[k];
    fields.Contact = contact;
    fields['Original-Contact'] = original;
    fields.Expires = expires;
    fields['Registrar-Node'] ??= m['FreeSWITCH-Nodename'] ?? m.Node;
    fields['Last-Registration'] = nowSec;
    fields['Initial-Registration'] = result === 'updated' ? (previous?.fields['Initial-Registration'] ?? nowSec) : nowSec;
    fields['First-Registration'] = m['First-Registration'] !== undefined ? isTrue(m['First-Registration']) : result !== 'updated';
    if (result === 'replaced' && previous) fields['Previous-Contact'] = previous.fields.Contact;
    const bridge = bridgeRuri(original, typeof m['Proxy-Path'] === 'string' ? m['Proxy-Path'] : undefined, rs.username, rs.realm);
    if (bridge) fields['Bridge-RURI'] = bridge;
    const reg: ForeignRegistration = { id, key, fields, expiresAt: now + expires * 1000 };
    this.byId.set(id, reg);
    this.byUser.set(key, id);
    const sec = Math.ceil(reg.expiresAt / 1000);
    const bucket = this.wheel.get(sec);
    if (bucket) bucket.push(id);
    else this.wheel.set(sec, [id]);
    return result;
  }

  private remove(id: string): void {
    const reg = this.byId.get(id);
    if (!reg) return;
    this.byId.delete(id);
    if (this.byUser.get(reg.key) === id) this.byUser.delete(reg.key);
  }

  /** Live registrations of a user (lower-cased) in a realm (lower-cased); null: any. */
  query(username: string | null, realm: string | null): ForeignRegistration[] {
    const now = this.now();
    if (username !== null && realm !== null) {
      const id = this.byUser.get(`${username}@${realm}`);
      const reg = id === undefined ? undefined : this.byId.get(id);
      return reg && reg.expiresAt > now ? [reg] : [];
    }
    const out: ForeignRegistration[] = [];
    for (const reg of this.byId.values()) {
      if (reg.expiresAt <= now) continue;
      const at = reg.key.lastIndexOf('@');
      if (realm !== null && reg.key.slice(at + 1) !== realm) continue;
      if (username !== null && reg.key.slice(0, at) !== username) continue;
      out.push(reg);
    }
    return out;
  }

  /** Drops the registrations of a realm, or of one user in it; returns how many. */
  flush(realm: string, username: string | null): number {
    const doomed = this.query(username, realm);
    for (const reg of doomed) this.remove(reg.id);
    return doomed.length;
  }

  /** Removes what has expired; returns how many. */
  expire(): number {
    const now = this.now();
    const nowSec = Math.floor(now / 1000);
    let n = 0;
    for (let sec = this.cursor; sec <= nowSec; sec++) {
      const bucket = this.wheel.get(sec);
      if (!bucket) continue;
      this.wheel.delete(sec);
      for (const id of bucket) {
        const reg = this.byId.get(id);
        if (reg && reg.expiresAt <= now) {
          this.remove(id);
          n++;
        }
      }
    }
    this.cursor = nowSec + 1;
    return n;
  }
}
