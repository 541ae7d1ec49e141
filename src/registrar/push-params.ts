// RFC 8599 §4.1: the push parameters a device put on its contact (pn-provider, pn-prid, pn-param), read back from a
// stored binding. The proxy (fork late) and messaging (the push itself) both read them; the device is named by
// provider and prid, which stay the same when it registers again from a new connection.

import { isSipUri, parseUri } from '../sip/message/uri.ts';
import type { BindingRecord } from '../storage/ports.ts';

export interface PushParams {
  provider: string;
  prid: string;
  param: string | null;
}

/** The contact's pn-* parameters, or null when it carries no pn-provider and pn-prid. */
export function pushParamsOf(contact: string): PushParams | null {
  if (!contact.includes('pn-')) return null; // the usual contact: no parse
  const u = parseUri(contact.charCodeAt(0) === 60 ? contact.slice(1, contact.indexOf('>')) : contact);
  if (!u || !isSipUri(u)) return null;
  const provider = u.params.get('pn-provider');
  const prid = u.params.get('pn-prid');
  if (!provider || !prid) return null;
  return { provider, prid: decodeURIComponentSafe(prid), param: u.params.get('pn-param') ?? null };
}

/**
 * The connection id of a binding whose flow is gone but whose device can be pushed (Flexisip keeps such bindings
 * until their own expiry): RFC 5626 and WebSocket bindings with pn-* parameters are parked on their connection's
 * close instead of removed. Real ids are random and never 0 (sip/transport/types.ts `nextConnectionId`), so the
 * mark is the same on every node and survives a restart, when the old ids mean nothing.
 */
export const PARKED = 0;

/** A binding reachable only by a push now (its connection closed, here or on a node before a restart). */
export function parked(b: BindingRecord): boolean {
  return b.connectionId === PARKED;
}

/** What a closed connection leaves of a connection-bound binding: parked when it can be pushed, else nothing. */
export function parkOrDrop(b: BindingRecord): BindingRecord | null {
  return pushParamsOf(b.contact) !== null ? { ...b, connectionId: PARKED } : null;
}

/** The same device: the same provider and token, or the same +sip.instance. */
export function sameDevice(a: BindingRecord, b: BindingRecord): boolean {
  if (a.instanceId !== null && a.instanceId === b.instanceId) return true;
  const pa = pushParamsOf(a.contact);
  const pb = pushParamsOf(b.contact);
  return pa !== null && pb !== null && pa.provider === pb.provider && pa.prid === pb.prid;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
