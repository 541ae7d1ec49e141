// SIP, SIPS and tel URIs (src/sip/message/uri.ts): parsing, formatting, the address-of-record key and
// RFC 3261 §19.1.4 equality (with the RFC's own examples).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aorOf, EMPTY_PARAMS, formatUri, isIPv4, isIPv6, isHostname, isSipUri, isTelUri, NO_HEADERS, parseUri, sipUriEquals, type SipUri, type TelUri } from '../../src/sip/message/index.ts';

function sip(s: string): SipUri {
  const u = parseUri(s);
  assert.ok(u && isSipUri(u), `${s} should parse as a SIP URI`);
  return u;
}

describe('SIP and SIPS URIs', () => {
  it('reads every component', () => {
    const u = sip('sips:alice:secret@Atlanta.Example.com:5061;transport=TCP;lr;maddr=239.255.255.1;Ttl=15?subject=project%20x&priority=urgent');
    assert.equal(u.scheme, 'sips');
    assert.equal(u.user, 'alice');
    assert.equal(u.password, 'secret');
    assert.equal(u.host, 'Atlanta.Example.com', 'host as written');
    assert.equal(u.port, 5061);
    assert.deepEqual([...u.params], [
      ['transport', 'TCP'],
      ['lr', null],
      ['maddr', '239.255.255.1'],
      ['ttl', '15'],
    ]);
    assert.deepEqual(u.headers, [
      ['subject', 'project%20x'],
      ['priority', 'urgent'],
    ]);
  });

  it('reads the minimal forms', () => {
    const a = sip('sip:example.test');
    assert.deepEqual([a.user, a.password, a.host, a.port, a.params.size, a.headers.length], [null, null, 'example.test', null, 0, 0]);
    assert.equal(sip('sip:192.0.2.1:5060').port, 5060);
    assert.equal(sip('sip:host.example.com.').host, 'host.example.com.', 'a fully qualified name with its trailing dot');
  });

  it('shares the empty parameter list and header components of a URI without any', () => {
    const a = sip('sip:alice@example.test');
    assert.equal(a.params, EMPTY_PARAMS);
    assert.equal(a.headers, NO_HEADERS);
    assert.ok(Object.isFrozen(NO_HEADERS));
    assert.notEqual(sip('sip:a@b?x=1').headers, NO_HEADERS);
  });

  it('lower-cases parameter names however they are written, the common ones and others alike', () => {
    const u = sip('sip:a@b;Transport=TCP;LR;tag=x;Branch=y;X-Custom=Z;%74tl=1');
    assert.deepEqual([...u.params], [['transport', 'TCP'], ['lr', null], ['tag', 'x'], ['branch', 'y'], ['x-custom', 'Z'], ['%74tl', '1']]);
    for (const bad of ['sip:a@b;=x', 'sip:a@b;x=', 'sip:a@b;x=1=2', 'sip:a@b;x y', 'sip:a@b;%7', 'sip:a@b:65536', 'sip:a@b:123456', 'sip:a@b:']) assert.equal(parseUri(bad), null, bad);
    assert.equal(sip('sip:a@b:00065').port, 65);
  });

  it('takes the scheme in any case', () => {
    assert.equal(sip('SIP:ALICE@AtLanTa.CoM').scheme, 'sip');
    assert.equal(sip('SiPs:a@b').scheme, 'sips');
  });

  it('keeps escapes in the user part as written', () => {
    const u = sip('sip:%75se%72@example.com');
    assert.equal(u.user, '%75se%72');
    assert.equal(formatUri(u), 'sip:%75se%72@example.com');
  });

  it('accepts every user-unreserved and unreserved character, and a password (RFC 4475 intmeth)', () => {
    const u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
    assert.equal(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    assert.equal(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    assert.equal(u.host, 'example.com');
  });

  it('reads a semicolon in the user part as part of the user (RFC 4475 semiuri)', () => {
    const u = sip('sip:user;par=u%40example.net@example.com');
    assert.equal(u.user, 'user;par=u%40example.net');
    assert.equal(u.host, 'example.com');
    assert.equal(u.params.size, 0);
  });

  it('reads escaped parameter names and values without unescaping them (RFC 4475 esc01)', () => {
    const u = sip('sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31');
    assert.deepEqual([...u.params], [
      ['%6c%72', null],
      ['n%61me', 'v%61lue%25%34%31'],
    ]);
  });

  it('reads escaped headers (RFC 4475 regescrt)', () => {
    assert.deepEqual(sip('sip:user@example.com?Route=%3Csip:sip.example.com%3E').headers, [['Route', '%3Csip:sip.example.com%3E']]);
    assert.deepEqual(sip('sip:a@b?subject=').headers, [['subject', '']]);
  });

  it('reads IPv6 references (RFC 5118)', () => {
    const a = sip('sip:[2001:db8::10]');
    assert.equal(a.host, '[2001:db8::10]');
    assert.equal(a.port, null);
    const b = sip('sip:[2001:db8::10]:5070');
    assert.equal(b.host, '[2001:db8::10]');
    assert.equal(b.port, 5070);
    // §4.3: the last group is part of the address, there is no port.
    const c = sip('sip:[2001:db8::10:5070]');
    assert.equal(c.host, '[2001:db8::10:5070]');
    assert.equal(c.port, null);
    assert.equal(sip('sip:ted@[::ffff:192.0.2.2]').host, '[::ffff:192.0.2.2]');
    assert.equal(sip('sip:user@[2001:db8::192.0.2.1]').host, '[2001:db8::192.0.2.1]');
    assert.equal(sip('sip:[::1];transport=tcp').params.get('transport'), 'tcp');
  });

  it('tolerates the three-colon IPv6 reference that a bug in the RFC 3261 ABNF allows (RFC 5118 §4.10)', () => {
    assert.equal(sip('sip:user@[2001:db8:::192.0.2.1]').host, '[2001:db8:::192.0.2.1]');
  });

  for (const bad of [
    '',
    'sip',
    'sip:',
    'sip:@example.com',
    'sip:user@',
    'sip:host:',
    'sip:host:65536',
    'sip:host:123456',
    'sip:host:5o6o',
    'sip:ho st',
    'sip:host;',
    'sip:host;=v',
    'sip:host;p=',
    'sip:host?',
    'sip:host?=v',
    'sip:host?noequals',
    'sip:us<er@host',
    'sip:us"er@host',
    'sip:user@host@host',
    'sip:user:pa;ss@host',
    'sip:%zz@host',
    'sip:%4@host',
    'sip:user@%41host',
    'sip:-host.example.com',
    'sip:host-.example.com',
    'sip:host..example.com',
    'sip:host.123',
    'sip:1.2.3.256',
    'sip:1.2.3',
    'sip:2001:db8::10', // RFC 5118 §4.2: IPv6 without brackets
    'sip:[2001:db8::10',
    'sip:[2001:db8::10]x',
    'sip:[2001:db8:::10]',
    'sip:[1:2:3:4:5:6:7:8:9]',
    'sip:[12345::1]',
    'sip:[::g]',
    'sip:[]',
    'sip:[1::2::3]',
    'sip:host;transport=tcp;x=<a>',
    '<sip:user@example.com>',
    ' sip:user@example.com',
    'sip:user@example.com ',
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseUri(bad), null));
  }
});

describe('tel URIs', () => {
  it('reads a global number with visual separators and parameters', () => {
    const u = parseUri('tel:+1-201-555-0123;ext=42;ISUB=abc');
    assert.ok(u && isTelUri(u));
    assert.equal((u as TelUri).number, '+1-201-555-0123');
    assert.deepEqual([...(u as TelUri).params], [
      ['ext', '42'],
      ['isub', 'abc'],
    ]);
  });
  it('reads a local number with its phone-context', () => {
    const u = parseUri('tel:7042;phone-context=example.com') as TelUri;
    assert.equal(u.number, '7042');
    assert.equal(u.params.get('phone-context'), 'example.com');
  });
  for (const bad of ['tel:', 'tel:abc-xyz', 'tel:+', 'tel:--', 'tel:123;', 'tel:123;=x', 'tel:12 34']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseUri(bad), null));
  }
});

