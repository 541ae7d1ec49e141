// Cutting SIP messages out of a byte stream (src/sip/transport/stream-framer.ts, RFC 3261 §18.3, RFC 5626 §4.4.1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentLengthOf, StreamFramer, type FrameEvent } from '../../src/sip/transport/stream-framer.ts';

const MAX = 65535;

function msg(lines: string[], body = ''): Buffer {
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body, 'latin1');
}

const HEAD = ['OPTIONS sip:a@example.test SIP/2.0', 'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1', 'Call-ID: 1@x', 'CSeq: 1 OPTIONS'];
const A = msg([...HEAD, 'Content-Length: 0']);
const B = msg([...HEAD.slice(0, 2), 'Call-ID: 2@x', 'CSeq: 2 MESSAGE', 'Content-Type: text/plain', 'Content-Length: 14'], 'hello\r\n\r\nworld');
const C = msg([...HEAD.slice(0, 2), 'Call-ID: 3@x', 'CSeq: 3 MESSAGE', 'l:5'], '\r\n\r\n\r');
const D = msg([...HEAD.slice(0, 2), 'Call-ID: 4@x', 'CSeq: 4 OPTIONS']); // no Content-Length: no body

/** Feeds `chunks` to a fresh framer; returns the events as comparable values. */
function run(chunks: Buffer[], max = MAX): Array<string | { error: string; head: string | null }> {
  const f = new StreamFramer(max);
  const out: FrameEvent[] = [];
  for (const c of chunks) f.push(c, out);
  return out.map((e) => (e.kind === 'message' ? e.data.toString('latin1') : e.kind === 'ping' ? 'PING' : { error: e.reason, head: e.head && e.head.toString('latin1') }));
}

