// Via values (src/sip/message/via.ts): RFC 3261 §20.42 with RFC 3581 rport and RFC 5118 IPv6 sent-by.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { branchOf, defaultPort, EMPTY_PARAMS, formatVia, MAGIC_COOKIE, parseMessage, parseVia, type SipRequest, type Via } from '../../src/sip/message/index.ts';
import { stampVia } from '../../src/sip/transport/route.ts';
import type { Source } from '../../src/sip/transport/types.ts';

function via(s: string): Via {
  const v = parseVia(s);
  assert.ok(v, `${JSON.stringify(s)} should parse`);
  return v;
}

describe('parseVia', () => {
  it('reads protocol, version, transport, sent-by and parameters', () => {
    const v = via('SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;ttl=16;maddr=224.2.0.1');
    assert.deepEqual([v.protocol, v.version, v.transport, v.host, v.port], ['SIP', '2.0', 'UDP', 'pc33.atlanta.com', 5066]);
    assert.deepEqual([...v.params], [
      ['branch', 'z9hG4bK776asdhds'],
      ['received', '192.0.2.1'],
      ['ttl', '16'],
      ['maddr', '224.2.0.1'],
    ]);
    assert.equal(branchOf(v), 'z9hG4bK776asdhds');
    assert.ok(branchOf(v)!.startsWith(MAGIC_COOKIE));
  });

  it('upper-cases the transport and keeps unknown ones (RFC 4475 transports)', () => {
    for (const t of ['udp', 'TCP', 'tls', 'SCTP', 'ws', 'WSS', 'UNKNOWN']) assert.equal(via(`SIP/2.0/${t} h`).transport, t.toUpperCase());
  });

  it('has no port when none is written', () => {
    assert.equal(via('SIP/2.0/UDP 192.0.2.1').port, null);
    assert.equal(branchOf(via('SIP/2.0/UDP 192.0.2.1')), null);
  });

  it('reads RFC 3581 rport, empty or with a value', () => {
    const a = via('SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1');
    assert.equal(a.params.has('rport'), true);
    assert.equal(a.params.get('rport'), null);
    assert.equal(via('SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.2;rport=4711').params.get('rport'), '4711');
    assert.equal(via('SIP/2.0/UDP 10.0.0.1;rport=65535').params.get('rport'), '65535');
  });

  it('reads an IPv6 sent-by with and without a port (RFC 5118)', () => {
    const a = via('SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111');
    assert.equal(a.host, '[2001:db8::9:1]');
    assert.equal(a.port, 6050);
    const b = via('SIP/2.0/UDP [::ffff:192.0.2.2];branch=z9hG4bKas3-111');
    assert.equal(b.host, '[::ffff:192.0.2.2]');
    assert.equal(b.port, null);
  });

  it('reads received as an IPv6 address, with or without brackets (RFC 5118 §4.5)', () => {
    assert.equal(via('SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3').params.get('received'), '2001:db8::9:255');
    assert.equal(via('SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3').params.get('received'), '[2001:db8::9:255]');
  });

  it('allows LWS around "/", ":" and ";" and "=" (RFC 4475 wsinv)', () => {
    const v = via('SIP  /   2.0 /UDP     192.0.2.2;branch=390skdjuw');
    assert.deepEqual([v.protocol, v.version, v.transport, v.host], ['SIP', '2.0', 'UDP', '192.0.2.2']);
    const w = via('SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8');
    assert.equal(w.host, 'spindle.example.com');
    assert.equal(branchOf(w), 'z9hG4bK9ikj8');
    assert.equal(via('SIP/2.0/UDP host : 5060 ; rport').port, 5060);
    assert.equal(via('SIP/2.0/UDP\thost').host, 'host');
  });

  it('lower-cases parameter names and keeps values', () => {
    assert.equal(via('SIP/2.0/UDP h;BRANCH=z9hG4bKAbC').params.get('branch'), 'z9hG4bKAbC');
  });

  for (const [bad, why] of [
    ['', 'empty'],
    ['SIP/2.0 host', 'no transport'],
    ['SIP/2.0/UDP', 'no sent-by'],
    ['SIP/2.0/UDPhost', 'no LWS before sent-by'],
    ['SIP/2.0/UDP host:', 'empty port'],
    ['SIP/2.0/UDP host:65536', 'port out of range'],
    ['SIP/2.0/UDP host:5o60', 'port not a number'],
    ['SIP/2.0/UDP ho_st', 'not a hostname'],
    ['SIP/2.0/UDP 2001:db8::1', 'IPv6 without brackets'],
    ['SIP/2.0/UDP [2001:db8::1', 'unclosed bracket'],
    ['SIP/2.0/UDP [zz::1]', 'not IPv6'],
    ['SIP/2.0/UDP 192.0.2.15;;', 'an empty parameter (RFC 4475 badinv01)'],
    ['SIP/2.0/UDP h;branch=', 'an empty value'],
    ['SIP/2.0/UDP h;branch=z9hG4bK1 junk', 'text after the parameters'],
    ['SIP/2.0/UDP h;rport=abc', 'rport not a port'],
    ['SIP/2.0/UDP h;rport=99999', 'rport above 65535'],
    ['SIP/2.0/UDP h;rport=0', 'rport 0: no port to answer to'],
    ['SIP/2.0/UDP h:0', 'port 0: no port to answer to (a response sent there crashed the UDP transport)'],
    ['SIP/2.0/UDP h:00000', 'port 0 written long'],
    ['SIP/2.0/UDP h;ttl=256', 'ttl above 255'],
    ['SIP/2.0/UDP h;ttl=x', 'ttl not a number'],
    ['SIP/2.0/UDP h;received=evil.example.com', 'received not an IP address'],
    ['SIP/2.0/UDP h;received=300.1.1.1', 'received not an IP address'],
    ['SIP/2.0/UDP h;maddr=', 'maddr empty'],
    ['SIP/2.0/UDP h;maddr=a_b', 'maddr not a host'],
    ['/2.0/UDP h', 'no protocol'],
  ] as const) {
    it(`rejects ${JSON.stringify(bad)}: ${why}`, () => assert.equal(parseVia(bad), null));
  }
});

