// Identity costs: access-token verification (uncached: signature + claims; cached: a Map lookup), and HTTP
// login throughput at the configured argon2id cost. Run: npm run bench:identity
import { rmSync } from 'node:fs';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/server.ts';
import { tempDir } from '../test/helpers/server.ts';

const dir = tempDir('sb-bench-');
const config = loadConfig({ env: {}, flags: { 'data-dir': dir, realm: ['bench.test'], 'sip-host': ['127.0.0.1'], 'sip-port': '0', 'http-host': '127.0.0.1', 'http-port': '0', 'log-level': 'silent', 'login-rate-limit': '0', 'auth-account-failures': '1000000' } });
const server = await startServer(config, { log: createLogger('silent') });
try {
  const account = await server.accountService.create('alice@bench.test', 'alice-password');
  const N = 20000;
  const tokens = await Promise.all(Array.from({ length: N }, () => server.tokens.issue(account).then((t) => t.token)));

  // Uncached: every token is new to the cache.
  server.tokens.clearCache();
  let t = process.hrtime.bigint();
  for (const tok of tokens) await server.tokens.verify(tok);
  const uncached = Number(process.hrtime.bigint() - t) / N / 1000;

  // Cached: the same tokens again.
  t = process.hrtime.bigint();
  for (let r = 0; r < 5; r++) for (const tok of tokens) await server.tokens.verify(tok);
  const cached = Number(process.hrtime.bigint() - t) / (5 * N) / 1000;

  // Login over HTTP: argon2id verification dominates; concurrency 4 (the libuv pool runs argon2).
  const url = `http://127.0.0.1:${server.http.port}/auth/login`;
  const body = JSON.stringify({ username: 'alice@bench.test', password: 'alice-password' });
  const M = 200;
  t = process.hrtime.bigint();
  let done = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (done < M) {
      done++;
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (r.status !== 200) throw new Error(`login ${r.status}`);
      await r.arrayBuffer();
    }
  }));
  const loginSecs = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(`token verification: uncached ${uncached.toFixed(1)} us, cached ${cached.toFixed(2)} us (${config.tokens.algorithm})`);
  console.log(`login: ${(M / loginSecs).toFixed(0)}/s at argon2id m=${config.passwords.argon2MemoryKiB} KiB t=${config.passwords.argon2Passes} (4 concurrent clients)`);
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
