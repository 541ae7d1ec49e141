import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMessage, serialize, type SipResponse } from '../../src/sip/message/index.ts';

const response = (vias: string[]) =>
  parseMessage(Buffer.from(['SIP/2.0 180 Ringing', ...vias.map((v) => `Via: ${v}`), 'From: <sip:a@x>;tag=1', 'To: <sip:b@x>;tag=2', 'Call-ID: c', 'CSeq: 1 INVITE', '', ''].join('\r\n'))) as SipResponse;

test('removeFirstValue takes the top Via off and leaves the others as they came', () => {
  const lines = response(['SIP/2.0/UDP p;branch=z9hG4bK1', 'SIP/2.0/UDP a;branch=z9hG4bK2', 'SIP/2.0/UDP b;branch=z9hG4bK3']);
  assert.equal(lines.topVia()!.host, 'p');
  lines.removeFirstValue('Via');
  assert.deepEqual(lines.getAll('Via'), ['SIP/2.0/UDP a;branch=z9hG4bK2', 'SIP/2.0/UDP b;branch=z9hG4bK3']);
  assert.equal(lines.topVia()!.host, 'a');
  const joined = response(['SIP/2.0/UDP p;branch=z9hG4bK1, SIP/2.0/UDP a;branch=z9hG4bK2', 'SIP/2.0/UDP b;branch=z9hG4bK3']);
  joined.removeFirstValue('v');
  assert.deepEqual(joined.getAll('Via'), ['SIP/2.0/UDP a;branch=z9hG4bK2', 'SIP/2.0/UDP b;branch=z9hG4bK3']);
  assert.deepEqual(joined.vias().map((v) => v.host), ['a', 'b']);
  const last = response(['SIP/2.0/UDP p;branch=z9hG4bK1', ',']);
  last.removeFirstValue('Via');
  assert.equal(last.get('Via'), undefined);
  assert.ok(!serialize(last).toString().includes('Via'));
});

test('a rewritten Request-URI is parsed again', () => {
  const req = parseMessage(Buffer.from('BYE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 BYE\r\n\r\n'));
  assert.ok(req.isRequest);
  const r = req as import('../../src/sip/message/index.ts').SipRequest;
  assert.equal((r.requestUri() as { host: string }).host, 'x');
  r.uri = 'sip:b@y';
  assert.equal((r.requestUri() as { host: string }).host, 'y');
});
