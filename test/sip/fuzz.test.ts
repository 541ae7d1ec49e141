// A bounded, seeded mutation fuzzer for the SIP wire layer. The seeds are the RFC 4475 / RFC 5118 messages and a
// typical REGISTER; the mutations are byte flips, truncations, insertions (CR, LF, NUL, quotes, <>, separators,
// long runs), header duplication, deletion and reordering, and splices of two messages. Every run is reproducible:
// set FUZZ_SEED to replay one (the failing case's seed and index are in the assertion message).
//
// In process: parseMessage only ever throws SipParseError; whatever parses survives every accessor, validation,
// createResponse and serialize, serializes to a message that parses back the same, and builds responses that
// parse. Over real sockets: a few thousand mutated messages over UDP and over several TCP connections (garbage
// between valid messages) leave the server process alive and answering OPTIONS and REGISTER during and after.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { digestCredentials, parseAuthHeader } from '../../src/sip/digest.ts';
import {
  canAnswer,
  createResponse,
  formatNameAddr,
  formatUri,
  formatVia,
  H,
  parseContactValues,
  parseMessage,
  parseNameAddr,
  parseUri,
  parseVia,
  serialize,
  SipParseError,
  SipRequest,
  SipResponse,
  validateRequest,
  type SipMessage,
} from '../../src/sip/message/index.ts';
import { StreamFramer, type FrameEvent } from '../../src/sip/transport/stream-framer.ts';
import { spawnServer, tempDir, type ChildServer } from '../helpers/server.ts';
import { buildRequest, SipTestClient } from '../helpers/sip-client.ts';
import { CORPUS, TYPICAL_REGISTER } from './corpus.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed5);
const CASES = Number(process.env.FUZZ_CASES ?? 20_000);

/** mulberry32: small, fast, good enough to drive mutations, and reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS: Buffer[] = [TYPICAL_REGISTER, ...CORPUS.map((e) => e.data)];
const SPECIALS = ['\r', '\n', '\r\n', '\u0000', '"', '<', '>', ',', ';', ':', ' ', '\t', '\\', '%', '=', '@', '[', ']', '\r\n ', '\r\n\r\n', '\u00ff', '?', '&', '/'];
const RUNS = ['a', ';', ',', '"', '<', '>', ' ', '\r\n', '%', '[', ':', '0', '\\', ';a=b'];
const NUMBERS = ['0', '-1', '00000000000000000001', '65536', '4294967296', '99999999999999999999', '2147483648', '256', '1e3', ''];

/** Grammar-aware replacements: awkward but plausible values for the headers the server reads. */
const VALUES: Record<string, string[]> = {
  via: [
    'SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bKp0',
    'SIP/2.0/UDP 127.0.0.1:65536;branch=z9hG4bKp1',
    'SIP/2.0/UDP 127.0.0.1:5060;rport=0;branch=z9hG4bKp2',
    'SIP/2.0/UDP 127.0.0.1:5060;rport=65536;branch=z9hG4bKp3',
    'SIP/2.0/UDP 127.0.0.1;received=::1;rport;branch=z9hG4bKp4',
    'SIP/2.0/UDP 127.0.0.1;received=[::1];branch=z9hG4bKp5',
    'SIP/2.0/UDP 127.0.0.1;maddr=127.0.0.1;ttl=256;branch=z9hG4bKp6',
    'SIP/2.0/UDP [::1]:5060;branch=z9hG4bKp7',
    'SIP/2.0/UDP [::ffff:127.0.0.1];branch=z9hG4bKp8',
    'SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK',
    'SIP/2.0/WSS x.invalid;branch=z9hG4bKp9',
    'SIP/2.0/XYZ 127.0.0.1;;,;,,',
    'SIP/2.0/UDP',
    '',
  ],
  cseq: ['0 REGISTER', '4294967296 REGISTER', 'REGISTER', '1 OPTIONS', '1  INVITE', '', '99999999999999999999999 X'],
  'max-forwards': ['0', '-1', '256', '0068', '99999999999999999999', ''],
  'content-length': ['0', '-1', '999999', 'abc', '5', '00000000000000000000000'],
  contact: ['*', '<sip:a@[::1]:0>', '<sip:a@127.0.0.1>;expires=0', 'sip:a@b?x=y', '"\\"" <sip:x@y>', '<sip:%00@h>;q=2', '<sip:a@b>;q=0.5, *', '<tel:+1>;+sip.instance="<urn:x>";reg-id=99999999999', ''],
  authorization: ['Digest', 'Digest a=', 'Bearer', 'Bearer a.b.c', 'Digest username="alice", realm="example.test", nonce="x", uri="sip:example.test", response="00"', 'Digest realm="a", realm="b"'],
  require: ['path', 'x, y', '', 'outbound, gruu'],
  expires: ['0', '4294967296', '-1', ''],
  to: ['<sip:alice@example.test>', '<sip:alice@example.test>;tag=x', 'tel:+1', '"x" <sip:@>', '<sips:[::1]>'],
  from: ['<sip:alice@example.test>;tag=1', 'sip:x@y;tag', '<>;tag=1'],
};
const VALUE_KEYS = Object.keys(VALUES);

