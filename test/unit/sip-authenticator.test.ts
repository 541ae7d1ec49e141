// The SIP authenticator's use of the failure counters and the nonce-count tracker, with both made slow by hand so
// that what is asked before anything answers can be seen: over a shared cache (Redis) every ask is a command, and
// the asks made together leave in one round trip.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SipAuthenticator } from '../../src/identity/sip-authenticator.ts';
import { computeHa1, NonceIssuer, type DigestAlgorithm, type NonceCountResult, type NonceCountTracker, type NonceInfo } from '../../src/sip/digest.ts';
import { parseMessage, type SipRequest } from '../../src/sip/message/index.ts';
import type { Source } from '../../src/sip/transport/types.ts';
import { createLogger } from '../../src/log.ts';
import { MemoryFailureCounter } from '../../src/storage/memory/failure-counter.ts';
import { NonceCountWindow } from '../../src/storage/memory/nonce-counts.ts';
import type { FailureCounter, FoundCredential } from '../../src/storage/ports.ts';
import { digestAuthorization, parseChallenge } from '../helpers/sip-client.ts';
import { testConfig, tempDir } from '../helpers/server.ts';

const D = 'example.test';
const source: Source = { transport: 'UDP', family: 4, address: '192.0.2.7', port: 5060, local: { address: '127.0.0.1', port: 5060 }, connectionId: null };

/** Answers only when told to, and records what was asked in order. */
class Slow {
  asks: string[] = [];
  private held: Array<() => void> = [];
  ask<T>(what: string, value: T): Promise<T> {
    this.asks.push(what);
    return new Promise((r) => this.held.push(() => r(value)));
  }
  release(): void {
    for (const h of this.held.splice(0)) h();
  }
}

function setup(locked: Record<string, number> = {}, known: string[] = []) {
  const slow = new Slow();
  const failures: FailureCounter = {
    lockedFor: (key) => slow.ask(`lockedFor ${key}`, locked[key] ?? 0),
    hit: (key) => slow.ask(`hit ${key}`, 1),
    lock: (key) => slow.ask(`lock ${key}`, undefined),
    reset: (key) => slow.ask(`reset ${key}`, undefined),
    remember: (key) => slow.ask(`remember ${key}`, undefined),
    remembered: (key) => slow.ask(`remembered ${key}`, known.includes(key)),
  };
  const nonceCounts: NonceCountTracker = {
    issued: () => {},
    claim: (_info: NonceInfo, nc: number) => slow.ask<NonceCountResult>(`claim ${nc}`, 'ok'),
  };
  const find = (authUser: string, realm: string, algorithm: DigestAlgorithm): FoundCredential | null =>
    authUser === 'alice' ? { credential: { accountId: 'a1', authUser, realm, algorithm, ha1: computeHa1(algorithm, authUser, realm, 'pw') }, aors: [`alice@${D}`] } : null;
  // As the credential cache does: it answers what it holds without the store.
  const credentials = { findSipCredential: find, peekSipCredential: find };
  const config = testConfig(tempDir('sb-auth-'));
  const auth = new SipAuthenticator({
    credentials, nonces: new NonceIssuer(randomBytes(32), 300, 1), nonceCounts, failures,
    digest: config.digest, policy: config.auth, log: createLogger('silent'),
  });
  return { slow, auth };
}

function register(authorization?: string): SipRequest {
  const text = [
    `REGISTER sip:${D} SIP/2.0`, 'Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-1', `From: <sip:alice@${D}>;tag=1`, `To: <sip:alice@${D}>`,
    'Call-ID: c1@test', 'CSeq: 1 REGISTER', `Contact: <sip:alice@192.0.2.7:5060>`, 'Max-Forwards: 70',
    ...(authorization ? [`Authorization: ${authorization}`] : []), 'Content-Length: 0', '', '',
  ].join('\r\n');
  return parseMessage(Buffer.from(text)) as SipRequest;
}

async function answer(auth: SipAuthenticator, slow: Slow, password: string): Promise<string> {
  const first = await auth.authenticate(register(), source, D);
  assert.equal(first.ok, false);
  const challenge = parseChallenge((first as { response: { get(h: string): string | undefined } }).response.get('WWW-Authenticate')!);
  const a = digestAuthorization(challenge, { username: 'alice', password, method: 'REGISTER', uri: `sip:${D}` });
  slow.asks = [];
  const pending = Promise.resolve(auth.authenticate(register(a), source, D));
  await new Promise((r) => setImmediate(r));
  const before = [...slow.asks];
  // Answer everything, also what is asked once the first answers are in (failure counting), until it is done.
  let done = false;
  void pending.finally(() => (done = true));
  while (!done) {
    slow.release();
    await new Promise((r) => setImmediate(r));
  }
  const out = await pending;
  return `${before.join(', ')} => ${out.ok ? 'ok' : out.response.status}`;
}

