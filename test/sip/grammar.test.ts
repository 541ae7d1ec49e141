// Scanners from RFC 3261 §25.1 (src/sip/message/grammar.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EMPTY_PARAMS, isToken, isTokenChar, parseNameAddr, parseParams, parseUri, quote, scanQuoted, serializeParams, skipLws, splitComma, textToWire, trimLws, unescapePercent, unquote, wireToText } from '../../src/sip/message/index.ts';

describe('token', () => {
  it('is alphanum and -.!%*_+`\'~ only', () => {
    const allowed = new Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~");
    for (let c = 0; c < 256; c++) assert.equal(isTokenChar(c), allowed.has(String.fromCharCode(c)), `char ${c}`);
    assert.equal(isToken(''), false);
    assert.equal(isToken("!interesting-Method0123456789_*+`.%indeed'~"), true);
    assert.equal(isToken('a b'), false);
  });
});

describe('LWS helpers', () => {
  it('skip and trim SP, HTAB and stray CR/LF', () => {
    assert.equal(skipLws(' \t\r\n x', 0), 5);
    assert.equal(skipLws('abc', 1), 1);
    assert.equal(trimLws(' \t a b \r\n'), 'a b');
    const s = 'untouched';
    assert.equal(trimLws(s), s);
  });
});

describe('scanQuoted', () => {
  it('finds the end of a quoted string, stepping over quoted-pairs', () => {
    assert.equal(scanQuoted('"abc" rest', 0), 5);
    assert.equal(scanQuoted('x"a\\"b"', 1), 7);
    assert.equal(scanQuoted('"a\\\\"b', 0), 5);
    assert.equal(scanQuoted('"unterminated', 0), -1);
    assert.equal(scanQuoted('"ends in a pair\\"', 0), -1);
  });
});

describe('unquote and quote', () => {
  it('removes the quotes and resolves quoted-pairs', () => {
    assert.equal(unquote('"abc"'), 'abc');
    assert.equal(unquote('""'), '');
    assert.equal(unquote('"a\\"b\\\\c\\d"'), 'a"b\\cd');
    assert.equal(unquote('"\\\u0000"'), '\u0000');
  });
  it('leaves a value that is not a whole quoted string as it is', () => {
    for (const v of ['abc', '"abc', 'abc"', '"a"b', '"', '"abc\\"', '']) assert.equal(unquote(v), v, JSON.stringify(v));
  });
  it('quote escapes " and \\ and round-trips through unquote', () => {
    for (const v of ['', 'plain', 'say "hi"', 'back\\slash', '\\"', 'ünï']) {
      const q = quote(v);
      assert.equal(q[0], '"');
      assert.equal(scanQuoted(q, 0), q.length, 'one whole quoted string');
      assert.equal(unquote(q), v);
    }
    assert.equal(quote('a"b\\c'), '"a\\"b\\\\c"');
  });
  it('quote never produces CR or LF, which no quoted-pair can carry (RFC 3261 §25.1)', () => {
    const q = quote('line1\r\nline2\rline3\nline4');
    assert.ok(!/[\r\n]/.test(q), JSON.stringify(q));
    assert.equal(scanQuoted(q, 0), q.length);
  });
});

describe('splitComma', () => {
  it('splits top-level commas and trims', () => {
    assert.deepEqual(splitComma('a, b ,c'), ['a', 'b', 'c']);
    assert.deepEqual(splitComma('  single  '), ['single']);
    assert.deepEqual(splitComma(''), []);
    assert.deepEqual(splitComma(' , ,, '), []);
  });
  it('ignores commas in quoted strings, escaped quotes included, and inside <>', () => {
    assert.deepEqual(splitComma('"a, b" <sip:x>, "c \\", d" <sip:y;p=1,2>;q=1, <sip:z>'), ['"a, b" <sip:x>', '"c \\", d" <sip:y;p=1,2>;q=1', '<sip:z>']);
  });
  it('takes the rest of the value when a quote is never closed', () => {
    assert.deepEqual(splitComma('a, "b, c'), ['a', '"b, c']);
  });
  it('treats a quoted ">" as text, not as the end of a URI', () => {
    assert.deepEqual(splitComma('<sip:a@b>;x=">", <sip:c@d>'), ['<sip:a@b>;x=">"', '<sip:c@d>']);
  });
});

