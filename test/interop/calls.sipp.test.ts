// One user on two SIPp devices (issue 17): both register with Digest, a SIPp caller authenticates with 407 and
// calls the user; both devices ring, the one that answers gets the call (ACK and BYE along the Record-Route), the
// other gets CANCEL with Reason cause=200 and answers 487. Each SIPp run checks its own side (exit code 0).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { explain, runSipp } from '../helpers/sipp.ts';

const D = 'example.test';

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('calls with SIPp devices', { skip: missingPeer('sipp') }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
  });
  after(() => server.close());

  it('rings both devices of a user; the first to answer gets the call, the other gets CANCEL', { timeout: 60_000 }, async () => {
    const ports = [await freeUdpPort(), await freeUdpPort()];
    // Each device registers from the port its UAS then listens on (the binding's flow).
    for (const p of ports) {
      const r = await runSipp('register.xml', server.sipPort, { keys: { domain: D, user: 'bob' }, auth: { username: 'bob', password: 'bob-pw' }, extra: ['-p', String(p)] });
      assert.equal(r.code, 0, explain(r));
    }
    assert.equal((await server.location.lookup(`bob@${D}`)).length, 2);
    const answering = runSipp('call-device-answer.xml', server.sipPort, { extra: ['-p', String(ports[0])] });
    const cancelled = runSipp('call-device-cancelled.xml', server.sipPort, { extra: ['-p', String(ports[1])] });
    await new Promise((r) => setTimeout(r, 500)); // both UASes listening
    const caller = await runSipp('call-caller.xml', server.sipPort, { keys: { domain: D, user: 'alice', callee: 'bob' }, auth: { username: 'alice', password: 'alice-pw' } });
    const [a, c] = await Promise.all([answering, cancelled]);
    assert.equal(caller.code, 0, `caller: ${explain(caller)}`);
    assert.equal(a.code, 0, `answering device: ${explain(a)}`);
    assert.equal(c.code, 0, `cancelled device: ${explain(c)}`);
  });
});
