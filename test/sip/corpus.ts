// The RFC 4475 and RFC 5118 torture-test corpora (test/fixtures/rfc4475, test/fixtures/rfc5118), loaded once and
// checked against the SHA-256 each manifest records, so a test can never run on a file that line-ending
// conversion or an editor has changed.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface CorpusEntry {
  corpus: 'rfc4475' | 'rfc5118';
  file: string;
  /** The file name without `.dat`, as the RFC names the message. */
  name: string;
  section: string;
  title: string;
  valid: boolean;
  expect: string;
  alsoAcceptable?: string[];
  byRole?: Record<string, string>;
  category?: string;
  note: string;
  sha256: string;
  bytes: number;
  data: Buffer;
}

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');

function load(corpus: 'rfc4475' | 'rfc5118'): CorpusEntry[] {
  const dir = path.join(FIXTURES, corpus);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Array<Omit<CorpusEntry, 'corpus' | 'name' | 'data'>>;
  return manifest.map((e) => {
    const data = readFileSync(path.join(dir, e.file));
    const digest = createHash('sha256').update(data).digest('hex');
    if (digest !== e.sha256 || data.length !== e.bytes) {
      throw new Error(`${corpus}/${e.file} differs from its manifest (sha256 ${digest}, ${data.length} bytes)`);
    }
    return { ...e, corpus, name: e.file.replace(/\.dat$/, ''), data };
  });
}

export const RFC4475: CorpusEntry[] = load('rfc4475');
export const RFC5118: CorpusEntry[] = load('rfc5118');
export const CORPUS: CorpusEntry[] = [...RFC4475, ...RFC5118];

export function entry(name: string): CorpusEntry {
  const e = CORPUS.find((x) => x.name === name);
  if (!e) throw new Error(`no corpus message ${name}`);
  return e;
}

/** A typical REGISTER as SIPp sends it, with Digest credentials (the benchmark's message). */
export const TYPICAL_REGISTER = Buffer.from(
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
