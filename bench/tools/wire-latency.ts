// The wire's clock for bench:latency: response times read off a packet capture of the loopback interface instead of
// SIPp's clock. SIPp stamps its response times from a clock that moves in whole milliseconds, often four at a time
// on this machine (its main loop's step), so a server answering in 0.3 ms reads 0 or 4. The kernel stamps every
// captured packet to the nanosecond (tcpdump --time-stamp-precision=nano) as the sender hands it to the interface:
// the time from a request's last byte leaving SIPp to the final response's last byte leaving the server is the
// server's latency with its socket queue included, and the same clock for Switchboard and Kamailio.
//
//   node bench/tools/wire-latency.ts <capture.pcap> <server port>   prints the JSON of `wireLatency`
//
// Requests and responses are paired by Call-ID and CSeq (a retransmitted request keeps its first stamp: the phone
// waits from then). UDP datagrams are one message each; TCP payloads are put back in sequence per direction and cut
// at Content-Length, a message stamped with the segment that brought its last byte.
import { readFileSync } from 'node:fs';

export interface WirePercentiles { n: number; p50: number; p90: number; p99: number; max: number }
export interface WireLatency {
  /** Requests with credentials (Authorization or Proxy-Authorization) to their final response, ms. */
  credentialed: WirePercentiles;
  /** Requests without credentials (the first REGISTER, challenged with a 401), ms. */
  first: WirePercentiles;
  /** Requests to the server that never saw a final response in the capture. */
  unanswered: number;
  packets: number;
}

export interface Packet {
  /** Capture time, ns since the epoch (bigint: a double cannot hold nanoseconds since 1970). */
  ns: bigint;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  tcp: boolean;
  seq: number;
  syn: boolean;
  payload: Buffer;
}

/** The packets of a libpcap file (microsecond or nanosecond stamps, either byte order), IPv4 and IPv6, UDP and TCP. */
export function* readPcap(file: Buffer): Generator<Packet> {
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a libpcap file');
  const u32 = (o: number) => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const nano = (le ? magic : file.readUInt32BE(0)) === 0xa1b23c4d;
  const linktype = u32(20);
  for (let o = 24; o + 16 <= file.length; ) {
    const sec = u32(o);
    const frac = u32(o + 4);
    const incl = u32(o + 8);
    const frame = file.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    const ns = BigInt(sec) * 1_000_000_000n + BigInt(nano ? frac : frac * 1000);
    const ip = network(frame, linktype);
    if (ip === undefined) continue;
    const p = transport(ip);
    if (p !== undefined) yield { ns, ...p };
  }
}

/** The IP packet inside a frame of the capture's link type, or undefined for anything else. */
function network(frame: Buffer, linktype: number): Buffer | undefined {
  switch (linktype) {
    case 1: { // Ethernet (what tcpdump writes for Linux's lo)
      const type = frame.readUInt16BE(12);
      return type === 0x0800 || type === 0x86dd ? frame.subarray(14) : undefined;
    }
    case 113: return frame.subarray(16); // Linux cooked v1 (-i any)
    case 276: return frame.subarray(20); // Linux cooked v2
    case 0: return frame.subarray(4); // BSD loopback
    case 12: case 101: return frame; // raw IP
    default: throw new Error(`link type ${linktype} not read`);
  }
}

function transport(ip: Buffer): Omit<Packet, 'ns'> | undefined {
  let proto: number;
  let src: string;
  let dst: string;
  let l4: Buffer;
  if (ip[0] >> 4 === 4) {
    proto = ip[9];
    src = ip.subarray(12, 16).join('.');
    dst = ip.subarray(16, 20).join('.');
    l4 = ip.subarray((ip[0] & 0x0f) * 4, ip.readUInt16BE(2));
  } else if (ip[0] >> 4 === 6) {
    proto = ip[6];
    src = ip.subarray(8, 24).toString('hex');
    dst = ip.subarray(24, 40).toString('hex');
    l4 = ip.subarray(40, 40 + ip.readUInt16BE(4));
  } else return undefined;
  const sport = l4.readUInt16BE(0);
  const dport = l4.readUInt16BE(2);
  if (proto === 17) return { src, dst, sport, dport, tcp: false, seq: 0, syn: false, payload: l4.subarray(8) };
  if (proto === 6) {
    return { src, dst, sport, dport, tcp: true, seq: l4.readUInt32BE(4), syn: (l4[13] & 0x02) !== 0, payload: l4.subarray((l4[12] >> 4) * 4) };
  }
  return undefined;
}

