// PIDF (RFC 3863) with RPID activities (RFC 4480): what real clients publish parses, what we render parses back to
// the same state and is spelled the way text-matching clients read it, and hostile or malformed documents are
// refused with a reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePidf, PidfError, renderPidf } from '../../src/presence/pidf.ts';

// What baresip 1.0's presence module publishes (modules/presence/publisher.c), byte for byte in structure.
const BARESIP = [
  '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
  '<presence xmlns="urn:ietf:params:xml:ns:pidf"',
  '    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"',
  '    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"',
  '    entity="sip:bob@example.test">',
  '  <dm:person id="p4159"><rpid:activities/></dm:person>',
  '  <tuple id="t4109">',
  '    <status>',
  '      <basic>open</basic>',
  '    </status>',
  '    <contact>sip:bob@example.test</contact>',
  '  </tuple>',
  '</presence>',
].join('\r\n');

describe('PIDF parsing', () => {
  it("parses baresip's document: one open tuple with its contact, a person without activities", () => {
    const d = parsePidf(BARESIP);
    assert.equal(d.entity, 'sip:bob@example.test');
    assert.deepEqual(d.tuples, [{ id: 't4109', basic: 'open', contact: 'sip:bob@example.test', priority: null, notes: [], timestamp: null }]);
    assert.deepEqual(d.person, { id: 'p4159', activities: [], notes: [] });
  });

  it('reads RPID activities under any prefix, notes with xml:lang, contact priority and timestamp', () => {
    const d = parsePidf(`<?xml version="1.0"?>
      <presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" xmlns:x="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:carol@example.test">
        <tuple id="a"><status><basic>closed</basic></status><contact priority="0.8">sip:carol@192.0.2.4</contact>
          <note xml:lang="en">in a meeting</note><timestamp>2026-11-23T10:00:00Z</timestamp></tuple>
        <note>office</note>
        <x:person id="me"><r:activities><r:meeting/><r:on-the-phone/></r:activities><x:note>back at 3</x:note></x:person>
      </presence>`);
    assert.deepEqual(d.tuples[0], { id: 'a', basic: 'closed', contact: 'sip:carol@192.0.2.4', priority: 0.8, notes: ['in a meeting'], timestamp: '2026-11-23T10:00:00Z' });
    assert.deepEqual(d.person, { id: 'me', activities: ['meeting', 'on-the-phone'], notes: ['back at 3'] });
    assert.deepEqual(d.notes, ['office']);
  });

  it('decodes entities in text and attributes', () => {
    const d = parsePidf('<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t"><status><basic>open</basic></status><note>fish &amp; chips &lt;3</note></tuple></presence>');
    assert.deepEqual(d.tuples[0].notes, ['fish & chips <3']);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not XML', '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t">', /well-formed/],
    ['a DTD (entity expansion)', '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&lol2;</note></presence>', /DTD/],
    ['another namespace', '<presence xmlns="urn:example" entity="sip:a@b"/>', /namespace/],
    ['another root', '<tuple xmlns="urn:ietf:params:xml:ns:pidf" id="t"/>', /root/],
    ['no entity', '<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="t"><status><basic>open</basic></status></tuple></presence>', /entity/],
    ['a basic neither open nor closed', '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t"><status><basic>maybe</basic></status></tuple></presence>', /open or closed/],
    ['a tuple without id', '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple><status><basic>open</basic></status></tuple></presence>', /id/],
    ['duplicate tuple ids', '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t"><status><basic>open</basic></status></tuple><tuple id="t"><status><basic>open</basic></status></tuple></presence>', /duplicate/],
    ['a tuple without status', '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t"/></presence>', /status/],
    ['a priority above 1', '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t"><status><basic>open</basic></status><contact priority="2">sip:x@y</contact></tuple></presence>', /priority/],
  ];
  for (const [what, xml, why] of bad) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parsePidf(xml), (e: unknown) => e instanceof PidfError && why.test((e as Error).message));
    });
  }
});

describe('PIDF rendering', () => {
  const state = {
    tuples: [
      { id: 'r1', basic: 'open' as const, contact: 'sip:alice@192.0.2.1:5060', priority: 0.9, notes: ['desk & phone'], timestamp: null },
      { id: 'r2', basic: 'closed' as const, contact: null, priority: null, notes: [], timestamp: '2026-11-23T10:00:00Z' },
    ],
    person: { id: 'p', activities: ['busy', 'on-the-phone'], notes: [] },
    notes: ['<b>not markup</b>'],
  };

  it('spells the document as clients read it: default PIDF namespace, rpid: and dm: prefixes', () => {
    const xml = renderPidf('sip:alice@example.test', state);
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>/);
    assert.match(xml, /<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.test">/);
    assert.match(xml, /<tuple id="r1"><status><basic>open<\/basic><\/status><contact priority="0.9">sip:alice@192.0.2.1:5060<\/contact><note>desk &amp; phone<\/note><\/tuple>/);
    assert.match(xml, /<dm:person id="p"><rpid:activities><rpid:busy\/><rpid:on-the-phone\/><\/rpid:activities><\/dm:person>/);
    assert.match(xml, /<note>&lt;b&gt;not markup&lt;\/b&gt;<\/note>/);
  });

  it('parses back to the state it was rendered from', () => {
    const back = parsePidf(renderPidf('sip:alice@example.test', state));
    assert.equal(back.entity, 'sip:alice@example.test');
    assert.deepEqual(back.tuples, state.tuples);
    assert.deepEqual(back.person, state.person);
    assert.deepEqual(back.notes, state.notes);
  });
});