describe('other absolute URIs', () => {
  it('keeps them whole without interpreting them (RFC 4475 unkscm, novelsc, unksm2)', () => {
    for (const s of ['nobodyKnowsThisScheme:totallyopaquecontent', 'soap.beep://192.0.2.103:3002', 'isbn:2983792873', 'http://www.example.com', 'name:John_Smith', 'urn:service:sos']) {
      const u = parseUri(s);
      assert.ok(u, s);
      assert.equal(u.scheme, s.slice(0, s.indexOf(':')).toLowerCase());
      assert.equal(formatUri(u), s);
    }
  });
  for (const bad of [':x', '1abc:x', 'a b:c', 'http://a b', 'http://a<b>', 'http://"x"', 'x:\u0000']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseUri(bad), null));
  }
});

describe('formatUri', () => {
  for (const s of [
    'sip:alice@atlanta.com',
    'sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr',
    'sip:+12125551212@gw.example.com;user=phone?subject=hi&priority=urgent',
    'sip:%00@host5.example.com',
    'tel:+1-201-555-0123;ext=42',
  ]) {
    it(`writes ${s} back unchanged`, () => assert.equal(formatUri(parseUri(s)!), s));
  }
  it('writes parameter names lower-case (they compare case-insensitively)', () => {
    assert.equal(formatUri(parseUri('sip:a@b;Transport=TCP')!), 'sip:a@b;transport=TCP');
  });
});

