// The call path without the kernel: the messages of bench/calls.sh's call (INVITE → 407 → ACK → INVITE with
// Proxy-Authorization → 100, INVITE to the callee → 180 → 200 → ACK → BYE → 200) fed straight into the SIP
// endpoint of a real server (embedded SQLite, in-process bus, signed Record-Route), with the transports' sends
// replaced by a capture, so the figure is Switchboard's own CPU per call (parse, transactions, auth, routing,
// forwarding, serialize) with the sendmsg/recvmsg syscalls left out. The callers' and callee's work (building
// their messages, the Digest answer) runs outside the timed phases. Calls go in batches of BATCH (all phases of a
// batch, then the next), so no transaction waits long enough for a retransmission timer.
// Run: node bench/calls-hotpath.bench.ts [calls per round] [rounds] [batch]
// bench/tools/calls-instructions.sh runs it under callgrind.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { newAccount } from '../src/identity/accounts.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/server.ts';
import type { Destination, Source } from '../src/sip/transport/types.ts';
import { SqliteAccountStore } from '../src/storage/sqlite/account-store.ts';
import { openDatabase } from '../src/storage/sqlite/database.ts';
import { testConfig, tempDir } from '../test/helpers/server.ts';

const CALLS = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 6);
const BATCH = Number(process.argv[4] ?? 50);
const CALLEES = 100;
const CALLERS = 1000;
const REALM = 'bench.test';
const UAS_PORT = 5090;
const dir = tempDir('sb-calls-hotpath-');
const config = testConfig(dir, { realm: [REALM], 'sip-transports': ['UDP'], });
{
  const db = openDatabase({ file: `${dir}/switchboard.db`, durability: 'os' });
  await new SqliteAccountStore(db).createMany(Array.from({ length: CALLEES + CALLERS }, (_, i) => newAccount(`user${i}`, REALM, `pw${i}`)));
  db.close();
}
const server = await startServer(config, { log: createLogger('silent') });
const sent: Array<{ text: string; port: number }> = [];
server.transports.sendNow = (data: Buffer, to: Destination) => {
  sent.push({ text: data.toString('latin1'), port: to.port });
};
server.transports.send = (data: Buffer, to: Destination) => {
  sent.push({ text: data.toString('latin1'), port: to.port });
  return Promise.resolve();
};
// The client transactions' sends with a completion hook (where the tree has them): told on the next tick, as dgram does.
(server.transports as { sendReporting?: unknown }).sendReporting = (data: Buffer, to: Destination, done: (err: Error | null) => void) => {
  sent.push({ text: data.toString('latin1'), port: to.port });
  process.nextTick(done, null);
};
const source = (port: number): Source => ({ transport: 'UDP', address: '127.0.0.1', port, family: 4, connectionId: null, local: { address: '127.0.0.1', port: 5060 } });
const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const msg = (lines: string[], body = '') => Buffer.from(lines.join('\r\n') + `\r\nContent-Length: ${body.length}\r\n\r\n` + body, 'latin1');
const header = (text: string, name: string): string[] => {
  const out: string[] = [];
  for (const line of text.split('\r\n')) if (line.toLowerCase().startsWith(name.toLowerCase() + ':')) out.push(line.slice(name.length + 1).trim());
  return out;
};
const challenge = (text: string, name: string, user: string, method: string, uri: string, password: string): string => {
  const h = header(text, name)[0];
  const nonce = /nonce="([^"]+)"/.exec(h)![1];
  const qop = /qop="([^"]+)"/.exec(h) ? 'auth' : null;
  const ha1 = md5(`${user}:${REALM}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  const response = qop ? md5(`${ha1}:${nonce}:00000001:abcdef:auth:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`);
  return `Digest username="${user}",realm="${REALM}",nonce="${nonce}",uri="${uri}",response="${response}",algorithm=MD5` + (qop ? ',qop=auth,nc=00000001,cnonce="abcdef"' : '');
};
let sends = 0;
/** Everything sent since the last take, grouped by Call-ID. */
const take = (): Map<string, Array<{ text: string; port: number }>> => {
  const by = new Map<string, Array<{ text: string; port: number }>>();
  sends += sent.length;
  for (const s of sent) {
    const id = header(s.text, 'Call-ID')[0];
    let l = by.get(id);
    if (!l) by.set(id, (l = []));
    l.push(s);
  }
  sent.length = 0;
  return by;
};
const settle = () => new Promise((r) => setImmediate(r));
const expect = (cond: boolean, what: string, ctx?: unknown) => {
  if (!cond) throw new Error(`${what}${ctx ? `: ${JSON.stringify(ctx).slice(0, 600)}` : ''}`);
};

// The callees: registered with Digest from the UAS port, as SIPp's register-digest.xml does.
for (let i = 0; i < CALLEES; i++) {
  const reg = (cseq: number, auth?: string) =>
    msg([
      `REGISTER sip:${REALM} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${UAS_PORT};branch=z9hG4bK-reg-${i}-${cseq}`,
      `From: <sip:user${i}@${REALM}>;tag=reg${i}`,
      `To: <sip:user${i}@${REALM}>`,
      `Call-ID: reg-${i}@127.0.0.1`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:user${i}@127.0.0.1:${UAS_PORT};transport=UDP>`,
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Max-Forwards: 70',
      'Expires: 3600',
    ]);
  server.endpoint.receive(reg(1), source(UAS_PORT));
  await settle();
  const c = sent.pop()!.text;
  server.endpoint.receive(reg(2, challenge(c, 'WWW-Authenticate', `user${i}`, 'REGISTER', `sip:${REALM}`, `pw${i}`)), source(UAS_PORT));
  while (sent.length === 0) await settle();
  expect(sent.pop()!.text.startsWith('SIP/2.0 200'), 'callee registration');
}

