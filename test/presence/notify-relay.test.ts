// The presence service with a relay (sip/flow-relay.ts): a NOTIFY for a flow the relay calls remote (another
// node's connection) goes through relay.send with the subscription's whole flow (node and connection included),
// not through the endpoint; what the relay answers or fails with counts as the NOTIFY's outcome. One for a flow
// of this node goes through the endpoint as text (requestWire). (The relay itself is tested over real buses in
// test/sip/flow-relay.test.ts.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/in-process.ts';
import { createLogger } from '../../src/log.ts';
import { PresenceService } from '../../src/presence/presence-service.ts';
import { parseMessage, SipResponse, type SipRequest } from '../../src/sip/message/index.ts';
import type { Source } from '../../src/sip/transport/types.ts';
import type { FlowRecord } from '../../src/storage/ports.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqlitePresenceStore } from '../../src/storage/sqlite/presence-store.ts';

const D = 'example.test';
const SOURCE: Source = { transport: 'TCP', address: '192.0.2.7', port: 40111, family: 4, connectionId: 17, local: { address: '192.0.2.1', port: 5060 } };
const tick = () => new Promise((r) => setImmediate(r));

function subscribe(callId: string): SipRequest {
  const text = [
    `SUBSCRIBE sip:alice@${D} SIP/2.0`,
    `Via: SIP/2.0/TCP 192.0.2.7:40111;branch=z9hG4bK-${callId}`,
    `From: <sip:bob@${D}>;tag=ft`,
    `To: <sip:alice@${D}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 SUBSCRIBE',
    `Contact: <sip:bob@192.0.2.7:40111;transport=tcp>`,
    'Event: presence',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return parseMessage(Buffer.from(text)) as SipRequest;
}

describe('presence NOTIFYs through a relay', () => {
  async function service(remote = true) {
    const log = createLogger('silent');
    const relayed: Array<{ req: SipRequest; flow: FlowRecord; settle: (status: number | Error) => void }> = [];
    const wire: string[] = [];
    let direct = 0;
    const svc = new PresenceService({
      endpoint: {
        request: () => {
          direct++;
          return Promise.resolve(new SipResponse(200, 'OK'));
        },
        requestWire: (_method, startLine, headers, _body, _dest, outcome) => {
          direct++;
          wire.push(`${startLine}\r\n${headers}`);
          outcome.final(new SipResponse(200, 'OK'));
        },
        localAddress: () => ({ host: '192.0.2.1', port: 5060 }),
      },
      relay: {
        isRemote: () => remote,
        send: (req, flow) =>
          new Promise<SipResponse>((resolve, reject) => {
            relayed.push({ req, flow, settle: (s) => (typeof s === 'number' ? resolve(new SipResponse(s, 'X')) : reject(s)) });
          }),
      },
      authenticator: {
        authenticate: async (req) => {
          const from = req.from()!.uri as { user: string };
          return { ok: true, identity: { accountId: `acc-${from.user}`, authUser: from.user, realm: D, aors: [`${from.user}@${D}`], scheme: 'digest' } };
        },
      },
      location: { lookup: () => [] },
      store: new SqlitePresenceStore(openDatabase({ file: ':memory:', durability: 'os' })),
      bus: new InProcessBus(log),
      presentityExists: () => true,
      rules: { defaultExpires: 3600, minExpires: 60, maxExpires: 3600 },
      realms: [D],
      isLocalHost: () => false,
      node: 'n1.example.test',
      log,
      sweepTimer: false,
    });
    await svc.prime();
    return { svc, relayed, wire, direct: () => direct };
  }

  it('hands the NOTIFY and the subscription\u2019s flow to the relay', async () => {
    const { svc, relayed, direct } = await service();
    assert.equal((await svc.handleSubscribe(subscribe('c1'), { source: SOURCE, arrivedAt: 0 })).status, 200);
    await tick();
    assert.equal(relayed.length, 1);
    assert.equal(direct(), 0);
    assert.equal(relayed[0].req.method, 'NOTIFY');
    assert.deepEqual(relayed[0].flow, { transport: 'TCP', address: '192.0.2.7', port: 40111, connectionId: 17, node: 'n1.example.test' });
    relayed[0].settle(200);
    await tick();
    assert.equal(svc.watchers(`alice@${D}`).length, 1);
    assert.equal(svc.counters.notifyFailures, 0);
    svc.close();
  });

  it('sends the NOTIFY for a flow of this node through the endpoint, as text', async () => {
    const { svc, relayed, wire, direct } = await service(false);
    assert.equal((await svc.handleSubscribe(subscribe('c3'), { source: SOURCE, arrivedAt: 0 })).status, 200);
    await tick();
    assert.equal(relayed.length, 0);
    assert.equal(direct(), 1);
    assert.match(wire[0], /^NOTIFY sip:bob@192\.0\.2\.7:40111;transport=tcp SIP\/2\.0\r\n/);
    assert.match(wire[0], /\r\nContact: <sip:192\.0\.2\.1:5060;transport=tcp>\r\n/);
    svc.close();
  });

  it('drops the subscription when the relay fails (the connection is gone on its node)', async () => {
    const { svc, relayed } = await service();
    await svc.handleSubscribe(subscribe('c2'), { source: SOURCE, arrivedAt: 0 });
    await tick();
    relayed[0].settle(new Error('TCP connection 17 is closed on node n2'));
    await tick();
    assert.equal(svc.counters.notifyFailures, 1);
    assert.equal(svc.watchers(`alice@${D}`).length, 0);
    svc.close();
  });
});
