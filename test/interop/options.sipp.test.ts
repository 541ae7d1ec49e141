// SIPp drives OPTIONS over real UDP and TCP sockets: 200 with Allow and Supported, many calls in a row.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { explain, runSipp } from '../helpers/sipp.ts';

describe('OPTIONS with SIPp', { skip: missingPeer('sipp') }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  for (const transport of ['u1', 't1'] as const) {
    it(`answers 200 with Allow and Supported over ${transport === 'u1' ? 'UDP' : 'TCP'}`, async () => {
      const r = await runSipp('options.xml', server.sipPort, { transport, calls: 50, rate: 200 });
      assert.equal(r.code, 0, explain(r));
      assert.equal(r.successful, 50, explain(r));
    });
  }
});
