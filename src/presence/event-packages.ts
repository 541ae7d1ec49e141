// Event packages (RFC 6665 §7.2): the Event header, and the packages this notifier serves. A SUBSCRIBE or PUBLISH
// for any other package is answered 489 Bad Event with Allow-Events listing ours (RFC 6665 §8.2.2, RFC 3903 §6).

import { parseParams } from '../sip/message/grammar.ts';
import { PIDF_TYPE } from './pidf.ts';

export interface EventPackage {
  name: string;
  /** The body type NOTIFYs carry and PUBLISH must use. */
  contentType: string;
  /** Accept values that a subscriber's Accept header must include one of. */
  accept: string[];
}

export const PRESENCE_PACKAGE: EventPackage = {
  name: 'presence',
  contentType: PIDF_TYPE,
  accept: [PIDF_TYPE, 'application/*', '*/*'],
};

export interface EventHeader {
  /** The event type, lower-cased (RFC 6665 §8.2.1: compared case-insensitively here, as Kamailio does). */
  event: string;
  /** The id parameter, or null. */
  id: string | null;
}

/**
 * The last Event value parsed and what it gave: the SUBSCRIBEs and PUBLISHes of a burst carry the same few values
 * ("presence"), and comparing a short string is cheaper than trimming, lower-casing and matching it again.
 */
let lastValue: string | undefined;
let lastHeader: Readonly<EventHeader> | null = null;

/** Parses an Event header value: event-type *( ";" event-param ). Null when absent or malformed. */
export function parseEvent(value: string | undefined): Readonly<EventHeader> | null {
  if (value === undefined) return null;
  if (value === lastValue) return lastHeader;
  const header = parseEventValue(value);
  lastValue = value;
  lastHeader = header;
  return header;
}

function parseEventValue(value: string): Readonly<EventHeader> | null {
  const v = value.trim();
  const semi = v.indexOf(';');
  const type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase();
  if (!/^[a-z0-9!%*_+`'~-]+(\.[a-z0-9!%*_+`'~-]+)*$/.test(type)) return null;
  let id: string | null = null;
  if (semi >= 0) {
    const params = parseParams(v, semi);
    if (!params) return null;
    id = params.get('id') ?? null;
  }
  return Object.freeze({ event: type, id });
}

export class EventPackages {
  private readonly packages = new Map<string, EventPackage>();

  constructor(packages: EventPackage[] = [PRESENCE_PACKAGE]) {
    for (const p of packages) this.packages.set(p.name, p);
  }

  get(name: string): EventPackage | undefined {
    return this.packages.get(name);
  }

  /** The Allow-Events value (RFC 6665 §8.2.2). */
  get allowEvents(): string {
    return [...this.packages.keys()].join(', ');
  }
}

/** True when an Accept header (its values) admits the package's body type; no Accept header admits it. */
export function acceptsPackage(accept: string[], pkg: EventPackage): boolean {
  if (accept.length === 0) return true;
  for (const a of accept) if (pkg.accept.includes(a)) return true; // as written, the usual case: nothing to normalise
  return accept.some((a) => pkg.accept.includes(a.split(';')[0].trim().toLowerCase()));
}

/** True when a Content-Type value names the package's body type (parameters ignored). */
export function isPackageType(contentType: string | undefined, pkg: EventPackage): boolean {
  return contentType !== undefined && contentType.split(';')[0].trim().toLowerCase() === pkg.contentType;
}