describe('SIP authenticator and the shared cache', () => {
  it('challenges a request without credentials without asking the failure counters', async () => {
    const { slow, auth } = setup();
    const out = await auth.authenticate(register(), source, D);
    assert.equal(out.ok, false);
    assert.equal((out as { response: { status: number } }).response.status, 401);
    assert.deepEqual(slow.asks, []);
  });

  it('asks for the three lockouts and claims the nonce count of a correct answer at once, before any reply', async () => {
    const { slow, auth } = setup();
    assert.equal(await answer(auth, slow, 'pw'), `lockedFor addr:${source.address}, lockedFor acct:alice@${D}|${source.address}, lockedFor acct:alice@${D}, claim 1 => ok`);
  });

  it('claims nothing for a wrong password, and a locked account gets 403 whatever the password', async () => {
    let t = setup();
    assert.match(await answer(t.auth, t.slow, 'guess'), new RegExp(`^lockedFor addr:[^,]+, lockedFor acct:alice@${D}\\|[^,]+, lockedFor acct:alice@${D} => 401$`));
    t = setup({ [`acct:alice@${D}`]: 60 });
    assert.match(await answer(t.auth, t.slow, 'pw'), / => 403$/, 'an account locked for sources it has not authenticated from');
    t = setup({ [`acct:alice@${D}`]: 60 }, [`known:acct:alice@${D}|${source.address}`]);
    assert.match(await answer(t.auth, t.slow, 'pw'), / => ok$/, 'a source it authenticated from before still gets in');
    t = setup({ [`acct:alice@${D}|${source.address}`]: 60 }, [`known:acct:alice@${D}|${source.address}`]);
    assert.match(await answer(t.auth, t.slow, 'pw'), / => 403$/, 'unless that very source guessed too often');
    t = setup({ [`acct:alice@${D}`]: 60 });
    assert.match(await answer(t.auth, t.slow, 'guess'), / => 403$/, 'no guess is counted, or told apart, while locked');
    t = setup({ [`addr:${source.address}`]: 60 });
    assert.match(await answer(t.auth, t.slow, 'pw'), / => 403$/);
  });
});

describe('SIP authenticator in-process', () => {
  it('answers at once when nothing has to be waited for, and checks the nonce count and the password all the same', async () => {
    const failures = new MemoryFailureCounter();
    const config = testConfig(tempDir('sb-auth-'));
    const find = (authUser: string, realm: string, algorithm: DigestAlgorithm): FoundCredential | null =>
      authUser === 'alice' ? { credential: { accountId: 'a1', authUser, realm, algorithm, ha1: computeHa1(algorithm, authUser, realm, 'pw') }, aors: [`alice@${D}`] } : null;
    const nonces = new NonceIssuer(randomBytes(32), 300, 1);
    const auth = new SipAuthenticator({
      credentials: { findSipCredential: find, peekSipCredential: find }, nonces, nonceCounts: new NonceCountWindow(1, () => nonces.nextIndex, 10),
      failures, digest: config.digest, policy: config.auth, log: createLogger('silent'),
    });
    const first = auth.authenticate(register(), source, D);
    assert.ok(!(first instanceof Promise) && !first.ok && first.response.status === 401);
    const challenge = parseChallenge(first.response.get('WWW-Authenticate')!);
    const answer = (nc: number, password = 'pw') => register(digestAuthorization(challenge, { username: 'alice', password, method: 'REGISTER', uri: `sip:${D}`, nc }));
    const ok = auth.authenticate(answer(1), source, D);
    assert.ok(!(ok instanceof Promise), 'no promise for a correct answer');
    assert.equal(ok.ok && ok.identity.accountId, 'a1');
    const replay = auth.authenticate(answer(1), source, D);
    assert.ok(!(replay instanceof Promise) && !replay.ok && replay.reason === 'replay', 'a replayed nonce count is refused at once');
    assert.equal((await auth.authenticate(answer(2), source, D)).ok, true);
    const wrong = await auth.authenticate(answer(3, 'guess'), source, D);
    assert.ok(!wrong.ok && wrong.reason === 'wrong-password');
    assert.equal(failures.hit(`acct:alice@${D}`, 60), 2, 'the failure was counted');
  });
});
