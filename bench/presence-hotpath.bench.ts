// The presence subscription set-up without the kernel: SUBSCRIBE → 401 per watcher, then each watcher's SUBSCRIBEs
// with Digest (nonce counts 1, 2, …) → group commit → 200 OK → first NOTIFY → its 200, fed straight into the SIP
// endpoint of a real server (SQLite, bus) with the transports' sends replaced by a capture: the figure is
// Switchboard's own CPU per subscription (what bench:presence measures, less its sendmsg/recvmsg syscalls and the
// other process). The client's work (Digest answers, the 200s to NOTIFYs) runs outside the timed phases.
// Run: node bench/presence-hotpath.bench.ts [watchers] [presentities] [rounds]
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { newAccount } from '../src/identity/accounts.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/server.ts';
import type { Destination, SendDone, Source } from '../src/sip/transport/types.ts';
import { SqliteAccountStore } from '../src/storage/sqlite/account-store.ts';
import { openDatabase } from '../src/storage/sqlite/database.ts';
import { testConfig, tempDir } from '../test/helpers/server.ts';

const WATCHERS = Number(process.argv[2] ?? 1000);
const PRESENTITIES = Number(process.argv[3] ?? 10);
const ROUNDS = Number(process.argv[4] ?? 5);
const D = 'bench.test';
const dir = tempDir('sb-presence-hotpath-');
const config = testConfig(dir, { realm: [D], 'sip-transports': ['UDP'], 'presence-max-expires': '3600', 'auth-account-failures': '1000000', 'auth-address-failures': '1000000' });
{
  const db = openDatabase({ file: `${dir}/switchboard.db`, durability: 'os' });
  const accounts = [...Array.from({ length: WATCHERS }, (_, i) => newAccount(`w${i}`, D, `pw-w${i}`)), ...Array.from({ length: PRESENTITIES * ROUNDS }, (_, i) => newAccount(`p${i}`, D, `pw-p${i}`))];
  await new SqliteAccountStore(db).createMany(accounts);
  db.close();
}
const server = await startServer(config, { log: createLogger('silent') });
const out: string[] = [];
server.transports.sendNow = (data: Buffer, _to: Destination) => {
  out.push(data.toString('latin1'));
};
server.transports.send = (data: Buffer, _to: Destination) => {
  out.push(data.toString('latin1'));
  return Promise.resolve();
};
// Client transactions (the NOTIFYs) send through this one since the UDP transport's reporting send: uncaptured, the
// NOTIFYs went out on a real socket and the bench waited for them for ever. `done` on the next tick, as node:dgram
// calls it for a datagram the kernel took.
server.transports.sendReporting = (data: Buffer, _to: Destination, done: SendDone) => {
  out.push(data.toString('latin1'));
  process.nextTick(done, null);
};
const port = (i: number) => 20000 + (i % 10);
const source = (i: number): Source => ({ transport: 'UDP', address: '127.0.0.1', port: port(i), family: 4, connectionId: null, local: { address: '127.0.0.1', port: 5060 } });
const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const subscribe = (i: number, p: number, round: number, cseq: number, auth?: string) =>
  Buffer.from(
    [
      `SUBSCRIBE sip:p${p}@${D} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port(i)};branch=z9hG4bKbench${round}x${i}x${p}x${cseq};rport`,
      'Max-Forwards: 70',
      `From: <sip:w${i}@${D}>;tag=t${i}x${p}`,
      `To: <sip:p${p}@${D}>`,
      `Call-ID: b-${round}-w${i}-p${p}`,
      `CSeq: ${cseq} SUBSCRIBE`,
      `Contact: <sip:w${i}@127.0.0.1:${port(i)}>`,
      'Event: presence',
      'Accept: application/pidf+xml',
      'Expires: 3600',
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
/** The 200 a watcher answers a NOTIFY with: its Via, From, To, Call-ID and CSeq. */
const okTo = (notify: string) => {
  const head = notify.slice(0, notify.indexOf('\r\n\r\n'));
  const keep = head.split('\r\n').filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
  return Buffer.from(`SIP/2.0 200 OK\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
};
const settle = () => new Promise((r) => setImmediate(r));
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
async function feed(msgs: Buffer[], from: (k: number) => number): Promise<number> {
  const c = cpu();
  for (let k = 0; k < msgs.length; k++) {
    server.endpoint.receive(msgs[k], source(from(k)));
    if (k % 200 === 199) await settle();
  }
  await settle();
  return cpu() - c;
}
const results: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Timed: one challenge per watcher.
  out.length = 0;
  let busy = await feed(Array.from({ length: WATCHERS }, (_, i) => subscribe(i, round * PRESENTITIES, round, 1)), (k) => k);
  if (out.length !== WATCHERS || !out.every((r) => r.startsWith('SIP/2.0 401'))) throw new Error(`expected ${WATCHERS} challenges, got ${out.length}: ${out[0]?.slice(0, 100)}`);
  const nonces = out.map((r) => /nonce="([^"]+)"/.exec(r)![1]);
  // Untimed: the authenticated SUBSCRIBEs, each watcher's nonce counts in order.
  const msgs: Buffer[] = [];
  const who: number[] = [];
  for (let p = 0; p < PRESENTITIES; p++) {
    for (let i = 0; i < WATCHERS; i++) {
      const presentity = round * PRESENTITIES + p;
      const uri = `sip:p${presentity}@${D}`;
      const nc = (p + 1).toString(16).padStart(8, '0');
      const ha1 = md5(`w${i}:${D}:pw-w${i}`);
      const response = md5(`${ha1}:${nonces[i]}:${nc}:c${i}:auth:${md5(`SUBSCRIBE:${uri}`)}`);
      msgs.push(subscribe(i, presentity, round, p === 0 ? 2 : 1, `Digest username="w${i}", realm="${D}", nonce="${nonces[i]}", uri="${uri}", response="${response}", algorithm=MD5, cnonce="c${i}", qop=auth, nc=${nc}`));
      who.push(i);
    }
  }
  out.length = 0;
  // Timed: the SUBSCRIBEs, their group commits, 200s and first NOTIFYs, and the server taking the watchers' 200s,
  // answered every 200 requests (before Timer E would retransmit them); building the 200s is the client's work, its
  // CPU taken out.
  let oks = 0;
  let notifies = 0;
  let clientCpu = 0;
  const answer = () => {
    const c = cpu();
    const answers: Buffer[] = [];
    for (const r of out) {
      if (r.startsWith('NOTIFY')) {
        notifies++;
        answers.push(okTo(r));
      } else if (r.startsWith('SIP/2.0 200')) oks++;
      else throw new Error(`unexpected: ${r.slice(0, 200)}`);
    }
    out.length = 0;
    clientCpu += cpu() - c;
    for (const a of answers) server.endpoint.receive(a, source(0));
  };
  const c0 = cpu();
  for (let k = 0; k < msgs.length; k++) {
    server.endpoint.receive(msgs[k], source(who[k]));
    if (k % 200 === 199) {
      await settle();
      answer();
    }
  }
  while (oks < msgs.length || notifies < msgs.length) {
    await settle();
    answer();
  }
  await settle();
  busy += cpu() - c0 - clientCpu;
  if (oks !== msgs.length || notifies !== msgs.length) throw new Error(`expected ${msgs.length} 200s and NOTIFYs, got ${oks} and ${notifies}`);
  results.push((busy * 1000) / msgs.length);
}
console.log(`presence set-up hot path, ${WATCHERS} watchers x ${PRESENTITIES} presentities x ${ROUNDS} rounds (CPU of this process; first round cold):`);
console.log(results.map((us, r) => `  round ${r + 1}: ${us.toFixed(1)} us per subscription (SUBSCRIBE, 200, NOTIFY, its 200; no syscalls)`).join('\n'));
const warm = results.slice(1).sort((a, b) => a - b);
console.log(`median of warm rounds: ${warm[Math.floor(warm.length / 2)].toFixed(1)} us`);
await server.stop();
rmSync(dir, { recursive: true, force: true });