const SDP_OFFER = 'v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n';
const SDP_ANSWER = 'v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

interface Call {
  id: string;
  caller: number;
  callee: number;
  port: number;
  fromTag: string;
  toTag?: string;
  routes?: string[];
  contact?: string;
  forwarded?: string;
  bye?: string;
}
let busy = 0;
/** Feeds messages to the endpoint (timed) and lets the promise chains they start run out. */
const feed = async (items: Array<[Buffer, number]>, until: () => boolean) => {
  const t = performance.now();
  for (const [data, port] of items) server.endpoint.receive(data, source(port));
  for (let n = 0; !until(); n++) {
    await settle();
    if (n > 10_000) throw new Error(`no answer: ${JSON.stringify(sent).slice(0, 1500)}`);
  }
  busy += performance.now() - t;
};

// With --expose-gc: the heap that the calls of the last round still hold after a full GC (their transactions in
// Accepted, Timers L and M: 32 s), per call. At 2,000 calls/s that is 64,000 calls' worth, all of it promoted.
const heapNow = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
};
let heapBefore = 0;
let callNumber = 0;
const results: number[] = [];
const extra: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  busy = 0;
  sends = 0;
  if (round === ROUNDS - 1) heapBefore = heapNow();
  for (let b = 0; b < CALLS; b += BATCH) {
    const calls: Call[] = [];
    for (let k = 0; k < BATCH && b + k < CALLS; k++) {
      const n = callNumber++;
      calls.push({ id: `call-${n}@127.0.0.1`, caller: CALLEES + (n % CALLERS), callee: n % CALLEES, port: 20000 + (n % 20000), fromTag: `${n}SIPpC` });
    }
    const from = (c: Call) => `From: <sip:user${c.caller}@${REALM}>;tag=${c.fromTag}`;
    const invite = (c: Call, cseq: number, auth?: string) =>
      msg([
        `INVITE sip:user${c.callee}@${REALM} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-${c.fromTag}-${cseq}`,
        from(c),
        `To: <sip:user${c.callee}@${REALM}>`,
        `Call-ID: ${c.id}`,
        `CSeq: ${cseq} INVITE`,
        `Contact: <sip:user${c.caller}@127.0.0.1:${c.port};transport=UDP>`,
        ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
        'Max-Forwards: 70',
        'User-Agent: SIPp',
        'Content-Type: application/sdp',
      ], SDP_OFFER);
    // INVITE → 407.
    sends += sent.length; // late timers of the previous batch
    sent.length = 0;
    await feed(calls.map((c) => [invite(c, 1), c.port]), () => sent.length >= calls.length);
    let by = take();
    // ACK for the 407, INVITE with credentials → 100 upstream, INVITE to the callee.
    const second: Array<[Buffer, number]> = [];
    for (const c of calls) {
      const r = by.get(c.id)![0].text;
      expect(r.startsWith('SIP/2.0 407'), '407 expected', r);
      second.push([msg([
        `ACK sip:user${c.callee}@${REALM} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-${c.fromTag}-1`,
        from(c),
        `To: ${header(r, 'To')[0]}`,
        `Call-ID: ${c.id}`,
        'CSeq: 1 ACK',
        'Max-Forwards: 70',
      ]), c.port]);
      second.push([invite(c, 2, challenge(r, 'Proxy-Authenticate', `user${c.caller}`, 'INVITE', `sip:user${c.callee}@${REALM}`, `pw${c.caller}`)), c.port]);
    }
    await feed(second, () => sent.length >= 2 * calls.length);
    by = take();
    // The callee: 180, 200 with the SDP answer and the Record-Route copied.
    const answers: Array<[Buffer, number]> = [];
    for (const c of calls) {
      const fwd = by.get(c.id)!.find((s) => s.port === UAS_PORT)!.text;
      expect(fwd?.startsWith('INVITE '), 'forwarded INVITE expected', by.get(c.id));
      c.toTag = `${c.fromTag}SIPpU`;
      const common = [
        ...header(fwd, 'Via').map((v) => `Via: ${v}`),
        `From: ${header(fwd, 'From')[0]}`,
        `To: ${header(fwd, 'To')[0]};tag=${c.toTag}`,
        `Call-ID: ${c.id}`,
        `CSeq: ${header(fwd, 'CSeq')[0]}`,
        ...header(fwd, 'Record-Route').map((v) => `Record-Route: ${v}`),
        `Contact: <sip:callee@127.0.0.1:${UAS_PORT};transport=UDP>`,
      ];
      answers.push([msg(['SIP/2.0 180 Ringing', ...common]), UAS_PORT]);
      answers.push([msg(['SIP/2.0 200 OK', ...common, 'Content-Type: application/sdp'], SDP_ANSWER), UAS_PORT]);
    }
    await feed(answers, () => sent.length >= 2 * calls.length);
    by = take();
    // The caller: ACK and BYE along the Record-Route → forwarded to the callee.
    const dialog: Array<[Buffer, number]> = [];
    for (const c of calls) {
      const ok = by.get(c.id)!.find((s) => s.text.startsWith('SIP/2.0 200'))!.text;
      c.routes = header(ok, 'Record-Route').reverse(); // the caller's route set: Record-Route reversed (§12.1.2)
      c.contact = /<([^>]+)>/.exec(header(ok, 'Contact')[0])![1];
      const inDialog = (method: string, cseq: number) =>
        msg([
          `${method} ${c.contact} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-${c.fromTag}-${method}`,
          ...c.routes!.map((r) => `Route: ${r}`),
          from(c),
          `To: <sip:user${c.callee}@${REALM}>;tag=${c.toTag}`,
          `Call-ID: ${c.id}`,
          `CSeq: ${cseq} ${method}`,
          'Max-Forwards: 70',
        ]);
      dialog.push([inDialog('ACK', 2), c.port], [inDialog('BYE', 3), c.port]);
    }
    await feed(dialog, () => sent.length >= 2 * calls.length);
    by = take();
    // The callee's 200 for the BYE → upstream.
    const byeOk: Array<[Buffer, number]> = [];
    for (const c of calls) {
      const bye = by.get(c.id)!.find((s) => s.text.startsWith('BYE '))?.text;
      expect(bye !== undefined, 'forwarded BYE expected', by.get(c.id));
      byeOk.push([msg([
        'SIP/2.0 200 OK',
        ...header(bye!, 'Via').map((v) => `Via: ${v}`),
        `From: ${header(bye!, 'From')[0]}`,
        `To: ${header(bye!, 'To')[0]}`,
        `Call-ID: ${c.id}`,
        `CSeq: ${header(bye!, 'CSeq')[0]}`,
      ]), UAS_PORT]);
    }
    await feed(byeOk, () => sent.length >= calls.length);
    by = take();
    for (const c of calls) expect(by.get(c.id)?.[0]?.text.startsWith('SIP/2.0 200') === true, 'BYE answered', by.get(c.id));
  }
  results.push((busy * 1000) / CALLS);
  extra.push(sends - 8 * CALLS);
}
console.log(`call hot path, ${CALLS} calls x ${ROUNDS} rounds in batches of ${BATCH} (first round cold: caches, JIT):`);
// Sends beyond a call's eight: retransmissions and late 100 Tryings, when the machine (or callgrind) is slow enough
// for a timer to fire between two phases; they are work a timed round or an instruction count then includes.
console.log(results.map((us, r) => `  round ${r + 1}: ${us.toFixed(1)} us per call (9 messages in, 8 out, no syscalls), ${extra[r]} extra sends`).join('\n'));
const warm = results.slice(1).sort((a, b) => a - b);
if (warm.length) console.log(`median of warm rounds: ${warm[Math.floor(warm.length / 2)].toFixed(1)} us`);
if ((globalThis as { gc?: () => void }).gc) console.log(`heap held by the last round's calls: ${((heapNow() - heapBefore) / CALLS).toFixed(0)} bytes per call`);
// HEAP_SNAPSHOT=file: what the calls still hold (their transactions in Accepted), for a heap profiler.
if (process.env.HEAP_SNAPSHOT) writeHeapSnapshot(process.env.HEAP_SNAPSHOT);
await server.stop();
rmSync(dir, { recursive: true, force: true });