/** One direction of a TCP connection: bytes in sequence, cut into SIP messages. */
class Stream {
  next = -1;
  buf = '';
  /** Appends a segment's bytes and returns the whole messages now complete. */
  push(seq: number, syn: boolean, payload: Buffer): string[] {
    if (syn) this.next = (seq + 1) >>> 0;
    if (payload.length === 0) return [];
    if (this.next === -1) this.next = seq;
    const behind = (this.next - seq) | 0; // bytes of this segment already had (a retransmission), modulo 2^32
    if (behind < 0) this.buf = ''; // a gap the capture missed: start again at this segment
    else if (behind >= payload.length) return [];
    this.buf += payload.toString('latin1', Math.max(0, behind));
    this.next = (seq + payload.length) >>> 0;
    const out: string[] = [];
    for (;;) {
      const lead = /^(?:\r\n)+/.exec(this.buf); // keep-alives between messages (RFC 5626 §4.4.1)
      if (lead) this.buf = this.buf.slice(lead[0].length);
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) break;
      const length = end + 4 + contentLength(this.buf.slice(0, end));
      if (this.buf.length < length) break;
      out.push(this.buf.slice(0, length));
      this.buf = this.buf.slice(length);
    }
    return out;
  }
}

function header(head: string, long: string, compact?: string): string | undefined {
  const re = new RegExp(`\\r\\n(?:${long}${compact ? `|${compact}` : ''})[ \\t]*:[ \\t]*([^\\r\\n]*)`, 'i');
  return re.exec(head)?.[1].trim();
}
const contentLength = (head: string) => Number(header(head, 'Content-Length', 'l') ?? 0) || 0;

function percentiles(values: number[]): WirePercentiles {
  if (values.length === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const v = values.sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)];
  return { n: v.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: v[v.length - 1] };
}

/** Request → final response times of the server at `port`, from the packets of a capture. */
export function wireLatency(packets: Iterable<Packet>, port: number): WireLatency {
  const asked = new Map<string, { ns: bigint; credentialed: boolean }>();
  const credentialed: number[] = [];
  const first: number[] = [];
  const streams = new Map<string, Stream>();
  let count = 0;
  for (const p of packets) {
    count++;
    const toServer = p.dport === port;
    if (!toServer && p.sport !== port) continue;
    let messages: string[];
    if (p.tcp) {
      const key = `${p.src}:${p.sport}>${p.dst}:${p.dport}`;
      let s = streams.get(key);
      if (s === undefined) streams.set(key, (s = new Stream()));
      messages = s.push(p.seq, p.syn, p.payload);
    } else messages = p.payload.length > 4 ? [p.payload.toString('latin1')] : [];
    for (const m of messages) {
      const end = m.indexOf('\r\n\r\n');
      const head = end < 0 ? m : m.slice(0, end);
      const callId = header(head, 'Call-ID', 'i');
      const cseq = header(head, 'CSeq')?.replace(/\s+/g, ' ');
      if (callId === undefined || cseq === undefined) continue;
      const key = `${callId}\n${cseq}`;
      const response = head.startsWith('SIP/2.0 ');
      if (toServer && !response) {
        if (!asked.has(key)) asked.set(key, { ns: p.ns, credentialed: /\r\n(?:Proxy-)?Authorization[ \t]*:/i.test(head) });
      } else if (!toServer && response && Number(head.slice(8, 11)) >= 200) {
        const q = asked.get(key);
        if (q === undefined) continue; // a final response retransmitted, or to a request before the capture began
        asked.delete(key);
        (q.credentialed ? credentialed : first).push(Number(p.ns - q.ns) / 1e6);
      }
    }
  }
  return { credentialed: percentiles(credentialed), first: percentiles(first), unanswered: asked.size, packets: count };
}

if (import.meta.main) {
  const [file, port] = process.argv.slice(2);
  if (!file || !port) {
    console.error('usage: wire-latency.ts <capture.pcap> <server port>');
    process.exit(2);
  }
  console.log(JSON.stringify(wireLatency(readPcap(readFileSync(file)), Number(port))));
}
