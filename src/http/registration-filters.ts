// Binding filters of GET /v1/registrations beyond realm and user (the admin console's registrations view):
// transport, a User-Agent substring, and "expiring soon". A filter keeps the bindings that match it; an AOR with
// none left is left out of the listing.

import type { BindingRecord } from '../storage/ports.ts';

export interface BindingFilterQuery {
  transport?: string;
  userAgent?: string;
  expiringWithin?: number;
}

/** JSON schema properties for the query string (merged into the route's querystring schema). */
export const bindingFilterProperties = {
  transport: { type: 'string', enum: ['UDP', 'TCP', 'TLS', 'WS', 'WSS'], description: 'Only bindings received over this transport' },
  userAgent: { type: 'string', minLength: 1, maxLength: 256, description: 'Only bindings whose User-Agent contains this text (case-insensitive)' },
  expiringWithin: { type: 'integer', minimum: 0, maximum: 31_536_000, description: 'Only bindings that expire within this many seconds' },
} as const;

/** A predicate for the query's binding filters, or null when the query has none (everything passes). */
export function bindingFilter(q: BindingFilterQuery, now: number): ((b: BindingRecord) => boolean) | null {
  const { transport, expiringWithin } = q;
  const ua = q.userAgent?.toLowerCase();
  if (transport === undefined && ua === undefined && expiringWithin === undefined) return null;
  const deadline = expiringWithin === undefined ? Infinity : now + expiringWithin * 1000;
  return (b) =>
    (transport === undefined || b.transport === transport) &&
    (ua === undefined || (b.userAgent ?? '').toLowerCase().includes(ua)) &&
    b.expiresAt <= deadline;
}
