// The presence domain model: what a publication or a registration says about a presentity (RFC 3863 PIDF, RFC
// 4479 data model, RFC 4480 RPID), reduced to what Switchboard composes. Parsed and rendered by pidf.ts, composed
// by compose.ts, stored through the presence port (storage/ports/presence.ts).

/** One PIDF tuple, as published or derived. */
export interface PresenceTuple {
  id: string;
  basic: 'open' | 'closed';
  contact: string | null;
  priority: number | null;
  notes: string[];
  /** ISO time stamp, as published. */
  timestamp: string | null;
}

/** The person element of RFC 4479/4480: what the presentity is doing. */
export interface PresencePerson {
  id: string;
  /** RPID activities (RFC 4480 §3.2), element names such as "busy", "away", "on-the-phone"; "other" keeps its text. */
  activities: string[];
  notes: string[];
}

/** The state one publication carries (a parsed PIDF document, reduced to what Switchboard composes). */
export interface PresenceState {
  tuples: PresenceTuple[];
  person: PresencePerson | null;
  notes: string[];
}
