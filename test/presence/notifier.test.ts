// The notifier's state machine (RFC 6665 §4.2, RFC 3903 §6) driven directly: requests in, responses and NOTIFYs
// out, with a clock of its own, an authenticator that trusts the From, a real SQLite store in memory, and an
// endpoint that holds every NOTIFY until the test answers it — so "one NOTIFY in flight per dialog" and
// "a subscriber that does not answer is dropped" can be seen exactly.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/in-process.ts';
import type { BusMessage } from '../../src/bus/event-bus.ts';
import { sbError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { PresenceService } from '../../src/presence/presence-service.ts';
import { bindingTopic } from '../../src/registrar/location-service.ts';
import { parseMessage, SipResponse, type SipRequest } from '../../src/sip/message/index.ts';
import type { Destination, Source } from '../../src/sip/transport/types.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';
import { openDatabase } from '../../src/storage/sqlite/database.ts';
import { SqlitePresenceStore } from '../../src/storage/sqlite/presence-store.ts';
import { binding } from '../helpers/bindings.ts';
import { pidf } from '../helpers/presence.ts';

const D = 'example.test';
const SOURCE: Source = { transport: 'UDP', address: '192.0.2.7', port: 5070, family: 4, connectionId: null, local: { address: '192.0.2.1', port: 5060 } };
const tick = () => new Promise((r) => setImmediate(r));

interface Sent {
  req: SipRequest;
  dest: Destination;
  answer(status: number): void;
  fail(message: string): void;
}

function request(lines: string[], body = ''): SipRequest {
  const text = [...lines, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
  return parseMessage(Buffer.from(text)) as SipRequest;
}

let n = 0;
function subscribe(o: { from?: string; presentity?: string; expires?: number; event?: string; callId?: string; fromTag?: string; toTag?: string; cseq?: number; extra?: string[] } = {}): SipRequest {
  const from = o.from ?? 'bob';
  return request([
    `SUBSCRIBE sip:${o.presentity ?? 'alice'}@${D} SIP/2.0`,
    `Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-${++n}`,
    `From: <sip:${from}@${D}>;tag=${o.fromTag ?? 'ft'}`,
    `To: <sip:${o.presentity ?? 'alice'}@${D}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId ?? `call-${n}`}`,
    `CSeq: ${o.cseq ?? 1} SUBSCRIBE`,
    `Contact: <sip:${from}@192.0.2.7:5070>`,
    `Event: ${o.event ?? 'presence'}`,
    ...(o.expires !== undefined ? [`Expires: ${o.expires}`] : []),
    ...(o.extra ?? []),
  ]);
}

function publish(o: { user?: string; presentity?: string; body?: string; etag?: string; expires?: number; contentType?: string } = {}): SipRequest {
  const user = o.user ?? 'alice';
  return request(
    [
      `PUBLISH sip:${o.presentity ?? user}@${D} SIP/2.0`,
      `Via: SIP/2.0/UDP 192.0.2.8:5080;branch=z9hG4bK-${++n}`,
      `From: <sip:${user}@${D}>;tag=pt`,
      `To: <sip:${o.presentity ?? user}@${D}>`,
      `Call-ID: pub-${n}`,
      'CSeq: 1 PUBLISH',
      'Event: presence',
      ...(o.expires !== undefined ? [`Expires: ${o.expires}`] : []),
      ...(o.etag ? [`SIP-If-Match: ${o.etag}`] : []),
      ...(o.body ? [`Content-Type: ${o.contentType ?? 'application/pidf+xml'}`] : []),
    ],
    o.body ?? '',
  );
}

describe('presence notifier (state machine)', () => {
  let clock: number;
  let sent: Sent[];
  let events: BusMessage[];
  let bindings: Map<string, BindingRecord[]>;
  let svc: PresenceService;
  let bus: InProcessBus;
  let db: ReturnType<typeof openDatabase>;

  beforeEach(async () => {
    clock = 1_700_000_000_000;
    // Per service: a service left over from the previous test must not write into this one's lists.
    const out: Sent[] = (sent = []);
    const seen: BusMessage[] = (events = []);
    bindings = new Map();
    const log = createLogger('silent');
    bus = new InProcessBus(log);
    bus.subscribe('presence.#', (m) => {
      seen.push(m);
    });
    svc = new PresenceService({
      endpoint: {
        request: (req, dest) =>
          new Promise<SipResponse>((resolve, reject) => {
            out.push({ req, dest, answer: (status) => resolve(new SipResponse(status, 'X')), fail: (m) => reject(new Error(m)) });
          }),
        // NOTIFYs come as text (Subscription.notifyText): parsed here, so every test reads what goes on the wire.
        requestWire: (_method, startLine, headers, body, dest, outcome) => {
          const head = Buffer.from(`${startLine}\r\nMax-Forwards: 70\r\n${headers}Content-Length: ${body?.length ?? 0}\r\n\r\n`, 'latin1');
          const req = parseMessage(body ? Buffer.concat([head, body]) : head) as SipRequest;
          out.push({ req, dest, answer: (status) => outcome.final(new SipResponse(status, 'X')), fail: (m) => outcome.failed(sbError('SIP_ERR_TIMEOUT', m)) });
        },
        localAddress: () => ({ host: '192.0.2.1', port: 5060 }),
      },
      authenticator: {
        // Trusts the From: these tests are about the notifier, authentication has its own.
        authenticate: async (req) => {
          const from = req.from()!.uri as { user: string };
          return { ok: true, identity: { accountId: `acc-${from.user}`, authUser: from.user, realm: D, aors: [`${from.user}@${D}`], scheme: 'digest' } };
        },
      },
      location: { lookup: (aor) => bindings.get(aor) ?? [] },
      store: new SqlitePresenceStore((db = openDatabase({ file: ':memory:', durability: 'os' }))),
      bus,
      presentityExists: (aor) => aor !== `ghost@${D}`,
      rules: { defaultExpires: 3600, minExpires: 60, maxExpires: 3600 },
      realms: [D],
      isLocalHost: () => false,
      node: 'n1',
      log,
      now: () => clock,
      sweepTimer: false, // the tests call sweep() with their clock
    });
    await svc.prime();
  });

  const ctx = { source: SOURCE, arrivedAt: 0 };
  const sub = (o?: Parameters<typeof subscribe>[0]) => svc.handleSubscribe(subscribe(o), ctx);
  const pub = (o?: Parameters<typeof publish>[0]) => svc.handlePublish(publish(o), { source: { ...SOURCE, address: '192.0.2.8', port: 5080 }, arrivedAt: 0 });
  const toTag = (res: SipResponse) => /;tag=([^;]+)$/.exec(res.get('To')!)![1];

  it('NOTIFYs follow the route set: Route lines in Record-Route order, or with a strict router first its URI as the Request-URI (RFC 3261 §12.2.1.1)', async () => {
    await sub({ extra: ['Record-Route: <sip:p1.example.test;lr>', 'Record-Route: <sip:p2.example.test;lr>'], callId: 'loose' });
    await sub({ extra: ['Record-Route: <sip:p3.example.test>, <sip:p4.example.test;lr>'], callId: 'strict', fromTag: 'f2' });
    await tick();
    const loose = sent.find((x) => x.req.callId() === 'loose')!.req;
    assert.equal(loose.uri, 'sip:bob@192.0.2.7:5070');
    assert.deepEqual(loose.getAll('Route'), ['<sip:p1.example.test;lr>', '<sip:p2.example.test;lr>']);
    const strict = sent.find((x) => x.req.callId() === 'strict')!.req;
    assert.equal(strict.uri, 'sip:p3.example.test');
    assert.deepEqual(strict.getAll('Route'), ['<sip:p4.example.test;lr>', '<sip:bob@192.0.2.7:5070>']);
    for (const x of sent) x.answer(200);
    await tick();
    await pub({ body: pidf(`sip:alice@${D}`, 'open') });
    await tick();
    const again = sent.slice(2).find((x) => x.req.callId() === 'strict')!.req;
    assert.equal(again.uri, 'sip:p3.example.test');
    assert.equal(again.get('CSeq'), '2 NOTIFY');
  });

  it('a new subscription the store refuses: 500, no NOTIFY, nothing announced, and the next one is stored', async () => {
    db.exec("CREATE TRIGGER refuse BEFORE INSERT ON presence_subscriptions BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    const res = await sub({ callId: 'refused' });
    assert.equal(res.status, 500);
    await tick();
    assert.equal(sent.length, 0, 'no NOTIFY for a subscription that was not stored');
    assert.equal(events.filter((e) => e.topic === 'presence.subscription.created').length, 0);
    db.exec('DROP TRIGGER refuse');
    assert.equal((await sub({ callId: 'stored' })).status, 200);
    await tick();
    assert.equal(sent.length, 1);
    assert.equal(events.filter((e) => e.topic === 'presence.subscription.created').length, 1);
  });

  it('a new subscription: 200 with our tag, Expires and Contact, then at once a NOTIFY with the full state', async () => {
    const res = await sub({ expires: 600 });
    assert.equal(res.status, 200);
    assert.equal(res.get('Expires'), '600');
    assert.equal(res.get('Contact'), '<sip:192.0.2.1:5060>');
    assert.equal(sent.length, 0, 'the NOTIFY follows the 200 OK, it does not precede it');
    await tick();
    assert.equal(sent.length, 1);
    const { req, dest } = sent[0];
    assert.equal(req.method, 'NOTIFY');
    assert.equal(req.uri, 'sip:bob@192.0.2.7:5070');
    assert.equal(req.get('From'), `<sip:alice@${D}>;tag=${toTag(res)}`);
    assert.equal(req.get('To'), `<sip:bob@${D}>;tag=ft`);
    assert.equal(req.get('CSeq'), '1 NOTIFY');
    assert.equal(req.get('Event'), 'presence');
    assert.equal(req.get('Subscription-State'), 'active;expires=600');
    assert.equal(req.get('Content-Type'), 'application/pidf+xml');
    assert.match(req.body.toString(), /<basic>closed<\/basic>/);
    assert.deepEqual(dest, { transport: 'UDP', address: '192.0.2.7', port: 5070, connectionId: null });
    assert.deepEqual(svc.watchers(`alice@${D}`).map((w) => [w.watcher, w.state]), [[`bob@${D}`, 'active']]);
    await tick();
    assert.ok(events.some((e) => e.topic === 'presence.subscription.created' && e.payload.watcher === `bob@${D}`));
  });

  it('changes while a NOTIFY is in flight coalesce into one NOTIFY with the latest state', async () => {
    await sub();
    await tick();
    assert.equal(sent.length, 1);
    const first = await pub({ body: pidf(`sip:alice@${D}`, 'open'), expires: 600 });
    assert.equal(first.status, 200);
    const etag = first.get('SIP-ETag')!;
    const second = await pub({ body: pidf(`sip:alice@${D}`, 'open', { activities: ['busy'] }), etag });
    assert.equal(second.status, 200);
    assert.notEqual(second.get('SIP-ETag'), etag, 'a modification gets a new entity tag');
    assert.equal(sent.length, 1, 'nothing more while the first NOTIFY is unanswered');
    sent[0].answer(200);
    await tick();
    assert.equal(sent.length, 2);
    assert.equal(sent[1].req.get('CSeq'), '2 NOTIFY');
    assert.match(sent[1].req.body.toString(), /<basic>open<\/basic>[\s\S]*<rpid:busy\/>/);
    sent[1].answer(200);
    await tick();
    assert.equal(sent.length, 2, 'and no NOTIFY for states already superseded');
  });

  it('a fan-out leaves 16 NOTIFYs in its first event-loop turn, then twice as many each turn, so the first go before the last are built', async () => {
    for (let i = 0; i < 120; i++) await sub({ from: `w${i}`, callId: `fan-${i}` });
    await tick();
    assert.equal(sent.length, 120, 'the first NOTIFY of each subscription');
    for (const s of sent) s.answer(200);
    await tick();
    sent.length = 0;
    const res = await pub({ body: pidf(`sip:alice@${D}`, 'open'), expires: 600 });
    assert.equal(res.status, 200);
    // The PUBLISH was answered after its commit; the change reached the notifier then: one slice sent so far (a
    // datagram leaves at the end of the turn that sent it), the rest in the turns after.
    assert.equal(sent.length, 16);
    await tick();
    assert.equal(sent.length, 16 + 32);
    await tick();
    assert.equal(sent.length, 16 + 32 + 64);
    await tick();
    assert.equal(sent.length, 120);
    assert.equal(new Set(sent.map((x) => x.req.get('To'))).size, 120, 'each watcher once');
    assert.ok(sent.every((x) => /<basic>open<\/basic>/.test(x.req.body.toString())));
  });

  it('a registration change of the presentity notifies its watchers (bus binding events)', async () => {
    await sub();
    await tick();
    sent[0].answer(200);
    bindings.set(`alice@${D}`, [binding(`alice@${D}`, 'k', { contact: 'sip:alice@192.0.2.50:5060' })]);
    bus.publish(bindingTopic('added', `alice@${D}`), { aor: `alice@${D}` });
    bus.publish(bindingTopic('refreshed', `alice@${D}`), { aor: `alice@${D}` });
    bus.publish(bindingTopic('added', `bob@${D}`), { aor: `bob@${D}` }); // nobody here follows bob
    await tick();
    await tick();
    assert.equal(sent.length, 2, 'one NOTIFY for both events');
    assert.match(sent[1].req.body.toString(), /<basic>open<\/basic><\/status><\/tuple>/);
    assert.doesNotMatch(sent[1].req.body.toString(), /192\.0\.2\.50/, "the device's address is not in the document");
    await tick();
    assert.ok(events.some((e) => e.topic === 'presence.changed' && e.payload.basic === 'open' && e.payload.cause === 'registration'));
  });

  for (const [what, settle] of [
    ['times out', (s: Sent) => s.fail('no final response to NOTIFY within 64*T1')],
    ['answers 481', (s: Sent) => s.answer(481)],
    ['answers 408', (s: Sent) => s.answer(408)],
  ] as const) {
    it(`a subscriber whose NOTIFY ${what} is dropped`, async () => {
      await sub();
      await tick();
      settle(sent[0]);
      await tick();
      assert.deepEqual(svc.watchers(`alice@${D}`), []);
      await pub({ body: pidf(`sip:alice@${D}`, 'open') });
      assert.equal(sent.length, 1, 'no NOTIFY to a dropped subscriber');
      await tick();
      assert.ok(events.some((e) => e.topic === 'presence.subscription.terminated' && e.payload.reason === 'giveup'));
    });
  }

  it('a NOTIFY answered with an error that does not end the dialog (500) keeps the subscription', async () => {
    await sub();
    await tick();
    sent[0].answer(500);
    await tick();
    assert.equal(svc.watchers(`alice@${D}`).length, 1);
  });

  it('refresh: 200 and a NOTIFY with the new lifetime; unsubscribe: 200 and a final NOTIFY with the state', async () => {
    const res = await sub({ expires: 600, callId: 'dlg', fromTag: 'w1' });
    await tick();
    sent[0].answer(200);
    clock += 100_000;
    const again = await sub({ expires: 1200, callId: 'dlg', fromTag: 'w1', toTag: toTag(res), cseq: 2 });
    assert.equal(again.status, 200);
    assert.equal(again.get('Expires'), '1200');
    await tick();
    assert.equal(sent[1].req.get('Subscription-State'), 'active;expires=1200');
    sent[1].answer(200);
    const bye = await sub({ expires: 0, callId: 'dlg', fromTag: 'w1', toTag: toTag(res), cseq: 3 });
    assert.equal(bye.status, 200);
    assert.equal(bye.get('Expires'), '0');
    await tick();
    assert.equal(sent[2].req.get('Subscription-State'), 'terminated;reason=timeout');
    assert.match(sent[2].req.body.toString(), /<basic>/);
    assert.deepEqual(svc.watchers(`alice@${D}`), []);
  });

  it('in-dialog SUBSCRIBE: an unknown dialog gets 481, a CSeq not above the last 500, another watcher 403', async () => {
    const res = await sub({ callId: 'dlg2', fromTag: 'w2', cseq: 5 });
    assert.equal((await sub({ callId: 'dlg2', fromTag: 'w2', toTag: 'nope', cseq: 6 })).status, 481);
    assert.equal((await sub({ callId: 'dlg2', fromTag: 'w2', toTag: toTag(res), cseq: 5 })).status, 500);
    assert.equal((await sub({ from: 'carol', callId: 'dlg2', fromTag: 'w2', toTag: toTag(res), cseq: 9 })).status, 403);
  });

  it('expiry: the sweep ends the subscription with terminated;reason=timeout carrying the last state', async () => {
    await sub({ expires: 60 });
    await tick();
    sent[0].answer(200);
    clock += 59_000;
    svc.sweep();
    await tick();
    assert.equal(sent.length, 1);
    clock += 1_000;
    svc.sweep();
    await tick();
    assert.equal(sent.length, 2);
    assert.equal(sent[1].req.get('Subscription-State'), 'terminated;reason=timeout');
    assert.deepEqual(svc.watchers(`alice@${D}`), []);
  });

  it('fetch (Expires: 0): 200, one NOTIFY terminated;reason=timeout with the state, nothing kept', async () => {
    const res = await sub({ expires: 0 });
    assert.equal(res.status, 200);
    assert.equal(res.get('Expires'), '0');
    await tick();
    assert.equal(sent.length, 1);
    assert.equal(sent[0].req.get('Subscription-State'), 'terminated;reason=timeout');
    assert.match(sent[0].req.body.toString(), /<basic>closed<\/basic>/);
    assert.deepEqual(svc.watchers(`alice@${D}`), []);
  });

  it('pending until allowed: empty NOTIFYs, then the state once the policy admits the watcher, terminated when it no longer does', async () => {
    await svc.setPolicy(`alice@${D}`, 'allow-list', []);
    await sub({ expires: 600 });
    await tick();
    assert.equal(sent[0].req.get('Subscription-State'), 'pending;expires=600');
    assert.equal(sent[0].req.body.length, 0);
    assert.equal(sent[0].req.get('Content-Type'), undefined);
    sent[0].answer(200);
    await pub({ body: pidf(`sip:alice@${D}`, 'open') });
    await tick();
    assert.equal(sent.length, 1, 'a pending watcher learns nothing of changes');
    await svc.setPolicy(`alice@${D}`, 'allow-list', [`bob@${D}`]);
    await tick();
    assert.equal(sent[1].req.get('Subscription-State'), 'active;expires=600');
    assert.match(sent[1].req.body.toString(), /<basic>open<\/basic>/);
    sent[1].answer(200);
    await svc.setPolicy(`alice@${D}`, 'nobody', []);
    await tick();
    assert.equal(sent[2].req.get('Subscription-State'), 'terminated;reason=rejected');
    assert.equal(sent[2].req.body.length, 0);
    assert.deepEqual(svc.watchers(`alice@${D}`), []);
  });

  it('refuses what it cannot serve: 489 with Allow-Events, 423 with Min-Expires, 400 without Event, 406; an unknown presentity is pending, not 404', async () => {
    const bad = await sub({ event: 'dialog' });
    assert.equal(bad.status, 489);
    assert.equal(bad.get('Allow-Events'), 'presence');
    const brief = await sub({ expires: 10 });
    assert.equal(brief.status, 423);
    assert.equal(brief.get('Min-Expires'), '60');
    // Not 404: that told which accounts exist. Answered as a presentity whose policy keeps the watcher pending.
    const ghost = await sub({ presentity: 'ghost' });
    assert.equal(ghost.status, 200);
    assert.equal(svc.watchers(`ghost@${D}`)[0]?.state, 'pending');
    assert.equal((await svc.handleSubscribe(request([`SUBSCRIBE sip:alice@${D} SIP/2.0`, 'Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx', `From: <sip:bob@${D}>;tag=a`, `To: <sip:alice@${D}>`, 'Call-ID: x', 'CSeq: 1 SUBSCRIBE', 'Contact: <sip:bob@192.0.2.7>']), ctx)).status, 400);
    assert.equal((await sub({ extra: ['Accept: application/xpidf+xml'] })).status, 406);
    assert.equal((await sub({ expires: 99999 })).get('Expires'), '3600', 'above the maximum: lowered');
  });

  it('PUBLISH: entity tags for refresh, modify and remove; 412 for one not held; no NOTIFY for a refresh', async () => {
    await sub();
    await tick();
    sent[0].answer(200);
    const created = await pub({ body: pidf(`sip:alice@${D}`, 'open'), expires: 600 });
    assert.equal(created.status, 200);
    assert.equal(created.get('Expires'), '600');
    const e1 = created.get('SIP-ETag')!;
    await tick();
    assert.equal(sent.length, 2);
    sent[1].answer(200);
    const refreshed = await pub({ etag: e1, expires: 900 });
    assert.equal(refreshed.status, 200);
    const e2 = refreshed.get('SIP-ETag')!;
    assert.notEqual(e2, e1);
    await tick();
    assert.equal(sent.length, 2, 'a refresh changes no state');
    assert.equal((await pub({ etag: e1, expires: 900 })).status, 412, 'the old entity tag is gone');
    assert.equal((await pub({ etag: 'never-issued' })).status, 412);
    const removed = await pub({ etag: e2, expires: 0 });
    assert.equal(removed.status, 200);
    assert.equal(removed.get('Expires'), '0');
    await tick();
    assert.equal(sent.length, 3);
    assert.match(sent[2].req.body.toString(), /<basic>closed<\/basic>/);
    assert.equal((await pub({ etag: e2 })).status, 412);
  });

  it('PUBLISH: only the presentity itself (403), a PIDF body (415, 400), an initial one with a body (400)', async () => {
    assert.equal((await pub({ user: 'bob', presentity: 'alice', body: pidf(`sip:alice@${D}`, 'open') })).status, 403);
    const wrongType = await pub({ body: 'hello', contentType: 'text/plain' });
    assert.equal(wrongType.status, 415);
    assert.equal(wrongType.get('Accept'), 'application/pidf+xml');
    assert.equal((await pub({ body: '<presence' })).status, 400);
    assert.equal((await pub({})).status, 400);
  });

  it('an initial PUBLISH over the flow of an earlier one replaces it (one device, one publication); its entity tag is then unknown', async () => {
    const first = await pub({ body: pidf(`sip:alice@${D}`, 'open', { id: 'dev' }) });
    const second = await pub({ body: pidf(`sip:alice@${D}`, 'closed', { id: 'dev' }) });
    assert.equal(svc.state(`alice@${D}`).publications.length, 1);
    assert.equal(svc.state(`alice@${D}`).basic, 'closed');
    assert.equal((await pub({ etag: first.get('SIP-ETag')!, expires: 600 })).status, 412);
    assert.equal((await pub({ etag: second.get('SIP-ETag')!, expires: 600 })).status, 200);
    // Another flow is another device: both publications stand.
    await svc.handlePublish(publish({ body: pidf(`sip:alice@${D}`, 'open', { id: 'phone' }) }), { source: { ...SOURCE, address: '192.0.2.9', port: 5090 }, arrivedAt: 0 });
    assert.equal(svc.state(`alice@${D}`).publications.length, 2);
    assert.equal(svc.state(`alice@${D}`).basic, 'open');
  });

  it('publication expiry recomposes the presentity and notifies', async () => {
    await sub();
    await tick();
    sent[0].answer(200);
    await pub({ body: pidf(`sip:alice@${D}`, 'open'), expires: 60 });
    await tick();
    sent[1].answer(200);
    clock += 61_000;
    svc.sweep();
    await tick();
    // The subscription (3600 s) lives on; the publication is gone and the state is closed again.
    assert.equal(sent.length, 3);
    assert.match(sent[2].req.body.toString(), /<basic>closed<\/basic>/);
    assert.equal(svc.state(`alice@${D}`).publications.length, 0);
  });
});