describe('aorOf (RFC 3261 §10.3: the To URI without port and parameters)', () => {
  it('unescapes the user, lower-cases the host and drops port, parameters and headers', () => {
    assert.equal(aorOf(sip('sip:%61lice@AtLanTa.CoM:5070;transport=tcp?x=y')), 'alice@atlanta.com');
  });
  it('keeps the user case-sensitive', () => assert.equal(aorOf(sip('sip:Alice@example.com')), 'Alice@example.com'));
  it('is the host alone without a user', () => assert.equal(aorOf(sip('sip:Example.COM')), 'example.com'));
  it('does not truncate at an escaped NUL (RFC 4475 escnull)', () => {
    const aor = aorOf(sip('sip:null-%00-null@example.com'));
    assert.equal(aor, 'null-\u0000-null@example.com');
    assert.notEqual(aorOf(sip('sip:%00@host5.example.com')), aorOf(sip('sip:%00%00@host5.example.com')));
  });
  it('treats sip and sips AORs alike, and IPv6 hosts case-insensitively', () => {
    assert.equal(aorOf(sip('sips:bob@[2001:DB8::1]')), aorOf(sip('sip:bob@[2001:db8::1]')));
  });
});

describe('sipUriEquals (RFC 3261 §19.1.4)', () => {
  const eq = (a: string, b: string) => sipUriEquals(sip(a), sip(b)) && sipUriEquals(sip(b), sip(a));
  const ne = (a: string, b: string) => !sipUriEquals(sip(a), sip(b)) && !sipUriEquals(sip(b), sip(a));

  // "The URIs within each of the following sets are equivalent:"
  for (const set of [
    ['sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on'],
    ['sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com'],
    ['sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x'],
  ]) {
    it(`RFC example: ${set.join(' = ')}`, () => {
      for (const a of set) for (const b of set) assert.ok(eq(a, b), `${a} = ${b}`);
    });
  }

  // "The URIs within each of the following sets are not equivalent:"
  for (const [a, b, why] of [
    ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP', 'different usernames'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060', 'can resolve to different ports'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp', 'can resolve to different transports'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp', 'can resolve to different port and transports'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting', 'different header component'],
    ['sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4', "even though that's what phone21.boxesbybob.com resolves to"],
  ] as const) {
    it(`RFC example: ${a} ≠ ${b} (${why})`, () => assert.ok(ne(a, b)));
  }

  it('RFC example: equality is not transitive', () => {
    assert.ok(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;security=on'));
    assert.ok(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;security=off'));
    assert.ok(ne('sip:carol@chicago.com;security=on', 'sip:carol@chicago.com;security=off'));
  });

  it('never equates SIP and SIPS', () => assert.ok(ne('sip:a@b', 'sips:a@b')));
  it('compares user, ttl, method and maddr even when only one URI has them', () => {
    for (const p of ['user=phone', 'ttl=1', 'method=INVITE', 'maddr=192.0.2.1', 'transport=udp']) assert.ok(ne('sip:a@b', `sip:a@b;${p}`), p);
    assert.ok(ne('sip:a@b;ttl=1', 'sip:a@b;ttl=2'));
  });
  it('compares header components by value, whatever their number', () => {
    assert.ok(ne('sip:a@b?subject=one', 'sip:a@b?subject=two'));
    assert.ok(ne('sip:a@b?subject=one', 'sip:a@b?priority=one'));
    assert.ok(eq('sip:a@b?Subject=x', 'sip:a@b?subject=x'), 'header names are case-insensitive');
  });
  it('distinguishes an omitted password from an empty one', () => {
    assert.ok(ne('sip:a@b', 'sip:a:@b'));
    assert.ok(ne('sip:a:x@b', 'sip:a:y@b'));
    assert.ok(eq('sip:a:%78@b', 'sip:a:x@b'), 'escapes in the password are equivalent too');
  });
  it('treats escaped unreserved characters as the characters, in every component', () => {
    assert.ok(eq('sip:a@b;transport=%74cp', 'sip:a@b;transport=tcp'));
    assert.ok(eq('sip:a@b;%6D%61ddr=192.0.2.1', 'sip:a@b;maddr=192.0.2.1'), 'an escaped maddr is still maddr');
    assert.ok(eq('sip:a@b;foo=%61', 'sip:a@b;foo=a'));
    assert.ok(eq('sip:a@b?subject=%61', 'sip:a@b?subject=a'));
    assert.ok(eq('sip:a%2db@h', 'sip:a-b@h'));
    assert.ok(eq('sip:a%3bb@h', 'sip:a%3Bb@h'), 'hex digits compare case-insensitively');
  });
  it('does not treat an escaped reserved character as the character', () => {
    assert.ok(ne('sip:a%3Bb@h', 'sip:a;b@h'));
    assert.ok(ne('sip:a%2Cb@h', 'sip:a,b@h'));
  });
  it('compares the user case-sensitively and the host not', () => {
    assert.ok(ne('sip:Bob@h', 'sip:bob@h'));
    assert.ok(eq('sip:bob@H.Example.COM', 'sip:bob@h.example.com'));
    assert.ok(eq('sip:bob@[2001:DB8::1]', 'sip:bob@[2001:db8::1]'));
  });
});

describe('host grammar helpers', () => {
  it('isIPv4', () => {
    for (const h of ['0.0.0.0', '192.0.2.1', '255.255.255.255', '010.1.1.1']) assert.equal(isIPv4(h), true, h);
    for (const h of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1.2.3.4.', 'a.b.c.d', '1.2.3.-4', '1.2.3.4444']) assert.equal(isIPv4(h), false, h);
  });
  it('isHostname', () => {
    for (const h of ['a', 'example.com', 'example.com.', 'a-b.c-d.example', 'x1.y2.z', '1a.example.com']) assert.equal(isHostname(h), true, h);
    for (const h of ['', '.', '-a.com', 'a-.com', 'a..com', '1.2.3.4', 'example.123', 'a_b.com', 'a b.com', 'x'.repeat(64) + '.com', '.example.com']) {
      assert.equal(isHostname(h), false, h);
    }
  });
  it('isIPv6', () => {
    for (const h of ['::', '::1', '1::', '2001:db8::10', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::ffff:192.0.2.10', '2001:db8::192.0.2.1', '1:2:3:4:5:6:192.0.2.1', 'FE80::A']) {
      assert.equal(isIPv6(h), true, h);
    }
    for (const h of ['', ':', '1', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1::2', '1::2:', '12345::', '::g', '1.2.3.4', '::1.2.3', '1:2:3:4:5:6:7:192.0.2.1', '2001:db8:::1']) {
      assert.equal(isIPv6(h), false, h);
    }
  });
});
