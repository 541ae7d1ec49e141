// bench/tools/wire-latency.ts: response times read off a libpcap capture, over UDP and TCP, checked against a capture
// built here byte by byte (Ethernet framing as tcpdump writes lo, nanosecond stamps), and against one tcpdump wrote.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readPcap, wireLatency } from '../../bench/tools/wire-latency.ts';
import { missingPeer } from '../helpers/peers.ts';

const SERVER = 5060;
const PHONE = 40000;

function ipv4(proto: number, l4: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h[8] = 64;
  h[9] = proto;
  h.set([127, 0, 0, 1], 12);
  h.set([127, 0, 0, 1], 16);
  return Buffer.concat([h, l4]);
}
const udp = (sport: number, dport: number, text: string) => {
  const body = Buffer.from(text, 'latin1');
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + body.length, 4);
  return ipv4(17, Buffer.concat([h, body]));
};
const tcp = (sport: number, dport: number, seq: number, text: string, syn = false) => {
  const body = Buffer.from(text, 'latin1');
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(seq >>> 0, 4);
  h[12] = 5 << 4;
  h[13] = syn ? 0x02 : 0x18;
  return ipv4(6, Buffer.concat([h, body]));
};

/** A nanosecond libpcap file (link type Ethernet) of IP packets at the given ns offsets. */
function pcap(packets: Array<[number, Buffer]>): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b23c4d, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(1, 20);
  const parts = [head];
  for (const [ns, ip] of packets) {
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const frame = Buffer.concat([eth, ip]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + Math.floor(ns / 1e9), 0);
    rec.writeUInt32LE(ns % 1e9, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    parts.push(rec, frame);
  }
  return Buffer.concat(parts);
}

const request = (callId: string, cseq: number, credentials: boolean) =>
  `REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${PHONE};branch=z9hG4bK${callId}${cseq}\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} REGISTER\r\n` +
  (credentials ? 'Authorization: Digest username="a"\r\n' : '') + 'Content-Length: 0\r\n\r\n';
const response = (callId: string, cseq: number, code: number, body = '') =>
  `SIP/2.0 ${code} X\r\nv: SIP/2.0/UDP 127.0.0.1:${PHONE}\r\ni: ${callId}\r\nCSeq:  ${cseq}  REGISTER\r\nl: ${body.length}\r\n\r\n${body}`;

test('UDP: first stamp of a retransmitted request, final responses only, by Call-ID and CSeq, challenges apart', () => {
  const file = pcap([
    [0, udp(PHONE, SERVER, request('a', 1, false))],
    [150_000, udp(SERVER, PHONE, response('a', 1, 401))], // 0.15 ms
    [200_000, udp(PHONE, SERVER, request('a', 2, true))],
    [300_000, udp(PHONE, SERVER, request('b', 2, true))],
    [400_000, udp(SERVER, PHONE, response('b', 2, 100))], // provisional: not the answer
    [500_000, udp(PHONE, SERVER, request('a', 2, true))], // retransmission: the wait began at 200,000
    [1_450_000, udp(SERVER, PHONE, response('a', 2, 200))], // 1.25 ms
    [2_300_000, udp(SERVER, PHONE, response('b', 2, 200))], // 2.0 ms
    [2_400_000, udp(SERVER, PHONE, response('b', 2, 200))], // a retransmitted 200: not counted twice
    [2_500_000, udp(PHONE, SERVER, request('c', 2, true))], // never answered
    [2_600_000, udp(PHONE, 9999, request('d', 2, true))], // another server's
  ]);
  const w = wireLatency(readPcap(file), SERVER);
  assert.deepEqual(w.credentialed, { n: 2, p50: 1.25, p90: 2, p99: 2, max: 2 });
  assert.deepEqual(w.first, { n: 1, p50: 0.15, p90: 0.15, p99: 0.15, max: 0.15 });
  assert.equal(w.unanswered, 1);
  assert.equal(w.packets, 11);
});

test('TCP: messages cut at Content-Length across and within segments, stamped by their last byte; retransmitted bytes skipped', () => {
  const r1 = request('t1', 2, true);
  const r2 = request('t2', 2, true);
  const a1 = response('t1', 2, 200, 'hello');
  const a2 = response('t2', 2, 200);
  const seq = 1000;
  const file = pcap([
    [0, tcp(PHONE, SERVER, seq - 1, '', true)],
    [0, tcp(SERVER, PHONE, 7000 - 1, '', true)],
    [100_000, tcp(PHONE, SERVER, seq, r1.slice(0, 30))],
    [200_000, tcp(PHONE, SERVER, seq + 30, r1.slice(30) + '\r\n\r\n' + r2)], // r1 complete here; a keep-alive; r2
    [250_000, tcp(PHONE, SERVER, seq + 30, r1.slice(30))], // retransmitted segment: nothing new
    [900_000, tcp(SERVER, PHONE, 7000, a1 + a2.slice(0, 10))], // a1: 0.7 ms
    [1_400_000, tcp(SERVER, PHONE, 7000 + a1.length + 10, a2.slice(10))], // a2: 1.2 ms
  ]);
  const w = wireLatency(readPcap(file), SERVER);
  assert.deepEqual(w.credentialed, { n: 2, p50: 0.7, p90: 1.2, p99: 1.2, max: 1.2 });
  assert.equal(w.unanswered, 0);
});

test('a capture tcpdump wrote of lo is read', { skip: missingPeer('tcpdump') }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('capturing needs root');
  const dir = mkdtempSync(join(tmpdir(), 'sb-wire-'));
  try {
    const server = dgram.createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
    const port = server.address().port;
    const file = join(dir, 'c.pcap');
    const cap = spawn('tcpdump', ['-i', 'lo', '-n', '-Z', 'root', '--time-stamp-precision=nano', '-w', file, `udp port ${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((r) => cap.stderr.on('data', (d: Buffer) => String(d).includes('listening') && r()));
    server.on('message', (m, rinfo) => {
      const callId = /Call-ID: (\S+)/.exec(String(m))![1];
      setTimeout(() => server.send(response(callId, 2, 200), rinfo.port, rinfo.address), 5);
    });
    const phone = dgram.createSocket('udp4');
    await new Promise<void>((r) => phone.bind(0, '127.0.0.1', () => r()));
    for (let i = 0; i < 3; i++) {
      const answered = new Promise((r) => phone.once('message', r));
      phone.send(request(`x${i}`, 2, true), port, '127.0.0.1');
      await answered;
    }
    // As bench/latency.sh: the kernel hands tcpdump its packets a block at a time, at the latest a second after the
    // first; a SIGINT sooner leaves them unwritten.
    await new Promise((r) => setTimeout(r, 1500));
    cap.kill('SIGINT');
    await new Promise((r) => cap.on('exit', r));
    phone.close();
    server.close();
    const w = wireLatency(readPcap(readFileSync(file)), port);
    assert.equal(w.credentialed.n, 3);
    // In milliseconds: the server waits 5 ms before it answers (a loaded machine may add to it, never take away).
    assert.ok(w.credentialed.p50 >= 5 && w.credentialed.max < 1000, `${JSON.stringify(w.credentialed)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