describe('parseParams', () => {
  it('reads names (lower-cased), values (as written, quotes kept) and valueless parameters', () => {
    const p = parseParams(';Tag=AbC;lr;Q=0.5;+sip.instance="<urn:uuid:1>";received=[2001:db8::1]', 0);
    assert.deepEqual([...p!], [
      ['tag', 'AbC'],
      ['lr', null],
      ['q', '0.5'],
      ['+sip.instance', '"<urn:uuid:1>"'],
      ['received', '[2001:db8::1]'],
    ]);
  });
  it('allows LWS around ";" and "="', () => {
    assert.deepEqual([...parseParams('  ;  a  =  1 ;b ; c= "x y" ', 0)!], [
      ['a', '1'],
      ['b', null],
      ['c', '"x y"'],
    ]);
  });
  it('starts at the given offset and is empty at the end', () => {
    assert.deepEqual([...parseParams('<sip:x>;a=1', 7)!], [['a', '1']]);
    assert.equal(parseParams('abc', 3)!.size, 0);
  });
  for (const bad of [';', ';;', ';;a', ';=x', ';a=', ';a= ;b', ';a="open', 'x', ';a b', ';a=b c', ';a=<b>', ';a=b,c', ';ä=1']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseParams(bad, 0), null));
  }
  it('shares one empty, unchangeable list among everything parsed without parameters', () => {
    assert.equal(parseParams('abc', 3), EMPTY_PARAMS);
    assert.equal(parseParams('<sip:x>  ', 7), EMPTY_PARAMS);
    const to = parseNameAddr('<sip:alice@example.test>')!;
    assert.equal(to.params, EMPTY_PARAMS);
    assert.equal((to.uri as { params: unknown }).params, EMPTY_PARAMS);
    assert.equal((parseUri('tel:+15551234') as { params: unknown }).params, EMPTY_PARAMS);
    assert.notEqual(parseNameAddr('<sip:alice@example.test>;tag=1')!.params, EMPTY_PARAMS);
    // The type has no set (ReadonlyMap), nor has the object: past a cast, the shared instance cannot change.
    const mutable = EMPTY_PARAMS as Map<string, string | null>;
    assert.throws(() => mutable.set('tag', 'x'), TypeError);
    assert.throws(() => mutable.delete('tag'), TypeError);
    assert.throws(() => mutable.clear(), TypeError);
    assert.equal(EMPTY_PARAMS.size, 0);
    assert.deepEqual([...EMPTY_PARAMS], []);
  });
  it('keeps a repeated name once, in its first place, with the last value (as a Map would)', () => {
    const p = parseParams(';a=1;B=2;A=3;c', 0)!;
    assert.deepEqual([...p], [['a', '3'], ['b', '2'], ['c', null]]);
    assert.deepEqual([p.size, p.get('a'), p.get('c'), p.has('c'), p.get('d'), p.has('d')], [3, '3', null, true, undefined, false]);
    assert.deepEqual([...p.keys()], ['a', 'b', 'c']);
    assert.deepEqual([...p.values()], ['3', '2', null]);
    assert.deepEqual([...new Map(p)], [...p], 'copies into a Map of its own to edit');
  });
  it('serializeParams writes them back', () => {
    const p = parseParams(';tag=x;lr;q="1"', 0)!;
    assert.equal(serializeParams(p), ';tag=x;lr;q="1"');
    assert.equal(serializeParams(undefined), '');
    assert.equal(serializeParams(new Map()), '');
  });
});

describe('unescapePercent', () => {
  it('decodes %HH in either case, one octet per escape', () => {
    assert.equal(unescapePercent('%61lice'), 'alice');
    assert.equal(unescapePercent('%4a%4A'), 'JJ');
    assert.equal(unescapePercent('null-%00-null'), 'null-\u0000-null');
    assert.equal(unescapePercent('%C3%BC'), '\u00c3\u00bc', 'a wire string: the UTF-8 octets of ü');
  });
  it('does not unescape recursively (RFC 4475 esc01)', () => {
    assert.equal(unescapePercent('v%61lue%25%34%31'), 'value%41');
  });
  it('keeps invalid escapes literally', () => {
    for (const s of ['%', '%4', '%zz', '100%', '%%41', 'a%g1']) assert.equal(unescapePercent(s), s.replace('%%41', '%A'), s);
  });
  it('returns the same string when there is nothing to decode', () => {
    const s = 'plain';
    assert.equal(unescapePercent(s), s);
  });
});

describe('wire strings and text', () => {
  it('convert UTF-8 octets to text and back', () => {
    const text = 'Grüße, 世界';
    const wire = textToWire(text);
    assert.equal(wire, Buffer.from(text, 'utf8').toString('latin1'));
    assert.equal(wireToText(wire), text);
    assert.equal(textToWire('ascii'), 'ascii');
    assert.equal(wireToText('ascii'), 'ascii');
  });
});