describe('formatVia', () => {
  for (const s of [
    'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport',
    'SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK1;received=192.0.2.9;rport=1234',
    'SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKx',
  ]) {
    it(`writes ${s} back unchanged`, () => assert.equal(formatVia(via(s)), s));
  }
  it('writes a normalised form of a spaced one, which parses to the same Via', () => {
    const v = via('SIP / 2.0 / udp  host : 5060 ;Branch = z9hG4bK1');
    assert.equal(formatVia(v), 'SIP/2.0/UDP host:5060;branch=z9hG4bK1');
    assert.deepEqual(via(formatVia(v)), v);
  });
});

describe('defaultPort', () => {
  it('is 5061 for TLS and WSS, 5060 otherwise', () => {
    assert.deepEqual(['UDP', 'TCP', 'TLS', 'WS', 'WSS', 'SCTP'].map(defaultPort), [5060, 5060, 5061, 5060, 5061, 5060]);
  });
});

describe('stampVia', () => {
  const source: Source = { transport: 'UDP', address: '192.0.2.9', port: 4711, family: 4, connectionId: null, local: { address: '127.0.0.1', port: 5060 } };
  const request = (via: string) =>
    parseMessage(Buffer.from(`OPTIONS sip:x@example.test SIP/2.0\r\nVia: ${via}\r\nFrom: <sip:a@example.test>;tag=1\r\nTo: <sip:x@example.test>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n`, 'latin1')) as SipRequest;

  it('stamps a Via without parameters on a copy, leaving the shared empty list empty', () => {
    const req = request('SIP/2.0/UDP 10.0.0.1:5060');
    assert.equal(req.topVia()!.params, EMPTY_PARAMS);
    const via = stampVia(req, source)!;
    assert.notEqual(via.params, EMPTY_PARAMS);
    assert.deepEqual([...via.params], [['received', '192.0.2.9']]);
    assert.equal(EMPTY_PARAMS.size, 0);
    assert.equal(req.get('Via'), 'SIP/2.0/UDP 10.0.0.1:5060;received=192.0.2.9');
    assert.equal(request('SIP/2.0/UDP 10.0.0.2').topVia()!.params, EMPTY_PARAMS);
  });

  it('keeps the parameters in order, a replaced received and a filled-in rport in their places', () => {
    const req = request('SIP/2.0/UDP 10.0.0.1:5060;rport;received=203.0.113.1;branch=z9hG4bK1');
    stampVia(req, source);
    assert.equal(req.get('Via'), 'SIP/2.0/UDP 10.0.0.1:5060;rport=4711;received=192.0.2.9;branch=z9hG4bK1');
    const same = request('SIP/2.0/UDP 192.0.2.9:5060;received=203.0.113.1;branch=z9hG4bK2');
    stampVia(same, source);
    assert.equal(same.get('Via'), 'SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK2');
  });
});
