// PIDF (RFC 3863) with the RFC 4479 person element and RPID activities (RFC 4480), parsed and produced with
// fast-xml-parser. What Switchboard keeps of a document is what it composes: tuples (basic status, contact with
// priority, notes, timestamp), the person's activities and notes, and presence-level notes. Other extensions are
// dropped rather than passed through unchecked.
//
// Output: the PIDF namespace is the default one and RPID/data-model elements carry the `rpid:` and `dm:` prefixes
// (`<tuple><status><basic>`, `<dm:person><rpid:activities><rpid:busy/>`) — the spelling every client reads,
// including those that match text rather than parse XML (baresip 1.0 looks for `<basic>` and `<rpid:busy/>`).

import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import type { PresencePerson, PresenceState, PresenceTuple } from './model.ts';

export const PIDF_TYPE = 'application/pidf+xml';
export const NS_PIDF = 'urn:ietf:params:xml:ns:pidf';
export const NS_DM = 'urn:ietf:params:xml:ns:pidf:data-model';
export const NS_RPID = 'urn:ietf:params:xml:ns:pidf:rpid';

/** RFC 4480 §3.2 activities. Other element names are accepted when they are plain XML names. */
export const RPID_ACTIVITIES = [
  'appointment', 'away', 'breakfast', 'busy', 'dinner', 'holiday', 'in-transit', 'looking-for-work', 'meal', 'meeting',
  'on-the-phone', 'performance', 'permanent-absence', 'playing', 'presentation', 'shopping', 'sleeping', 'spectator',
  'steering', 'travel', 'tv', 'unknown', 'vacation', 'working', 'worship', 'other',
] as const;

const NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,63}$/;
const MAX_ITEMS = 64;
const MAX_TEXT = 1024;

export class PidfError extends Error {}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  isArray: (_name, jpath) => ARRAYS.has(String(jpath)),
});
const ARRAYS = new Set(['presence.tuple', 'presence.person', 'presence.note', 'presence.tuple.note', 'presence.tuple.contact', 'presence.person.note', 'presence.person.activities']);

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  suppressEmptyNode: true,
  format: false,
  processEntities: true,
});

type Node = Record<string, unknown>;

/** Text content of an element as fast-xml-parser gives it (a string, or an object with #text and attributes). */
function text(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'object' && '#text' in (v as Node)) return String((v as Node)['#text']);
  if (typeof v === 'object') return '';
  return null;
}

function texts(v: unknown): string[] {
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
  const out: string[] = [];
  for (const item of list) {
    const t = text(item);
    if (t) out.push(t.slice(0, MAX_TEXT));
    if (out.length >= MAX_ITEMS) break;
  }
  return out;
}

/**
 * Parses a PIDF document. Throws PidfError when it is not well-formed XML, declares a DTD (no entity expansion is
 * ever attempted), is not a <presence> document with an entity, or a tuple is malformed.
 */
export function parsePidf(xml: string): PresenceState & { entity: string } {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new PidfError('DTDs are not accepted in PIDF');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new PidfError(`not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  if (!xml.includes(NS_PIDF)) throw new PidfError(`not a PIDF document (namespace ${NS_PIDF} missing)`);
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (e) {
    throw new PidfError(`not parseable: ${(e as Error).message}`);
  }
  const root = doc.presence as Node | undefined;
  if (!root || typeof root !== 'object') throw new PidfError('the root element must be <presence>');
  const entity = root['@_entity'];
  if (typeof entity !== 'string' || !entity) throw new PidfError('<presence> needs an entity attribute');

  const tuples: PresenceTuple[] = [];
  const seen = new Set<string>();
  for (const t of (root.tuple as Node[] | undefined) ?? []) {
    if (tuples.length >= MAX_ITEMS) break;
    if (typeof t !== 'object' || t === null) throw new PidfError('malformed <tuple>');
    const id = t['@_id'];
    if (typeof id !== 'string' || !NAME.test(id)) throw new PidfError('a <tuple> needs an id that is an XML name');
    if (seen.has(id)) throw new PidfError(`duplicate tuple id ${id}`);
    seen.add(id);
    const status = t.status as Node | string | undefined;
    if (status === undefined) throw new PidfError(`tuple ${id} has no <status>`);
    const basicText = typeof status === 'object' && status !== null ? text(status.basic) : null;
    let basic: PresenceTuple['basic'];
    if (basicText === 'open' || basicText === 'closed') basic = basicText;
    else if (basicText === null) basic = 'closed'; // <status> without <basic>: nothing says it is reachable
    else throw new PidfError(`tuple ${id}: <basic> must be open or closed`);
    const contacts = (t.contact as unknown[] | undefined) ?? [];
    const c0 = contacts[0];
    const contact = text(c0);
    let priority: number | null = null;
    if (c0 && typeof c0 === 'object' && (c0 as Node)['@_priority'] !== undefined) {
      const p = Number((c0 as Node)['@_priority']);
      if (!Number.isFinite(p) || p < 0 || p > 1) throw new PidfError(`tuple ${id}: contact priority must be between 0 and 1`);
      priority = p;
    }
    tuples.push({ id, basic, contact: contact ? contact.slice(0, MAX_TEXT) : null, priority, notes: texts(t.note), timestamp: text(t.timestamp) });
  }

  let person: PresencePerson | null = null;
  const persons = (root.person as Node[] | undefined) ?? [];
  if (persons.length) {
    const p = persons[0];
    const activities: string[] = [];
    for (const a of (p.activities as unknown[] | undefined) ?? []) {
      if (!a || typeof a !== 'object') continue;
      for (const k of Object.keys(a as Node)) {
        if (k.startsWith('@_') || k === '#text' || k === 'note') continue;
        if (NAME.test(k) && !activities.includes(k) && activities.length < MAX_ITEMS) activities.push(k);
      }
    }
    const id = typeof p['@_id'] === 'string' && NAME.test(p['@_id']) ? p['@_id'] : 'p';
    person = { id, activities, notes: texts(p.note) };
  }
  return { entity, tuples, person, notes: texts(root.note) };
}

/** A PIDF document for `entity` (a SIP URI) holding the tuples, the person and presence-level notes. */
export function renderPidf(entity: string, state: PresenceState): string {
  const presence: Node = {
    '@_xmlns': NS_PIDF,
    '@_xmlns:dm': NS_DM,
    '@_xmlns:rpid': NS_RPID,
    '@_entity': entity,
  };
  presence.tuple = state.tuples.map((t) => {
    const node: Node = { '@_id': t.id, status: { basic: t.basic } };
    if (t.contact) node.contact = t.priority === null ? t.contact : { '#text': t.contact, '@_priority': String(t.priority) };
    if (t.notes.length) node.note = t.notes;
    if (t.timestamp) node.timestamp = t.timestamp;
    return node;
  });
  if (state.notes.length) presence.note = state.notes;
  if (state.person) {
    const person: Node = { '@_id': state.person.id };
    if (state.person.activities.length) {
      const acts: Node = {};
      for (const a of state.person.activities) if (NAME.test(a)) acts[`rpid:${a}`] = '';
      person['rpid:activities'] = acts;
    }
    if (state.person.notes.length) person['dm:note'] = state.person.notes;
    presence['dm:person'] = person;
  }
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + builder.build({ presence }) + '\n';
}

/** True when `name` can be an activity element (RFC 4480 names, or another plain XML name). */
export function isActivityName(name: string): boolean {
  return NAME.test(name);
}
