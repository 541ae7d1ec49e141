// Building responses (src/sip/message/response.ts, RFC 3261 §8.2.6) and reason phrases (status.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createResponse, H, newTag, parseMessage, reasonPhrase, serialize, SipResponse, type SipRequest } from '../../src/sip/message/index.ts';

function request(lines: string[]): SipRequest {
  return parseMessage(Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')) as SipRequest;
}

const REQ = [
  'REGISTER sip:example.test SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP proxy.example.test;branch=z9hG4bK0',
  'v: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKz',
  'Max-Forwards: 70',
  'From: "Alice" <sip:alice@example.test>;tag=a1',
  'To: <sip:alice@example.test>',
  'Call-ID: 843817637684230@998sdasdh09',
  'CSeq: 1826 REGISTER',
  'Contact: <sip:alice@192.0.2.1>',
  'Authorization: Digest username="alice"',
  'Timestamp: 54.2 0.1',
  'Content-Length: 0',
];

describe('createResponse', () => {
  it('copies Via (every line, in order), From, To, Call-ID and CSeq, and nothing else', () => {
    const res = createResponse(request(REQ), 200);
    assert.ok(res instanceof SipResponse);
    assert.equal(res.status, 200);
    assert.equal(res.reason, 'OK');
    assert.deepEqual(
      res.headers.map((h) => [h.name, h.key]),
      [
        ['Via', 'via'],
        ['v', 'via'],
        ['From', 'from'],
        ['To', 'to'],
        ['Call-ID', 'call-id'],
        ['CSeq', 'cseq'],
      ],
    );
    assert.deepEqual(res.getAll(H.via), [REQ[1].slice(5), REQ[2].slice(3)]);
    assert.equal(res.get(H.from), '"Alice" <sip:alice@example.test>;tag=a1');
    assert.equal(res.callId(), '843817637684230@998sdasdh09');
    assert.deepEqual(res.cseq(), { seq: 1826, method: 'REGISTER' });
    for (const k of [H.contact, H.maxForwards, H.authorization, H.timestamp]) assert.equal(res.has(k), false, k);
  });

  it('adds a To tag to a final or provisional response other than 100', () => {
    for (const status of [180, 200, 302, 401, 404, 500, 603]) {
      const to = createResponse(request(REQ), status).to()!;
      assert.match(to.params.get('tag') ?? '', /^[0-9a-z]+$/, String(status));
      assert.equal(to.uri.scheme, 'sip');
    }
  });

  it('adds no To tag to 100 Trying, and echoes Timestamp there only (§8.2.6.1)', () => {
    const trying = createResponse(request(REQ), 100);
    assert.equal(trying.get(H.to), '<sip:alice@example.test>');
    assert.equal(trying.get(H.timestamp), '54.2 0.1');
    assert.equal(createResponse(request(REQ), 200).has(H.timestamp), false);
  });

  it('keeps an existing To tag, however it is spelled, and adds none', () => {
    for (const to of ['<sip:a@b>;tag=xyz', '<sip:a@b> ; TAG = xyz', 'sip:a@b;tag=xyz', '"x, y" <sip:a@b>;foo="a>b";tag=xyz']) {
      const res = createResponse(request([...REQ.slice(0, 5), `To: ${to}`, ...REQ.slice(6)]), 200);
      assert.equal(res.get(H.to), to, to);
    }
  });

  it('adds a tag when the only "tag" is a URI parameter or inside a quoted value', () => {
    for (const to of ['<sip:a@b;tag=uri-param>', '<sip:a@b>;x=";tag=no"', '"tag=x" <sip:a@b>']) {
      const res = createResponse(request([...REQ.slice(0, 5), `To: ${to}`, ...REQ.slice(6)]), 200);
      const parsed = res.to();
      assert.ok(parsed, to);
      assert.ok(parsed.params.get('tag'), `a header tag was added to ${to}`);
      assert.equal(res.get(H.to)!.startsWith(to), true);
    }
  });

  it('gives each response its own tag', () => {
    const tags = new Set(Array.from({ length: 1000 }, () => newTag()));
    assert.equal(tags.size, 1000);
  });

  it('takes a reason phrase or the standard one', () => {
    assert.equal(createResponse(request(REQ), 404, 'Not Found (domain not served here)').reason, 'Not Found (domain not served here)');
    assert.equal(createResponse(request(REQ), 423).reason, 'Interval Too Brief');
    assert.equal(reasonPhrase(505), 'Version Not Supported');
    assert.equal(reasonPhrase(299), 'OK');
    assert.equal(reasonPhrase(499), 'Unknown');
  });

  it('answers what it can when the request lacks From, To or Call-ID (RFC 4475 insuf)', () => {
    const res = createResponse(request(['INVITE sip:user@example.com SIP/2.0', 'CSeq: 193942 INVITE', 'Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf']), 400);
    assert.deepEqual(res.headers.map((h) => h.key), [H.cseq, H.via]);
  });

  it('serializes to a response that parses back with the same headers', () => {
    const res = createResponse(request(REQ), 200);
    res.append('Contact', '<sip:alice@192.0.2.1>;expires=3600');
    const back = parseMessage(serialize(res)) as SipResponse;
    assert.equal(back.status, 200);
    assert.deepEqual(back.headers.slice(0, -1).map((h) => [h.name, h.value]), res.headers.map((h) => [h.name, h.value]));
    assert.equal(back.get(H.contentLength), '0');
  });
});