function split(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

const s = (b: Buffer) => b.toString('latin1');

describe('StreamFramer', () => {
  it('cuts pipelined messages out of one chunk, bodies by Content-Length (full or compact)', () => {
    assert.deepEqual(run([Buffer.concat([A, B, C, D, A])]), [s(A), s(B), s(C), s(D), s(A)]);
  });

  for (const size of [1, 2, 3, 7, 64, 1000]) {
    it(`gives the same messages when the stream arrives in ${size}-byte pieces`, () => {
      assert.deepEqual(run(split(Buffer.concat([A, B, C, D, A]), size)), [s(A), s(B), s(C), s(D), s(A)]);
    });
  }

  it('waits for the rest of a body before emitting', () => {
    const f = new StreamFramer(MAX);
    const out: FrameEvent[] = [];
    f.push(B.subarray(0, B.length - 1), out);
    assert.equal(out.length, 0);
    assert.equal(f.pending, B.length - 1);
    f.push(B.subarray(B.length - 1), out);
    assert.equal(out.length, 1);
    assert.equal(f.pending, 0);
  });

  it('answers a CRLFCRLF keepalive with a ping event, even split, and between messages', () => {
    const ping = Buffer.from('\r\n\r\n');
    assert.deepEqual(run([ping]), ['PING']);
    assert.deepEqual(run(split(ping, 1)), ['PING']);
    assert.deepEqual(run([Buffer.concat([A, ping, ping, B])]), [s(A), 'PING', 'PING', s(B)]);
    assert.deepEqual(run(split(Buffer.concat([A, ping, B]), 1)), [s(A), 'PING', s(B)]);
  });

  it('skips a lone CRLF (RFC 3261 §7.5) without calling it a ping', () => {
    assert.deepEqual(run([Buffer.concat([Buffer.from('\r\n'), A, Buffer.from('\r\n'), B])]), [s(A), s(B)]);
    assert.deepEqual(run([Buffer.from('\r\n'), A]), [s(A)]);
  });

  it('frames bare-LF messages', () => {
    const lf = Buffer.from('OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nContent-Length: 2\n\nhi', 'latin1');
    assert.deepEqual(run([Buffer.concat([lf, A])]), [s(lf), s(A)]);
  });

  it('reads Content-Length however it is spelled', () => {
    for (const line of ['content-length: 3', 'CONTENT-LENGTH:3', 'Content-Length   :   3  ', 'L: 3', 'l:3']) {
      const m = msg([...HEAD, line], 'abc');
      assert.deepEqual(run([Buffer.concat([m, A])]), [s(m), s(A)], line);
    }
  });

  it('does not mistake other headers starting with l or c for Content-Length', () => {
    const m = msg([...HEAD, 'Location: 99', 'Content-Type: text/plain', 'Lang: 5', 'CL: 7', 'Content-Length: 1'], 'x');
    assert.deepEqual(run([Buffer.concat([m, A])]), [s(m), s(A)]);
  });

  it('does not change a message it emitted when more data arrives later', () => {
    const f = new StreamFramer(MAX);
    const out: FrameEvent[] = [];
    const stream = Buffer.concat([A, B, C, D]);
    const pieces = split(stream, 5);
    const kept: Array<{ data: Buffer; copy: string }> = [];
    for (const p of pieces) {
      f.push(p, out);
      for (const e of out) if (e.kind === 'message') kept.push({ data: e.data, copy: e.data.toString('latin1') });
      out.length = 0;
      for (const k of kept) assert.equal(k.data.toString('latin1'), k.copy);
    }
    assert.equal(kept.length, 4);
  });

  it('reports a header section that grows past the limit without an end', () => {
    assert.deepEqual(run([Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nX: ' + 'a'.repeat(2000))], 1024), [{ error: 'too-large', head: null }]);
  });

  it('reports a message whose Content-Length takes it past the limit, with its head to answer', () => {
    const m = msg([...HEAD, 'Content-Length: 5000']);
    assert.deepEqual(run([m], 1024), [{ error: 'too-large', head: s(m) }]);
  });

  for (const v of ['-5', 'five', '5 5', '', '12345678901', '0x10']) {
    it(`reports Content-Length ${JSON.stringify(v)} as unframeable`, () => {
      const m = msg([...HEAD, `Content-Length: ${v}`], 'abcde');
      const ev = run([Buffer.concat([A, m, A])]);
      assert.deepEqual(ev, [s(A), { error: 'bad-length', head: s(msg([...HEAD, `Content-Length: ${v}`])) }]);
    });
  }

  it('reports two Content-Length values that disagree (RFC 4475 mcl01) and accepts two that agree', () => {
    assert.equal((run([msg([...HEAD, 'Content-Length: 13', 'Max-Forwards: 60', 'l: 5'], 'x'.repeat(20))])[0] as { error: string }).error, 'bad-length');
    const same = msg([...HEAD, 'Content-Length: 2', 'l: 2'], 'ok');
    assert.deepEqual(run([same]), [s(same)]);
  });

  it('stops after an error: nothing after it is framed', () => {
    const bad = msg([...HEAD, 'Content-Length: x']);
    assert.equal(run([Buffer.concat([bad, A, A])]).length, 1);
  });

  it('handles a large message arriving a byte at a time in linear time', { timeout: 20_000 }, () => {
    // 512 KiB in 1-byte pieces: re-copying or re-scanning everything received so far on each piece (quadratic)
    // would take hours here; linear work takes well under a second.
    const body = Buffer.alloc(512 * 1024, 'x');
    const big = Buffer.concat([msg([...HEAD, `Content-Length: ${body.length}`]), body]);
    const f = new StreamFramer(1024 * 1024);
    const out: FrameEvent[] = [];
    const started = performance.now();
    for (let i = 0; i < big.length; i++) f.push(big.subarray(i, i + 1), out);
    const ms = performance.now() - started;
    assert.equal(out.length, 1);
    assert.ok(out[0].kind === 'message' && out[0].data.equals(big));
    assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  });

  it('handles a huge header section arriving a byte at a time in linear time', { timeout: 20_000 }, () => {
    const head = Buffer.from('OPTIONS sip:a@b SIP/2.0\r\n' + 'X-Filler: y\r\n'.repeat(40_000) + '\r\n', 'latin1');
    const f = new StreamFramer(1024 * 1024);
    const out: FrameEvent[] = [];
    const started = performance.now();
    for (let i = 0; i < head.length; i++) f.push(head.subarray(i, i + 1), out);
    assert.equal(out.length, 1);
    assert.ok(performance.now() - started < 5000);
  });
});

describe('contentLengthOf', () => {
  it('is 0 without the header, the value with it, -1 when malformed or conflicting', () => {
    const at = (lines: string[]) => {
      const b = msg(lines);
      return contentLengthOf(b, 0, b.indexOf('\r\n\r\n'));
    };
    assert.equal(at(HEAD), 0);
    assert.equal(at([...HEAD, 'Content-Length: 42']), 42);
    assert.equal(at([...HEAD, 'l: 0042']), 42);
    assert.equal(at([...HEAD, 'Content-Length: 1', 'l: 2']), -1);
    assert.equal(at([...HEAD, 'Content-Length: 4 2']), -1);
  });
});
