// IRC text rules as pure functions: line budgets, splitting on UTF-8/grapheme boundaries, no CR/LF/NUL/CTCP
// injection from a body, incoming formatting removed, addresses, and the send pacer's token bucket.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_IM_BODY } from '../../src/bridge/protocol.ts';
import { bodyToLines, IRC_LINE_BYTES, ircToText, parseAddress, splitLine, textBudget } from '../../src/bridge/protocols/irc-text.ts';
import { SendPacer } from '../../src/bridge/protocols/send-pacer.ts';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('IRC text', () => {
  it('the budget leaves room for the relayed prefix: the longest relayed line is 512 bytes with CR LF', () => {
    const nick = 'n'.repeat(30);
    const target = '#' + 'c'.repeat(49);
    const budget = textBudget(nick, target);
    const relayed = `:${nick}!${'u'.repeat(11)}@${'h'.repeat(63)} PRIVMSG ${target} :${'x'.repeat(budget)}\r\n`;
    assert.equal(bytes(relayed), IRC_LINE_BYTES);
  });

  it('splits within the budget, never inside a UTF-8 sequence or a grapheme, and loses nothing', () => {
    const family = '👨‍👩‍👧‍👦'; // one grapheme, 25 bytes
    const line = ('aé€😀' + family + ' ').repeat(100);
    for (const budget of [30, 64, 101, 400]) {
      const pieces = splitLine(line, budget);
      assert.equal(pieces.join(''), line);
      for (const p of pieces) {
        assert.ok(bytes(p) <= budget, `${bytes(p)} > ${budget}`);
        assert.ok(!p.includes('\uFFFD'));
        assert.equal(Buffer.from(p, 'utf8').toString('utf8'), p); // whole code points (lone surrogates would not round-trip)
        assert.ok(!/^\u200D|\u200D$/.test(p), 'the family emoji was not cut at a ZWJ');
      }
    }
  });

  it('prefers a break after a space in the second half of the piece', () => {
    assert.deepEqual(splitLine('a quick brown fox', 10), ['a quick ', 'brown fox']);
    // The only space is in the first half: cutting there would waste half a line, so the word is cut instead.
    assert.deepEqual(splitLine('hello wonderful world', 12), ['hello wonder', 'ful world']);
    assert.deepEqual(splitLine('abcdefghij klm', 8), ['abcdefgh', 'ij klm']);
  });

  it('a grapheme over the budget (combining marks) is split between code points', () => {
    const zalgo = 'a' + '\u0301'.repeat(40); // 81 bytes, one grapheme
    const pieces = splitLine(zalgo, 20);
    assert.equal(pieces.join(''), zalgo);
    assert.ok(pieces.every((p) => bytes(p) <= 20));
  });

  it('a body is one PRIVMSG text per line: CR, LF, NUL and \\x01 never reach the wire', () => {
    const lines = bodyToLines('one\r\nPRIVMSG #x :hi\rthree\n\n\0\x01ACTION waves\x01\n   \ttab\tok', 400);
    assert.deepEqual(lines, ['one', 'PRIVMSG #x :hi', 'three', 'ACTION waves', '   \ttab\tok']);
    for (const l of lines) assert.ok(!/[\0\r\n\x01]/.test(l));
  });

  it('a body over MAX_IM_BODY is refused, not truncated', () => {
    assert.throws(() => bodyToLines('x'.repeat(MAX_IM_BODY + 1), 400), RangeError);
    assert.equal(bodyToLines('x'.repeat(MAX_IM_BODY), 400).join('').length, MAX_IM_BODY);
  });

  it('incoming text loses mIRC formatting and controls, and is bounded', () => {
    assert.equal(ircToText('\x02bold\x02 \x0304,12red on blue\x03 \x1ditalic\x1d \x04ff0000hex\x0f\x07'), 'bold red on blue italic hex');
    assert.equal(ircToText('no change: 3 < 4, ü'), 'no change: 3 < 4, ü');
    const big = ircToText('é'.repeat(MAX_IM_BODY));
    assert.ok(bytes(big) <= MAX_IM_BODY);
    assert.ok(!big.includes('\uFFFD'));
  });

  it('addresses: nick, channel, "#channel/nick"; anything else is refused', () => {
    assert.deepEqual(parseAddress('bob'), { target: 'bob' });
    assert.deepEqual(parseAddress('[away]_^'), { target: '[away]_^' });
    assert.deepEqual(parseAddress('#chan'), { target: '#chan' });
    assert.deepEqual(parseAddress('#chan/bob'), { target: '#chan', addressee: 'bob' });
    assert.deepEqual(parseAddress('#a/b/bob'), { target: '#a/b', addressee: 'bob' });
    for (const bad of ['', 'bob smith', '9lives', 'bob\r\nQUIT', '#a,#b', '#a b', 'x'.repeat(31), '#', 'bob:']) {
      assert.equal(parseAddress(bad), null, JSON.stringify(bad));
    }
  });
});

describe('send pacer', () => {
  const writer = (log: { line: string; at: number }[]) => (line: string, done: (err?: Error) => void) => {
    log.push({ line, at: Date.now() });
    setImmediate(() => done());
  };

  it('a burst goes at once, then one line per interval, in order', async () => {
    const log: { line: string; at: number }[] = [];
    const pacer = new SendPacer(writer(log), { burst: 3, intervalMs: 100, maxQueuedBytes: 10_000 });
    const t0 = Date.now();
    await Promise.all([pacer.send(['a', 'b']), pacer.send(['c', 'd', 'e'])]);
    assert.deepEqual(log.map((l) => l.line), ['a', 'b', 'c', 'd', 'e']);
    assert.ok(log[2].at - t0 < 100, 'the burst of three was not held back');
    assert.ok(log[3].at - t0 >= 95 && log[4].at - t0 >= 195, `paced: ${log.map((l) => l.at - t0)}`);
  });

  it('what waits is bounded: a send over the bound is refused', async () => {
    const pacer = new SendPacer(writer([]), { burst: 1, intervalMs: 10_000, maxQueuedBytes: 10 });
    const first = pacer.send(['x', '12345678']); // 'x' goes, 8 wait
    await assert.rejects(pacer.send(['abc']), /queue full/);
    pacer.close(new Error('closed'));
    await assert.rejects(first, /closed/);
    await assert.rejects(pacer.send(['y']), /closed/);
  });

  it('a failed write rejects its send and skips the rest of its lines', async () => {
    const log: string[] = [];
    const pacer = new SendPacer((line, done) => {
      log.push(line);
      setImmediate(() => done(line === 'bad' ? new Error('socket gone') : undefined));
    }, { burst: 10, intervalMs: 100, maxQueuedBytes: 1000 });
    await assert.rejects(pacer.send(['ok', 'bad', 'later']), /socket gone/);
    await pacer.send(['next']);
    assert.ok(log.includes('next'));
  });
});
