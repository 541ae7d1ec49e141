// Composition: the one document a presentity's watchers receive, from every live publication and the registered
// devices. One tuple per device:
//
// - a publication is one device's state (RFC 3903: each entity tag is a separate source of event state); its
//   tuples go in as published. A tuple id names a device's service (RFC 4479), so when two publications carry
//   the same tuple id the newer one's tuple stands (as Kamailio's presence_xml aggregates);
// - every registered binding (a device) that no publication speaks for gets a derived tuple: open, with the
//   binding's q as priority, and without its contact: a binding's contact is the device's address (IP, port,
//   transport), and every watcher the policy allows (the whole realm by default) would learn where each device
//   of the presentity is. Only with `contacts` (--presence-derived-contacts) does the derived tuple carry it. A publication speaks for a binding when it came over the binding's own
//   flow (same transport and source address/port, or the same TCP connection) or one of its tuples names the
//   binding's contact;
// - nothing published and nothing registered: one closed tuple.
//
// So with nothing published, presence is the registration state (registered → open, no bindings → closed); a
// device that publishes replaces its derived tuple with what it says. The person element (activities) comes
// from the most recent publication that has one; presence-level notes from all. Open tuples come first, then by
// priority: clients that read only the first tuple (baresip) see "open" when any device is reachable.

import { createHash } from 'node:crypto';
import type { BindingRecord, FlowRecord, PublicationRecord } from '../storage/ports.ts';
import type { PresencePerson, PresenceState, PresenceTuple } from './model.ts';

export interface ComposedPresence extends PresenceState {
  /** open when any tuple is open. */
  basic: 'open' | 'closed';
  /** Where the state comes from. */
  source: 'published' | 'registration' | 'mixed' | 'none';
}

/** A short stable id (an XML name) for a derived tuple. */
function derivedId(prefix: string, key: string): string {
  return prefix + createHash('sha1').update(key).digest('base64url').slice(0, 10).replace(/[^A-Za-z0-9]/g, 'x');
}

/** True when two flows are the same: the same connection, or the same transport, address and port. */
export function sameFlow(a: FlowRecord, b: FlowRecord): boolean {
  if (a.transport !== b.transport) return false;
  if (a.connectionId !== null && b.connectionId !== null && a.node === b.node) return a.connectionId === b.connectionId;
  return a.address === b.address && a.port === b.port;
}

/** True when the publication came from this binding's device. */
export function speaksFor(p: PublicationRecord, b: BindingRecord): boolean {
  const f = p.flow;
  if (f.transport === b.transport) {
    if (f.connectionId !== null && b.connectionId !== null && f.connectionId === b.connectionId && f.node === b.node) return true;
    if (f.address === b.sourceAddress && f.port === b.sourcePort) return true;
  }
  for (const t of p.state.tuples) if (t.contact !== null && t.contact === b.contact) return true;
  return false;
}

export interface ComposeOptions {
  /** Put each binding's contact in its derived tuple (off by default: it is the device's address). */
  contacts?: boolean;
}

export function compose(aor: string, publications: readonly PublicationRecord[], bindings: readonly BindingRecord[], o: ComposeOptions = {}): ComposedPresence {
  const pubs = [...publications].sort((a, b) => a.updatedAt - b.updatedAt || (a.etag < b.etag ? -1 : 1));
  const tuples: PresenceTuple[] = [];
  const ids = new Set<string>();
  const notes: string[] = [];
  let person: PresencePerson | null = null;
  for (const p of pubs) {
    for (const t of p.state.tuples) {
      if (ids.has(t.id)) tuples[tuples.findIndex((x) => x.id === t.id)] = t;
      else {
        ids.add(t.id);
        tuples.push(t);
      }
    }
    for (const n of p.state.notes) if (!notes.includes(n)) notes.push(n);
    if (p.state.person) person = p.state.person;
  }
  let derived = 0;
  for (const b of bindings) {
    if (pubs.some((p) => speaksFor(p, b))) continue;
    let id = derivedId('r', b.key);
    for (let n = 2; ids.has(id); n++) id = `${derivedId('r', b.key)}-${n}`;
    ids.add(id);
    tuples.push({ id, basic: 'open', contact: o.contacts ? b.contact : null, priority: b.q, notes: [], timestamp: null });
    derived++;
  }
  const published = tuples.length - derived;
  if (tuples.length === 0) tuples.push({ id: derivedId('c', aor), basic: 'closed', contact: null, priority: null, notes: [], timestamp: null });
  const order = tuples.map((t, i) => ({ t, i }));
  order.sort((a, b) => (a.t.basic === b.t.basic ? 0 : a.t.basic === 'open' ? -1 : 1) || (b.t.priority ?? 0.5) - (a.t.priority ?? 0.5) || a.i - b.i);
  const sorted = order.map((x) => x.t);
  return {
    tuples: sorted,
    person,
    notes,
    basic: sorted.some((t) => t.basic === 'open') ? 'open' : 'closed',
    source: published && derived ? 'mixed' : published ? 'published' : derived ? 'registration' : pubs.length ? 'published' : 'none',
  };
}
