// Response routing cannot be aimed at a third party (issue 15): a UDP request whose top Via carries `maddr`
// (an address or a host name) gets its response at the socket it came from; the maddr target gets nothing, and
// no name from the Via is resolved to pick where the response goes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { parseResponse, SipTestClient } from '../helpers/sip-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/** A UDP socket standing in for the victim: records every datagram it gets. */
async function victim(host: string): Promise<{ port: number; got: string[]; close(): void }> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  const got: string[] = [];
  s.on('message', (m) => got.push(m.toString('latin1')));
  return { port: s.address().port, got, close: () => s.close() };
}

function register(viaHostPort: string, viaParams: string): string {
  return [
    'REGISTER sip:example.test SIP/2.0',
    `Via: SIP/2.0/UDP ${viaHostPort};branch=z9hG4bK${randomBytes(6).toString('hex')};rport;${viaParams}`,
    'Max-Forwards: 70',
    `From: <sip:alice@example.test>;tag=${randomBytes(4).toString('hex')}`,
    'To: <sip:alice@example.test>',
    `Call-ID: ${randomBytes(8).toString('hex')}@maddr`,
    'CSeq: 1 REGISTER',
    'Contact: <sip:alice@127.0.0.1:5999>',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

describe('Via maddr on UDP responses', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ users: { 'alice@example.test': 'alice-pw' } });
  });
  after(() => s.close());

  for (const [what, host] of [
    ['an address', '127.0.0.2'],
    ['a host name', 'localhost'],
  ] as const) {
    it(`answers at the source, not at a maddr naming ${what}`, async () => {
      // The victim listens where the maddr (and the Via's sent-by port) point.
      const v = await victim(host === 'localhost' ? '127.0.0.1' : host);
      const c = await SipTestClient.open('UDP', s.sipPort);
      try {
        c.send(register(`127.0.0.1:${v.port}`, `maddr=${host}`));
        const res = parseResponse(await c.next(3000));
        assert.equal(res.status, 401, 'the challenge comes back to the socket that asked');
        await new Promise((r) => setTimeout(r, 300));
        assert.deepEqual(v.got, [], 'the maddr target got nothing');
      } finally {
        c.close();
        v.close();
      }
    });
  }
});
