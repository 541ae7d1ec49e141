// name-addr / addr-spec values (src/sip/message/name-addr.ts): From, To, Contact, Route and the like.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatNameAddr, formatUri, isSipUri, parseNameAddr, parseUri, tagOf, type NameAddr, type SipUri } from '../../src/sip/message/index.ts';

function na(s: string): NameAddr {
  const v = parseNameAddr(s);
  assert.ok(v, `${JSON.stringify(s)} should parse`);
  return v;
}

describe('parseNameAddr', () => {
  it('reads a quoted display name, the URI and header parameters', () => {
    const v = na('"Alice Liddell" <sip:alice@example.test;transport=tcp>;tag=88sja8x;expires=60');
    assert.equal(v.displayName, 'Alice Liddell');
    assert.equal(formatUri(v.uri), 'sip:alice@example.test;transport=tcp');
    assert.deepEqual([...v.params], [
      ['tag', '88sja8x'],
      ['expires', '60'],
    ]);
    assert.equal(tagOf(v), '88sja8x');
  });

  it('resolves quoted-pairs in the display name (RFC 4475 wsinv)', () => {
    assert.equal(na('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>').displayName, 'J Rosenberg \\"');
    assert.equal(na('"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33').params.get('q'), '0.33');
    assert.equal(na('"" <sip:a@b>').displayName, '');
  });

  it('reads a token display name, several tokens with LWS collapsed', () => {
    assert.equal(na("token1~` token2'+_   token3*%!.- <sip:mundane@example.com>").displayName, "token1~` token2'+_ token3*%!.-");
    assert.equal(na('A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe').displayName, 'A. Bell');
  });

  it('accepts no LWS between a token display name and "<" (RFC 4475 lwsdisp)', () => {
    const v = na('caller<sip:caller@example.com>;tag=323');
    assert.equal(v.displayName, 'caller');
    assert.equal(tagOf(v), '323');
  });

  it('has no display name for <uri> or an addr-spec', () => {
    assert.equal(na('<sip:a@b>').displayName, null);
    assert.equal(na('sip:a@b').displayName, null);
  });

  it('reads parameters after an addr-spec as header parameters, not URI parameters (RFC 4475 cparam01)', () => {
    const v = na('sip:+19725552222@gw1.example.net;unknownparam');
    assert.equal((v.uri as SipUri).params.size, 0);
    assert.deepEqual([...v.params], [['unknownparam', null]]);
  });

  it('keeps parameters inside <> with the URI (RFC 4475 cparam02)', () => {
    const v = na('<sip:+19725552222@gw1.example.net;unknownparam>');
    assert.deepEqual([...(v.uri as SipUri).params], [['unknownparam', null]]);
    assert.equal(v.params.size, 0);
  });

  it('keeps escaped URI headers inside <> (RFC 4475 regescrt)', () => {
    const v = na('<sip:user@example.com?Route=%3Csip:sip.example.com%3E>');
    assert.deepEqual((v.uri as SipUri).headers, [['Route', '%3Csip:sip.example.com%3E']]);
  });

  it('reads LWS around parameters and an addr-spec followed by LWS (RFC 4475 wsinv To)', () => {
    const v = na('sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n');
    assert.equal(tagOf(v), '1918181833n');
    assert.equal((v.uri as SipUri).host, 'chair-dnrc.example.com');
  });

  it('reads other URI schemes (RFC 4475 unksm2) and tel URIs', () => {
    assert.equal(na('<http://www.example.com>;tag=3234233').uri.scheme, 'http');
    assert.equal(na('isbn:2983792873').uri.scheme, 'isbn');
    const tel = na('<tel:+1-201-555-0123>;tag=x');
    assert.equal(tel.uri.scheme, 'tel');
    // In addr-spec form a ';' ends the URI, so phone-context becomes a header parameter (RFC 3261 §20.10).
    assert.equal(na('tel:7042;phone-context=example.com').params.get('phone-context'), 'example.com');
  });

  it('reads IPv6 references in the URI (RFC 5118)', () => {
    const v = na('"Caller" <sip:caller@[2001:db8::1]>');
    assert.ok(isSipUri(v.uri));
    assert.equal(v.uri.host, '[2001:db8::1]');
  });

  it('reads a quoted parameter value with its quotes, and a quoted "<" in it', () => {
    const v = na('<sip:a@b>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1');
    assert.equal(v.params.get('+sip.instance'), '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"');
    assert.equal(v.params.get('reg-id'), '1');
  });

  for (const [bad, why] of [
    ['sip:user@example.com?Route=%3Csip:sip.example.com%3E', 'URI headers in an addr-spec need <> (RFC 4475 regbadct)'],
    ['"Watson, Thomas" < sip:t.watson@example.org >', 'LWS inside <> (RFC 4475 badaspec)'],
    ['Watson, Thomas <sip:t.watson@example.org>', 'a comma in an unquoted display name (RFC 4475 baddn)'],
    ['"Mr. J. User <sip:j.user@example.com>', 'an unterminated quoted string (RFC 4475 quotbal)'],
    ['"Joe" <sip:joe@example.org>;;;;', 'empty parameters (RFC 4475 badinv01)'],
    ['<sip:a@b', 'no closing >'],
    ['"x" sip:a@b', 'a display name needs <>'],
    ['<sip:a@b> junk', 'text after the parameters'],
    ['<sip:a@b>;tag', 'fine'],
    ['<>', 'an empty URI'],
    ['', 'nothing'],
    ['*', 'the wildcard is not a name-addr'],
    ['<sip:a@b>, <sip:c@d>', 'two values (split lists first)'],
    ['<sip:a@b>;tag="unterminated', 'an unterminated quoted parameter'],
    ['Bell\u0000 <sip:a@b>', 'a control character in a token display name'],
    ['\u00a0Bell <sip:a@b>', 'a non-breaking space (octet A0) before a token display name'],
  ] as const) {
    if (why === 'fine') continue;
    it(`rejects ${JSON.stringify(bad)}: ${why}`, () => assert.equal(parseNameAddr(bad), null));
  }
});

describe('formatNameAddr', () => {
  it('always writes angle brackets and quotes the display name', () => {
    assert.equal(formatNameAddr(na('sip:a@b;tag=1')), '<sip:a@b>;tag=1');
    assert.equal(formatNameAddr(na('A. Bell <sip:a@b>')), '"A. Bell" <sip:a@b>');
  });

  it('escapes quotes and backslashes, and the result parses back to the same value', () => {
    const v: NameAddr = { displayName: 'say "hi" \\ bye', uri: parseUri('sip:a@b')!, params: new Map([['tag', 'x']]) };
    const text = formatNameAddr(v);
    assert.equal(text, '"say \\"hi\\" \\\\ bye" <sip:a@b>;tag=x');
    const back = na(text);
    assert.equal(back.displayName, v.displayName);
    assert.deepEqual([...back.params], [...v.params]);
  });

  it('never writes a line break, whatever the display name holds', () => {
    const v: NameAddr = { displayName: 'evil\r\nVia: SIP/2.0/UDP attacker\rx\ny', uri: parseUri('sip:a@b')!, params: new Map() };
    const text = formatNameAddr(v);
    assert.ok(!/[\r\n]/.test(text), JSON.stringify(text));
    assert.ok(na(text), 'and it still parses');
  });
});
