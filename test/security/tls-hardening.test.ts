// TLS hardening (issue 15), checked with openssl s_client against a running server's SIP over TLS and WSS ports:
// a client-initiated renegotiation ("R" on a TLS 1.2 connection) is refused, a CBC suite under TLS 1.2 fails the
// handshake, an AEAD suite (and TLS 1.3) works, and --tls-ciphers narrows the list further.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';

interface Run {
  code: number | null;
  out: string;
}

/** Runs s_client; after the handshake, writes `input` (an "R" line asks s_client to renegotiate), then a probe line. */
function sClient(port: number, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.stdin.on('error', () => {});
    const waitFor = (re: RegExp, ms: number) =>
      new Promise<void>((r) => {
        const t0 = Date.now();
        const tick = () => (re.test(out) || Date.now() - t0 > ms ? r() : setTimeout(tick, 50));
        tick();
      });
    void (async () => {
      await waitFor(/Cipher is|error|errno/i, 10_000);
      if (input) {
        p.stdin.write(input);
        await waitFor(/RENEGOTIATING[\s\S]*(verify return|error|closed)/, 5000);
        await new Promise((r) => setTimeout(r, 500));
      }
      p.stdin.end();
      setTimeout(() => p.kill(), 1500).unref();
    })();
    p.on('exit', (code) => resolve({ code, out }));
  });
}

/** After "RENEGOTIATING": did a second handshake complete? (s_client prints the verification of the new one.) */
function renegotiated(out: string): boolean {
  const after = out.slice(out.indexOf('RENEGOTIATING'));
  // An OpenSSL error line reads "<thread>:error:<code>:..." ("verify error:num=18" is the self-signed certificate).
  return out.includes('RENEGOTIATING') && /verify return/.test(after) && !/no renegotiation|alert number|:error:/i.test(after);
}

describe('TLS hardening (openssl s_client)', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ flags: { 'sip-transports': ['UDP', 'TLS', 'WSS'] } });
  });
  after(() => s.close());

  for (const transport of ['TLS', 'WSS'] as const) {
    describe(transport, () => {
      it('refuses a client-initiated renegotiation on TLS 1.2', async () => {
        const r = await sClient(s.portOf(transport), ['-tls1_2'], 'R\n');
        assert.match(r.out, /Cipher is ECDHE-ECDSA-AES\d+-GCM-SHA\d+/, 'the first handshake works');
        assert.match(r.out, /RENEGOTIATING/, 's_client asked');
        assert.equal(renegotiated(r.out), false, `renegotiation was accepted:\n${r.out}`);
      });

      it('fails the handshake for a CBC suite under TLS 1.2', async () => {
        for (const cbc of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-SHA256']) {
          const r = await sClient(s.portOf(transport), ['-tls1_2', '-cipher', cbc]);
          assert.notEqual(r.code, 0, `${cbc} was accepted:\n${r.out}`);
          assert.match(r.out, /Cipher is \(NONE\)|handshake failure/, cbc);
        }
      });

      it('completes the handshake with an AEAD suite under TLS 1.2, and with TLS 1.3', async () => {
        for (const aead of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
          const r = await sClient(s.portOf(transport), ['-tls1_2', '-cipher', aead]);
          assert.match(r.out, new RegExp(`Cipher is ${aead}`), aead);
        }
        const r13 = await sClient(s.portOf(transport), ['-tls1_3']);
        assert.match(r13.out, /TLSv1\.3, Cipher is TLS_/);
      });
    });
  }

  it('takes a narrower list from --tls-ciphers', async () => {
    const narrow = await startTestServer({ flags: { 'sip-transports': ['UDP', 'TLS'], 'tls-ciphers': 'TLS_AES_256_GCM_SHA384:ECDHE-ECDSA-AES256-GCM-SHA384' } });
    try {
      const port = narrow.portOf('TLS');
      assert.match((await sClient(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384'])).out, /Cipher is ECDHE-ECDSA-AES256-GCM-SHA384/);
      assert.match((await sClient(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'])).out, /Cipher is \(NONE\)|handshake failure/);
    } finally {
      await narrow.close();
    }
  });
});