class Mutator {
  readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  mutate(input: Buffer): Buffer {
    let b = input;
    const rounds = 1 + this.int(4);
    for (let r = 0; r < rounds; r++) b = this.once(b);
    return b;
  }

  private once(b: Buffer): Buffer {
    const pos = this.int(b.length + 1);
    switch (this.int(13)) {
      case 11:
      case 12: {
        // grammar-aware: give a header the server reads an awkward value (or add it)
        const lines = b.toString('latin1').split('\r\n');
        const key = this.pick(VALUE_KEYS);
        const value = this.pick(VALUES[key]);
        const at = lines.findIndex((l, i) => i > 0 && l.toLowerCase().startsWith(key + ':'));
        const name = key.replace(/(^|-)([a-z])/g, (m) => m.toUpperCase());
        if (at > 0 && this.rnd() < 0.7) lines[at] = `${name}: ${value}`;
        else lines.splice(1 + this.int(Math.max(1, lines.length - 1)), 0, `${name}: ${value}`);
        return Buffer.from(lines.join('\r\n'), 'latin1');
      }
      case 0: {
        // flip a byte to any value
        if (b.length === 0) return b;
        const c = Buffer.from(b);
        c[this.int(c.length)] = this.int(256);
        return c;
      }
      case 1: {
        // flip one bit
        if (b.length === 0) return b;
        const c = Buffer.from(b);
        c[this.int(c.length)] ^= 1 << this.int(8);
        return c;
      }
      case 2:
        return b.subarray(0, pos); // truncate
      case 3:
        return Buffer.concat([b.subarray(0, pos), Buffer.from(this.pick(SPECIALS), 'latin1'), b.subarray(pos)]);
      case 4: {
        const run = this.pick(RUNS).repeat(50 + this.int(3000));
        return Buffer.concat([b.subarray(0, pos), Buffer.from(run, 'latin1'), b.subarray(pos)]);
      }
      case 5:
      case 6:
      case 7: {
        // line surgery: duplicate, delete or swap header lines
        const lines = b.toString('latin1').split('\r\n');
        if (lines.length < 3) return b;
        const i = 1 + this.int(lines.length - 1);
        const j = 1 + this.int(lines.length - 1);
        const op = this.int(3);
        if (op === 0) lines.splice(i, 0, lines[j]);
        else if (op === 1) lines.splice(i, 1);
        else [lines[i], lines[j]] = [lines[j], lines[i]];
        return Buffer.from(lines.join('\r\n'), 'latin1');
      }
      case 8: {
        // replace a number with an awkward one
        const s = b.toString('latin1');
        const nums = [...s.matchAll(/[0-9]+/g)];
        if (nums.length === 0) return b;
        const m = this.pick(nums);
        return Buffer.from(s.slice(0, m.index) + this.pick(NUMBERS) + s.slice(m.index! + m[0].length), 'latin1');
      }
      case 9: {
        // splice with another message
        const other = this.pick(SEEDS);
        return Buffer.concat([b.subarray(0, pos), other.subarray(this.int(other.length))]);
      }
      default: {
        // change the case of a stretch
        const c = Buffer.from(b);
        const end = Math.min(c.length, pos + this.int(20));
        for (let i = pos; i < end; i++) if ((c[i] >= 65 && c[i] <= 90) || (c[i] >= 97 && c[i] <= 122)) c[i] ^= 0x20;
        return c;
      }
    }
  }
}

