// What every request must carry before a handler sees it (src/sip/message/validate.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canAnswer, parseMessage, validateRequest, type SipRequest } from '../../src/sip/message/index.ts';

const OK = [
  'REGISTER sip:example.test SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport',
  'Max-Forwards: 70',
  'To: <sip:alice@example.test>',
  'From: <sip:alice@example.test>;tag=456248',
  'Call-ID: 843817637684230@998sdasdh09',
  'CSeq: 1826 REGISTER',
  'Contact: <sip:alice@192.0.2.1>',
];

function req(lines: string[]): SipRequest {
  return parseMessage(Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')) as SipRequest;
}

/** OK with header `name` replaced by `lines` (or removed when `lines` is empty). */
function withHeader(name: string, ...lines: string[]): SipRequest {
  const i = OK.findIndex((l) => l.startsWith(name + ':'));
  assert.ok(i > 0, name);
  return req([...OK.slice(0, i), ...lines, ...OK.slice(i + 1)]);
}

function status(r: SipRequest): number | null {
  const e = validateRequest(r);
  return e === null ? null : (e.sip ?? -1);
}

describe('validateRequest', () => {
  it('accepts a well-formed request', () => assert.equal(validateRequest(req(OK)), null));

  it('accepts tel and sips Request-URIs', () => {
    assert.equal(status(req(['OPTIONS tel:+1-201-555-0123 SIP/2.0', ...OK.slice(1, 6), 'CSeq: 1 OPTIONS'])), null);
    assert.equal(status(req(['OPTIONS sips:example.test SIP/2.0', ...OK.slice(1, 6), 'CSeq: 1 OPTIONS'])), null);
  });

  it('answers 416 for a Request-URI scheme other than sip, sips or tel (RFC 4475 unkscm, novelsc)', () => {
    for (const uri of ['nobodyKnowsThisScheme:totallyopaquecontent', 'soap.beep://192.0.2.103:3002', 'http://example.test/']) {
      assert.equal(status(req([`OPTIONS ${uri} SIP/2.0`, ...OK.slice(1, 6), 'CSeq: 1 OPTIONS'])), 416, uri);
    }
  });

  it('answers 400 for a malformed Request-URI (RFC 4475 ltgtruri, RFC 5118 ipv6-bad)', () => {
    for (const uri of ['<sip:user@example.com>', 'sip:2001:db8::10', 'sip:user@', 'sip:%zz@example.test']) {
      assert.equal(status(req([`REGISTER ${uri} SIP/2.0`, ...OK.slice(1)])), 400, uri);
    }
  });

  it('answers 400 for URI headers in the Request-URI, where RFC 3261 §19.1.1 allows none (RFC 4475 escruri)', () => {
    assert.equal(status(req(['REGISTER sip:example.test?Route=%3Csip:example.com%3E SIP/2.0', ...OK.slice(1)])), 400);
  });

  it('requires exactly one well-formed From, To, Call-ID and CSeq (RFC 4475 multi01)', () => {
    for (const name of ['From', 'To', 'Call-ID', 'CSeq']) {
      assert.equal(status(withHeader(name)), 400, `${name} missing`);
      const line = OK.find((l) => l.startsWith(name + ':'))!;
      assert.equal(status(withHeader(name, line, line)), 400, `${name} twice`);
    }
    assert.equal(status(withHeader('From', 'From: "unterminated <sip:a@b>;tag=1')), 400);
    assert.equal(status(withHeader('To', 'To: Watson, Thomas <sip:t.watson@example.org>')), 400);
    assert.equal(status(withHeader('Call-ID', 'Call-ID: has space')), 400);
    assert.equal(status(withHeader('Call-ID', 'Call-ID:')), 400);
  });

  it('answers 400 for a CSeq out of range or not a number (RFC 4475 scalar02)', () => {
    for (const v of ['36893488147419103232 REGISTER', '2147483648 REGISTER', 'x REGISTER', 'REGISTER']) {
      assert.equal(status(withHeader('CSeq', `CSeq: ${v}`)), 400, v);
    }
  });

  it('answers 400 when the CSeq method is not the request method (RFC 4475 mismatch01)', () => {
    assert.equal(status(withHeader('CSeq', 'CSeq: 1826 INVITE')), 400);
    assert.equal(status(withHeader('CSeq', 'CSeq: 1826 register')), 400, 'methods are case-sensitive');
  });

  it('answers 501 for an unknown method with a mismatched CSeq method (RFC 4475 mismatch02)', () => {
    assert.equal(status(req(['NEWMETHOD sip:example.test SIP/2.0', ...OK.slice(1, 6), 'CSeq: 8 INVITE'])), 501);
  });

  it('reads Max-Forwards as digits with leading zeros allowed, at most 255 (RFC 4475 wsinv, scalar02)', () => {
    for (const v of ['0', '70', '0068', '255', '000000255']) assert.equal(status(withHeader('Max-Forwards', `Max-Forwards: ${v}`)), null, v);
    for (const v of ['256', '300', '-1', 'x', '7 0', '99999999999999999999']) assert.equal(status(withHeader('Max-Forwards', `Max-Forwards: ${v}`)), 400, v);
    assert.equal(status(withHeader('Max-Forwards', 'Max-Forwards: 70', 'Max-Forwards: 5')), 400, 'repeated');
    assert.equal(status(withHeader('Max-Forwards')), null, 'absent (RFC 2543 clients, RFC 4475 inv2543)');
  });

  it('answers 400 for a malformed Via, even one below the top (RFC 4475 badinv01)', () => {
    assert.equal(status(withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.15;;,;,,')), 400);
    assert.equal(status(withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1', 'Via: SIP/2.0/UDP h;rport=x')), 400);
    assert.equal(status(withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1, garbage')), 400);
  });

  it('answers 400 for a branch that is only the magic cookie (RFC 4475 badbranch)', () => {
    assert.equal(status(withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK')), 400);
    assert.equal(status(withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx')), null);
    assert.equal(status(withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.1')), null, 'no branch at all: an RFC 2543 client');
  });

  it('answers 400 when there is no Via at all', () => assert.equal(status(withHeader('Via')), 400));
});

describe('canAnswer', () => {
  it('needs a Via to send the response on and a CSeq to match it with', () => {
    assert.equal(canAnswer(req(OK)), true);
    assert.equal(canAnswer(withHeader('Via')), false);
    assert.equal(canAnswer(withHeader('CSeq')), false);
    assert.equal(canAnswer(withHeader('Via', 'Via: ;;;')), false, 'no usable sent-by');
  });
  it('answers a request that lacks From, To and Call-ID, so it can be told 400 (RFC 4475 insuf)', () => {
    const r = req(['INVITE sip:user@example.com SIP/2.0', 'CSeq: 193942 INVITE', 'Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf']);
    assert.equal(canAnswer(r), true);
    assert.equal(status(r), 400);
  });
  it('answers a request whose only Via has malformed parameters but a usable sent-by (RFC 4475 badinv01)', () => {
    const r = withHeader('Via', 'Via: SIP/2.0/UDP 192.0.2.15;;,;,,');
    assert.equal(canAnswer(r), true);
    assert.equal(r.topVia()?.host, '192.0.2.15');
    assert.equal(status(r), 400);
  });
});
