// Parse throughput of the SIP message layer on one core: a typical SIPp REGISTER carrying Digest credentials,
// (a) parsed and serialized again, (b) parsed and validated (which reads Via, From, To, Call-ID, CSeq and the
// Request-URI, as every request does before a handler sees it), (c) parsed alone.
//
//   node_modules/.bin/node bench/parse.bench.ts [seconds-per-round=1] [rounds=5]
//
// Each case is warmed up first, then timed in rounds; the median round is reported, with the best and worst.
// Target: at least 250,000 REGISTER parses per second.

import { parseMessage } from '../src/sip/message/parse.ts';
import { serialize } from '../src/sip/message/serialize.ts';
import { validateRequest } from '../src/sip/message/validate.ts';
import type { SipRequest } from '../src/sip/message/message.ts';

const REGISTER = Buffer.from(
  [
    'REGISTER sip:example.test SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-20718-1-2;rport',
    'From: <sip:user0001@example.test>;tag=20718SIPpTag001',
    'To: <sip:user0001@example.test>',
    'Call-ID: 1-20718@127.0.0.1',
    'CSeq: 2 REGISTER',
    'Contact: <sip:user0001@127.0.0.1:5061;transport=udp>',
    'Max-Forwards: 70',
    'Expires: 3600',
    'User-Agent: SIPp/3.7',
    'Authorization: Digest username="user0001",realm="example.test",cnonce="6b8b4567",nc=00000001,qop=auth,' +
      'uri="sip:example.test",nonce="AWZ0nqQAAAAqAAAAAh7xrV1bmMk9xJ3oVK",response="d2b4dd5c8a1e0e3f6c7bb1a7b1d0f8e4",algorithm=MD5',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n'),
  'latin1',
);

let sink = 0;

const cases: Record<string, () => void> = {
  'parse + serialize': () => {
    const msg = parseMessage(REGISTER);
    sink += serialize(msg).length;
  },
  'parse + validate': () => {
    const req = parseMessage(REGISTER) as SipRequest;
    if (validateRequest(req) !== null) throw new Error('benchmark message does not validate');
    sink += req.cseq()!.seq;
  },
  'parse': () => {
    sink += parseMessage(REGISTER).headers.length;
  },
};

function timeRound(fn: () => void, ms: number): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  const end = start + ms;
  while (now < end) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

const seconds = Number(process.argv[2] ?? 1);
const rounds = Number(process.argv[3] ?? 5);
console.log(`REGISTER of ${REGISTER.length} bytes; node ${process.version}; ${rounds} rounds of ${seconds} s per case`);
for (const [name, fn] of Object.entries(cases)) {
  timeRound(fn, 500); // warm-up: let the optimizing compiler settle
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) results.push(timeRound(fn, seconds * 1000));
  results.sort((a, b) => a - b);
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  console.log(`${name.padEnd(20)} ${fmt(results[results.length >> 1]).padStart(10)} ops/s  (min ${fmt(results[0])}, max ${fmt(results[results.length - 1])})`);
}
if (sink === 42) console.log('');
