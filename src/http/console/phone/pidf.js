// PIDF (RFC 3863) with RPID activities (RFC 4480): reading NOTIFY bodies and writing our own PUBLISH body.

const PIDF = 'urn:ietf:params:xml:ns:pidf';
const DM = 'urn:ietf:params:xml:ns:pidf:data-model';
const RPID = 'urn:ietf:params:xml:ns:pidf:rpid';

/** { basic: 'open'|'closed', activities: string[], notes: string[] }, or null for a body that is not PIDF. */
export function parsePidf(xml) {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  if (doc.getElementsByTagName('parsererror').length || doc.documentElement.namespaceURI !== PIDF) return null;
  const basics = [...doc.getElementsByTagNameNS(PIDF, 'basic')].map((e) => e.textContent.trim());
  const activities = [];
  for (const list of doc.getElementsByTagNameNS(RPID, 'activities')) {
    for (const a of list.children) {
      const name = a.localName === 'other' ? a.textContent.trim() : a.localName;
      if (name && !activities.includes(name)) activities.push(name);
    }
  }
  const notes = [];
  for (const ns of [PIDF, DM]) for (const n of doc.getElementsByTagNameNS(ns, 'note')) if (n.textContent.trim() && !notes.includes(n.textContent.trim())) notes.push(n.textContent.trim());
  return { basic: basics.includes('open') ? 'open' : 'closed', activities, notes };
}

const escapeXml = (s) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);

/** A PIDF document for our own PUBLISH: one tuple (this device), the note, and a person with the activity and note. */
export function buildPidf(entity, tupleId, { basic, activity, note }) {
  const person = activity || note
    ? `<dm:person id="p-${escapeXml(tupleId)}">${activity ? `<rpid:activities><rpid:${activity}/></rpid:activities>` : ''}${note ? `<dm:note>${escapeXml(note)}</dm:note>` : ''}</dm:person>`
    : '';
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<presence xmlns="${PIDF}" xmlns:dm="${DM}" xmlns:rpid="${RPID}" entity="${escapeXml(entity)}">` +
    `<tuple id="${escapeXml(tupleId)}"><status><basic>${basic}</basic></status></tuple>` +
    (note ? `<note>${escapeXml(note)}</note>` : '') +
    person +
    `</presence>`
  );
}

/** How a state reads in the buddy list. */
export function describe(state) {
  if (!state) return 'pending';
  if (state.basic !== 'open') return 'offline';
  return state.activities.length ? state.activities.join(', ') : 'available';
}

/** The colour of the dot (CSS class). */
export function dotClass(state) {
  if (!state || state.basic !== 'open') return 'closed';
  if (state.activities.some((a) => ['busy', 'on-the-phone', 'meeting'].includes(a))) return 'busy';
  if (state.activities.some((a) => ['away', 'vacation', 'sleeping'].includes(a))) return 'away';
  return 'open';
}