function shape(m: SipMessage) {
  return {
    start: m instanceof SipRequest ? [m.method, m.uri, m.version] : [(m as SipResponse).version, (m as SipResponse).status, (m as SipResponse).reason],
    headers: m.headers.filter((h) => h.key !== H.contentLength).map((h) => [h.key, h.name, h.value]),
    body: m.body.toString('latin1'),
  };
}

function parseOrError(buf: Buffer, stream: boolean): SipMessage | SipParseError {
  try {
    return parseMessage(buf, stream);
  } catch (e) {
    if (e instanceof SipParseError) return e;
    throw new Error(`parseMessage threw something other than SipParseError: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
  }
}

/** Everything the server does with a message that parsed (or with the partial one of a parse error). */
function exercise(m: SipMessage): void {
  const vias = m.vias();
  m.viasWellFormed();
  for (const v of vias) assert.ok(parseVia(formatVia(v), true), 'a Via we format parses again');
  m.from();
  m.to();
  m.cseq();
  m.callId();
  for (const na of [m.from(), m.to()]) {
    if (!na) continue;
    const text = formatNameAddr(na);
    assert.ok(!/[\r\n]/.test(text), 'a name-addr we format never breaks the line');
    assert.ok(parseNameAddr(text), 'a name-addr we format parses again');
  }
  const contacts = parseContactValues(m);
  if (Array.isArray(contacts)) for (const c of contacts) assert.ok(parseUri(formatUri(c.uri)), 'a URI we format parses again');
  for (const h of m.headers) m.values(h.key);
  for (const v of m.getAll(H.authorization)) {
    const a = parseAuthHeader(v);
    if (a) digestCredentials(a);
  }
  if (m instanceof SipRequest) {
    m.requestUri();
    const invalid = validateRequest(m);
    if (canAnswer(m)) {
      for (const status of [100, 200, invalid?.sip ?? 400, 401]) {
        const res = createResponse(m, status, status === 400 ? 'Bad Request (fuzz)' : undefined);
        const back = parseMessage(serialize(res));
        assert.ok(back instanceof SipResponse, 'our response parses');
        assert.equal(back.status, status);
        assert.deepEqual(back.getAll(H.via), res.getAll(H.via));
        if (status !== 100 && m.to()) assert.ok(res.to()?.params.has('tag'), 'a final response has a To tag');
      }
    }
  }
}

describe('fuzzing the parser in process', () => {
  it(`${CASES} mutated messages (seed ${SEED}): only SipParseError, and what parses survives everything`, { timeout: 60_000 }, () => {
    const mut = new Mutator(SEED);
    const started = performance.now();
    let parsed = 0;
    let rejected = 0;
    for (let n = 0; n < CASES; n++) {
      const input = mut.mutate(mut.pick(SEEDS));
      const where = `seed ${SEED}, case ${n}: ${JSON.stringify(input.toString('latin1').slice(0, 300))}`;
      try {
        for (const stream of [false, true]) {
          const r = parseOrError(input, stream);
          if (r instanceof SipParseError) {
            rejected++;
            if (r.partial) exercise(r.partial);
            continue;
          }
          parsed++;
          exercise(r);
          // serialize → parse gives the same message.
          const again = parseOrError(serialize(r), stream);
          assert.ok(!(again instanceof SipParseError), `what we serialize parses again (${again instanceof SipParseError ? again.message : ''})`);
          assert.deepEqual(shape(again), shape(r));
        }
        // The same bytes on a stream, cut into random pieces.
        const framer = new StreamFramer(65535);
        const out: FrameEvent[] = [];
        for (let i = 0; i < input.length; ) {
          const size = 1 + mut.int(200);
          framer.push(input.subarray(i, i + size), out);
          i += size;
        }
        for (const ev of out) {
          if (ev.kind === 'message') {
            const r = parseOrError(ev.data, true);
            if (!(r instanceof SipParseError)) exercise(r);
          }
        }
      } catch (e) {
        throw new Error(`${where}\n${(e as Error).message}`, { cause: e });
      }
    }
    const ms = performance.now() - started;
    // Not vacuous: both outcomes are well represented.
    assert.ok(parsed > CASES / 10 && rejected > CASES / 10, `parsed ${parsed}, rejected ${rejected}`);
    assert.ok(ms < 20_000, `fuzzing took ${ms.toFixed(0)} ms`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Over real sockets, against a server in its own process (so "it survives" means the process is still running).

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fuzzing a running server over UDP and TCP', () => {
  let server: ChildServer;
  const mut = new Mutator(SEED ^ 0x1234567);

  before(async () => {
    server = await spawnServer(tempDir(), { realm: 'example.test' });
  });
  after(async () => {
    const code = await server.kill('SIGTERM');
    assert.equal(code, 0, 'the server shut down cleanly after the flood');
  });

  /** Answered within a few retransmissions (UDP may drop under a flood, as it may for any client). */
  async function answered(client: SipTestClient, method: 'OPTIONS' | 'REGISTER'): Promise<number> {
    const msg = buildRequest(client, {
      method,
      uri: method === 'OPTIONS' ? `sip:127.0.0.1:${server.sipPort}` : 'sip:example.test',
      from: '<sip:alice@example.test>',
      to: method === 'OPTIONS' ? `<sip:127.0.0.1:${server.sipPort}>` : '<sip:alice@example.test>',
      contact: method === 'REGISTER' ? `<sip:alice@127.0.0.1:${client.localPort}>` : undefined,
    });
    for (let attempt = 0; ; attempt++) {
      try {
        return (await client.request(msg, client.transport === 'UDP' ? 500 : 3000)).status;
      } catch (e) {
        if (client.transport === 'TCP' || attempt >= 6) throw e;
      }
    }
  }

  async function liveness(udp: SipTestClient, tcp: SipTestClient): Promise<void> {
    assert.equal(server.proc.exitCode, null, 'the server process is running');
    assert.equal(await answered(udp, 'OPTIONS'), 200);
    assert.equal(await answered(udp, 'REGISTER'), 401);
    assert.equal(await answered(tcp, 'OPTIONS'), 200);
    assert.equal(await answered(tcp, 'REGISTER'), 401);
  }

  /** Sockets a test opened, closed whatever happens (an open socket would keep the test process alive). */
  const opened: Array<{ close(): void }> = [];
  afterEach(() => {
    for (const s of opened.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
  });
  async function client(transport: 'UDP' | 'TCP'): Promise<SipTestClient> {
    const c = await SipTestClient.open(transport, server.sipPort);
    opened.push(c);
    return c;
  }

  it('survives thousands of mutated datagrams and answers throughout', { timeout: 60_000 }, async () => {
    const senders: dgram.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = dgram.createSocket('udp4');
      opened.push(s);
      s.on('message', () => {}); // answers to garbage are not looked at
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      senders.push(s);
    }
    const udp = await client('UDP');
    const tcp = await client('TCP');
    {
      await liveness(udp, tcp);
      const total = 4000;
      let probes = 0;
      for (let n = 0; n < total; n++) {
        const data = mut.mutate(mut.pick(SEEDS));
        if (data.length > 0 && data.length <= 65507) senders[n % senders.length].send(data, server.sipPort, '127.0.0.1');
        if (n % 100 === 99) {
          await sleep(2);
          if (n % 1000 === 999) {
            await liveness(udp, tcp); // answered during the flood
            probes++;
          }
        }
      }
      assert.equal(probes, 4);
      await sleep(200);
      await liveness(udp, tcp); // and after it
    }
  });

  it('survives garbage between valid messages on several TCP connections and answers throughout', { timeout: 60_000 }, async () => {
    const udp = await client('UDP');
    const tcp = await client('TCP');
    let validSent = 0;
    let validAnswered = 0;
    let closedByServer = 0;

    /** One flooding connection: valid OPTIONS, then garbage, then valid OPTIONS… until `items` are sent. */
    async function flood(id: number, items: number): Promise<void> {
      let sent = 0;
      while (sent < items) {
        const socket = net.connect({ host: '127.0.0.1', port: server.sipPort });
        opened.push({ close: () => socket.destroy() });
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', () => resolve());
          socket.once('error', reject);
        });
        const ids = new Set<string>();
        let buf = '';
        socket.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          for (const m of buf.matchAll(/Call-ID: (fuzz-valid-\d+-\d+)\r\n/g)) {
            if (ids.delete(m[1])) validAnswered++;
          }
          if (buf.length > 100_000) buf = buf.slice(-10_000);
        });
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        socket.on('error', () => {});
        let open = true;
        void closed.then(() => {
          open = false;
          closedByServer++;
        });
        while (open && sent < items) {
          const callId = `fuzz-valid-${id}-${sent}`;
          ids.add(callId);
          validSent++;
          const valid =
            `OPTIONS sip:127.0.0.1:${server.sipPort} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:${socket.localPort};branch=z9hG4bK${callId}\r\n` +
            `From: <sip:fuzz@example.test>;tag=${id}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ${callId}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
          let garbage = mut.mutate(mut.pick(SEEDS));
          // Half the garbage keeps the stream framable: a header section only, without Content-Length, ended by
          // a blank line. The rest may stall or break the framing, which the server answers by closing.
          if (mut.rnd() < 0.5) {
            const text = garbage.toString('latin1');
            const end = text.indexOf('\r\n\r\n');
            const head = (end < 0 ? text : text.slice(0, end)).split('\r\n').filter((l) => !/^\s*(content-length|l)\s*:/i.test(l));
            garbage = Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1');
          }
          socket.write(Buffer.concat([Buffer.from(valid, 'latin1'), garbage]));
          sent++;
          if (sent % 20 === 0) await sleep(1);
        }
        await sleep(50);
        socket.destroy();
        await closed;
      }
    }

    {
      await liveness(udp, tcp);
      const flooding = Promise.all([0, 1, 2, 3].map((id) => flood(id, 500)));
      flooding.catch(() => {}); // awaited below; a failure while probing must not go unhandled
      // Probes while the connections flood.
      for (let i = 0; i < 3; i++) {
        await sleep(150);
        await liveness(udp, tcp);
      }
      await flooding;
      await sleep(200);
      await liveness(udp, tcp);
      const fresh = await client('TCP');
      assert.equal(await answered(fresh, 'OPTIONS'), 200, 'a new connection is served after the flood');
      console.log(`# TCP flood: ${validAnswered} of ${validSent} valid messages answered; ${closedByServer} connections closed by the server`);
      assert.ok(validAnswered > 0, `valid messages between the garbage are answered (${validAnswered} of ${validSent}; ${closedByServer} connections closed)`);
    }
  });
});
