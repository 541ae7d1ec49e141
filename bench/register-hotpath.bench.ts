// The REGISTER hot path without the kernel: REGISTER → 401 → REGISTER with Digest → 200, fed straight into the
// SIP endpoint of a real server (SQLite journal, group commit, bus) with the transports' send replaced by a
// capture, so the figure is Switchboard's own CPU per registration (parse, transaction, auth, registrar, store,
// serialize) with the sendmsg/recvmsg syscalls left out. The client's digest work runs outside the timed phases.
// Run: node bench/register-hotpath.bench.ts [users] [rounds]      (npm run bench:hotpath)
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { newAccount } from '../src/identity/accounts.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/server.ts';
import type { Destination, Source } from '../src/sip/transport/types.ts';
import { SqliteAccountStore } from '../src/storage/sqlite/account-store.ts';
import { openDatabase } from '../src/storage/sqlite/database.ts';
import { testConfig, tempDir } from '../test/helpers/server.ts';

const USERS = Number(process.argv[2] ?? 5000);
const ROUNDS = Number(process.argv[3] ?? 6);
const dir = tempDir('sb-hotpath-');
const config = testConfig(dir, { realm: ['bench.test'], 'sip-transports': ['UDP'] });
{
  const db = openDatabase({ file: `${dir}/switchboard.db`, durability: 'os' });
  await new SqliteAccountStore(db).createMany(Array.from({ length: USERS }, (_, i) => newAccount(`user${i}`, 'bench.test', `pw${i}`)));
  db.close();
}
const server = await startServer(config, { log: createLogger('silent') });
const responses: string[] = [];
server.transports.sendNow = (data: Buffer, _to: Destination) => {
  responses.push(data.toString('latin1'));
};
const source = (i: number): Source => ({ transport: 'UDP', address: '127.0.0.1', port: 20000 + (i % 40000), family: 4, connectionId: null, local: { address: '127.0.0.1', port: 5060 } });
const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const request = (i: number, round: number, cseq: number, auth?: string) =>
  Buffer.from(
    [
      'REGISTER sip:bench.test SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${20000 + (i % 40000)};branch=z9hG4bK-${round}-${i}-${cseq}`,
      `From: <sip:user${i}@bench.test>;tag=${i}SIPpTag00${round}`,
      `To: <sip:user${i}@bench.test>`,
      `Call-ID: ${i}-${round}@127.0.0.1`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:user${i}@127.0.0.1:${20000 + (i % 40000)};transport=UDP>`,
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Max-Forwards: 70',
      'Expires: 3600',
      'User-Agent: SIPp',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
const settle = () => new Promise((r) => setImmediate(r));
const results: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Phase 1 (timed): the challenges.
  responses.length = 0;
  const firsts = Array.from({ length: USERS }, (_, i) => request(i, round, 1));
  let busy = 0;
  let t = performance.now();
  for (let i = 0; i < USERS; i++) {
    server.endpoint.receive(firsts[i], source(i));
    if (i % 200 === 199) await settle();
  }
  await settle();
  busy += performance.now() - t;
  if (responses.length !== USERS) throw new Error(`expected ${USERS} challenges, got ${responses.length}`);
  // Client work (untimed): answer each challenge.
  const seconds = responses.map((r, i) => {
    const nonce = /nonce="([^"]+)"/.exec(r)![1];
    const ha1 = md5(`user${i}:bench.test:pw${i}`);
    const ha2 = md5('REGISTER:sip:bench.test');
    const response = md5(`${ha1}:${nonce}:00000001:abcdef:auth:${ha2}`);
    return request(i, round, 2, `Digest username="user${i}",realm="bench.test",cnonce="abcdef",nc=00000001,qop=auth,uri="sip:bench.test",nonce="${nonce}",response="${response}",algorithm=MD5`);
  });
  responses.length = 0;
  // Phase 2 (timed): authenticated REGISTERs, until every 200 OK is out (after its group commit).
  t = performance.now();
  for (let i = 0; i < USERS; i++) {
    server.endpoint.receive(seconds[i], source(i));
    if (i % 200 === 199) await settle();
  }
  while (responses.length < USERS) await settle();
  busy += performance.now() - t;
  const ok = responses.filter((r) => r.startsWith('SIP/2.0 200')).length;
  if (ok !== USERS) throw new Error(`expected ${USERS} 200 OK, got ${ok}: ${responses.find((r) => !r.startsWith('SIP/2.0 200'))?.slice(0, 200)}`);
  results.push((busy * 1000) / USERS);
}
console.log(`REGISTER hot path, ${USERS} users x ${ROUNDS} rounds (first round cold: credential cache misses, JIT):`);
console.log(results.map((us, r) => `  round ${r + 1}: ${us.toFixed(1)} us per registration (both requests, no syscalls)`).join('\n'));
const warm = results.slice(1).sort((a, b) => a - b);
console.log(`median of warm rounds: ${warm[Math.floor(warm.length / 2)].toFixed(1)} us`);
await server.stop();
rmSync(dir, { recursive: true, force: true });
