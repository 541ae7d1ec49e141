// HTTP Digest for SIP (src/sip/digest.ts) and the in-process nonce-count window
// (src/storage/memory/nonce-counts.ts). Expected values are the RFC 7616 §3.9.1 example or are computed here with
// node:crypto, independently of the code under test.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  computeHa1,
  digestChallenge,
  digestCredentials,
  digestHash,
  expectedResponse,
  NonceIssuer,
  parseAuthHeader,
  sameText,
  verifyDigest,
  type AuthHeader,
  type DigestAlgorithm,
} from '../../src/sip/digest.ts';
import { isTokenChar, scanQuoted, skipLws, unquote } from '../../src/sip/message/grammar.ts';
import { NonceCountWindow } from '../../src/storage/memory/nonce-counts.ts';

const NODE_HASH: Record<string, string> = { MD5: 'md5', 'SHA-256': 'sha256', 'SHA-512-256': 'sha512-256' };
const h = (alg: string, s: string | Buffer) => createHash(NODE_HASH[alg]).update(s).digest('hex');

// RFC 7616 §3.9.1: the user "Mufasa" with password "Circle of Life", GET /dir/index.html, nc=00000001, qop=auth.
const RFC = {
  username: 'Mufasa',
  password: 'Circle of Life',
  realm: 'http-auth@example.org',
  method: 'GET',
  uri: '/dir/index.html',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
  opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
  nc: '00000001',
  md5: '8ca523f5e9506fed4657c9700eebdbec',
  sha256: '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
};

/** The Authorization value the client of RFC 7616 §3.9.1 sends (its line breaks are folded LWS). */
function rfcAuthorization(alg: string, response: string): string {
  return (
    `Digest username="${RFC.username}",\r\n       realm="${RFC.realm}",\r\n       uri="${RFC.uri}",\r\n       algorithm=${alg},\r\n` +
    `       nonce="${RFC.nonce}",\r\n       nc=${RFC.nc},\r\n       cnonce="${RFC.cnonce}",\r\n       qop=auth,\r\n` +
    `       response="${response}",\r\n       opaque="${RFC.opaque}"`
  );
}

function creds(value: string) {
  const header = parseAuthHeader(value);
  assert.ok(header, value);
  const c = digestCredentials(header);
  assert.ok(c, value);
  return { header, c };
}

describe('RFC 7616 §3.9.1 example', () => {
  for (const [alg, want] of [
    ['MD5', RFC.md5],
    ['SHA-256', RFC.sha256],
  ] as const) {
    it(`computes the ${alg} response ${want}`, () => {
      const ha1 = computeHa1(alg, RFC.username, RFC.realm, RFC.password);
      assert.equal(ha1, h(alg, `${RFC.username}:${RFC.realm}:${RFC.password}`));
      const { header, c } = creds(rfcAuthorization(alg, want));
      assert.equal(c.algorithm, alg);
      assert.equal(c.qop, 'auth');
      assert.equal(c.nc, 1);
      assert.equal(c.opaque, RFC.opaque);
      assert.equal(expectedResponse(c, ha1, RFC.method, RFC.nc), want);
      assert.equal(verifyDigest(header, c, ha1, RFC.method), true);
      assert.equal(verifyDigest(header, c, computeHa1(alg, RFC.username, RFC.realm, 'Circle Of Life'), RFC.method), false, 'another password');
      assert.equal(verifyDigest(header, c, ha1, 'POST'), false, 'another method');
    });
  }
});

/** The response per RFC 7616 §3.4.1, written out here independently. */
function independentResponse(o: { alg: string; sess?: boolean; qop?: 'auth' | 'auth-int' | null; user: string; realm: string; pw: string; method: string; uri: string; nonce: string; cnonce: string; nc: string; body?: Buffer }): string {
  const H = (s: string | Buffer) => h(o.alg, s);
  let ha1 = H(`${o.user}:${o.realm}:${o.pw}`);
  if (o.sess) ha1 = H(`${ha1}:${o.nonce}:${o.cnonce}`);
  const ha2 = o.qop === 'auth-int' ? H(`${o.method}:${o.uri}:${H(o.body ?? Buffer.alloc(0))}`) : H(`${o.method}:${o.uri}`);
  if (!o.qop) return H(`${ha1}:${o.nonce}:${ha2}`);
  return H(`${ha1}:${o.nonce}:${o.nc}:${o.cnonce}:${o.qop}:${ha2}`);
}

describe('every algorithm and variant, against an independent computation', () => {
  const base = { user: 'alice', realm: 'example.test', pw: 'p4ssw0rd!', method: 'REGISTER', uri: 'sip:example.test', nonce: 'AWZ0nqQAAAAqAAAAAh7xrV1bmMk9xJ3oVK', cnonce: '6b8b4567', nc: '0000002a' };
  for (const alg of ['MD5', 'SHA-256', 'SHA-512-256'] as const) {
    for (const sess of [false, true]) {
      for (const qop of ['auth', 'auth-int', null] as const) {
        if (sess && qop === null) continue; // -sess needs a cnonce, which only comes with qop
        const name = `${alg}${sess ? '-sess' : ''} qop=${qop ?? 'none'}`;
        it(name, () => {
          const body = Buffer.from('v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n');
          const want = independentResponse({ ...base, alg, sess, qop, body });
          const value =
            `Digest username="alice", realm="example.test", nonce="${base.nonce}", uri="${base.uri}", response="${want.toUpperCase()}", algorithm=${alg}${sess ? '-sess' : ''}` +
            (qop ? `, qop=${qop}, nc=${base.nc}, cnonce="${base.cnonce}"` : '');
          const { header, c } = creds(value);
          assert.equal(c.session, sess);
          const ha1 = computeHa1(alg, base.user, base.realm, base.pw);
          assert.equal(expectedResponse(c, ha1, 'REGISTER', base.nc, body), want);
          assert.equal(verifyDigest(header, c, ha1, 'REGISTER', body), true, 'upper-case hex from the client is fine');
          if (qop === 'auth-int') assert.equal(verifyDigest(header, c, ha1, 'REGISTER', Buffer.from('other body')), false, 'the body counts');
          assert.equal(verifyDigest(header, c, computeHa1(alg, base.user, base.realm, 'wrong'), 'REGISTER', body), false);
        });
      }
    }
  }

  it('H(A2) is remembered per algorithm, method and digest-uri: right for the same, for thousands of others and for long ones', () => {
    const ha1 = computeHa1('MD5', base.user, base.realm, base.pw);
    const uris = [...Array.from({ length: 5000 }, (_, i) => `sip:u${i % 4500}@example.test`), `sip:${'x'.repeat(600)}@example.test`];
    for (const method of ['SUBSCRIBE', 'INVITE']) {
      for (const uri of uris) {
        const { c } = creds(`Digest username="alice", realm="example.test", nonce="${base.nonce}", uri="${uri}", response="0", qop=auth, nc=${base.nc}, cnonce="${base.cnonce}"`);
        assert.equal(expectedResponse(c, ha1, method, base.nc), independentResponse({ ...base, method, uri, alg: 'MD5', sess: false, qop: 'auth', body: Buffer.alloc(0) }));
      }
    }
  });

  it('SHA-512-256 is the truncated SHA-512/256 function, not SHA-512 cut to 256 bits', () => {
    const ha1 = computeHa1('SHA-512-256', 'a', 'b', 'c');
    assert.equal(ha1.length, 64);
    assert.equal(ha1, createHash('sha512-256').update('a:b:c').digest('hex'));
    assert.notEqual(ha1, createHash('sha512').update('a:b:c').digest('hex').slice(0, 64));
  });

  it('digestHash hashes a wire string as its octets', () => {
    const wire = Buffer.from('ünïcode:realm', 'utf8').toString('latin1');
    for (const alg of ['MD5', 'SHA-256', 'SHA-512-256'] as DigestAlgorithm[]) assert.equal(digestHash(alg, wire), h(alg, Buffer.from(wire, 'latin1')));
  });

  it('sameText tells equal strings from unequal ones of the same length, wherever they differ', () => {
    const a = 'd2b4dd5c8a1e0e3f6c7bb1a7b1d0f8e4';
    assert.equal(sameText(a, a.slice()), true);
    assert.equal(sameText('', ''), true);
    for (let i = 0; i < a.length; i++) assert.equal(sameText(a, a.slice(0, i) + (a[i] === '0' ? '1' : '0') + a.slice(i + 1)), false, String(i));
    assert.equal(sameText(a, a.slice(1)), false);
    assert.equal(sameText(a.slice(1), a), false);
    assert.equal(sameText('\u0100', '\u0000'), false, 'beyond one byte, no bit lost');
  });

  it('verifyDigest refuses a response of the wrong length without throwing', () => {
    const { header, c } = creds('Digest username="a", realm="r", nonce="n", uri="sip:r", response="abc"');
    assert.equal(verifyDigest(header, c, computeHa1('MD5', 'a', 'r', 'p'), 'REGISTER'), false);
  });
});

describe('parseAuthHeader', () => {
  it('reads quoted and unquoted values, names case-insensitively, with LWS anywhere between', () => {
    const a = parseAuthHeader('Digest  USERNAME = "bob" ,realm="biloxi.com",  nc=00000001 , qop=auth,algorithm=SHA-256')!;
    assert.equal(a.scheme, 'digest');
    assert.equal(a.token, null);
    assert.deepEqual([...a.params], [
      ['username', 'bob'],
      ['realm', 'biloxi.com'],
      ['nc', '00000001'],
      ['qop', 'auth'],
      ['algorithm', 'SHA-256'],
    ]);
  });
  it('resolves escapes in quoted values and keeps commas and "=" inside them', () => {
    const a = parseAuthHeader('Digest username="a\\"b\\\\c", realm="x, y=z"')!;
    assert.equal(a.params.get('username'), 'a"b\\c');
    assert.equal(a.params.get('realm'), 'x, y=z');
  });
  it('reads every RFC 7616 directive name in any case as its lower-case name', () => {
    const names = ['username', 'realm', 'nonce', 'uri', 'response', 'algorithm', 'cnonce', 'opaque', 'qop', 'nc', 'userhash', 'x-other'];
    for (const spell of [(n: string) => n, (n: string) => n.toUpperCase(), (n: string) => n[0].toUpperCase() + n.slice(1)]) {
      const h = parseAuthHeader('Digest ' + names.map((n, i) => `${spell(n)}="v${i}"`).join(', '))!;
      assert.deepEqual([...h.params], names.map((n, i) => [n, `v${i}`]));
    }
  });

  it('holds its directives as a read-only map: get, has, size, iteration in order, forEach', () => {
    const h = parseAuthHeader('Digest realm="r", nonce="n", qop=auth')!;
    assert.deepEqual([h.params.get('realm'), h.params.get('nonce'), h.params.get('qop'), h.params.get('uri')], ['r', 'n', 'auth', undefined]);
    assert.deepEqual([h.params.has('nonce'), h.params.has('NONCE'), h.params.size], [true, false, 3]);
    assert.deepEqual([...h.params.keys()], ['realm', 'nonce', 'qop']);
    assert.deepEqual([...h.params.values()], ['r', 'n', 'auth']);
    assert.deepEqual(Object.fromEntries(h.params), { realm: 'r', nonce: 'n', qop: 'auth' });
    const seen: string[] = [];
    h.params.forEach((v, k, m) => seen.push(`${k}=${v}:${m === h.params}`));
    assert.deepEqual(seen, ['realm=r:true', 'nonce=n:true', 'qop=auth:true']);
  });

  it('rejects a directive given twice, in whatever case (RFC 7616 §3.4)', () => {
    assert.equal(parseAuthHeader('Digest realm="a", realm="a"'), null);
    assert.equal(parseAuthHeader('Digest realm="a", REALM="b"'), null);
    assert.equal(parseAuthHeader('Digest nonce="n", response="r", nonce="m"'), null);
  });
  it('reads a token68 credential (RFC 7235 §2.1), as Bearer uses (RFC 8898)', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.MEUCIQDx-_~+/abc==';
    const b = parseAuthHeader(`Bearer ${jwt}`)!;
    assert.deepEqual([b.scheme, b.token, b.params.size], ['bearer', jwt, 0]);
    assert.equal(parseAuthHeader('BEARER  abc  ')!.token, 'abc');
    assert.equal(parseAuthHeader('Basic dXNlcjpwYXNz')!.token, 'dXNlcjpwYXNz');
  });
  it('reads an unknown scheme with parameters (RFC 4475 regaut01)', () => {
    const a = parseAuthHeader('NoOneKnowsThisScheme opaque-data=here')!;
    assert.equal(a.scheme, 'nooneknowsthisscheme');
    assert.equal(a.params.get('opaque-data'), 'here');
  });
  it('reads a lone word after the scheme as token68, which is no Digest credential', () => {
    for (const v of ['Digest realm', 'Digest realm=']) {
      const a = parseAuthHeader(v)!;
      assert.equal(a.token, v.slice(7));
      assert.equal(digestCredentials(a), null);
    }
  });
  it('reads auth-params first and token68 only when they do not parse: the same outcome as token68 first', () => {
    // The parser as it was (token68 tested first), as the reference.
    const reference = (value: string) => {
      let i = skipLws(value, 0);
      const start = i;
      while (i < value.length && isTokenChar(value.charCodeAt(i))) i++;
      if (i === start) return null;
      const scheme = value.slice(start, i).toLowerCase();
      i = skipLws(value, i);
      const rest = value.slice(i);
      if (/^[A-Za-z0-9\-._~+/]+=*[ \t]*$/.test(rest)) return { scheme, params: new Map(), token: rest.trim() };
      const params = new Map<string, string>();
      while (i < value.length) {
        const ns = i;
        while (i < value.length && isTokenChar(value.charCodeAt(i))) i++;
        if (i === ns) return null;
        const name = value.slice(ns, i).toLowerCase();
        i = skipLws(value, i);
        if (value.charCodeAt(i) !== 61) return null;
        i = skipLws(value, i + 1);
        let v: string;
        if (value.charCodeAt(i) === 34) {
          const end = scanQuoted(value, i);
          if (end < 0) return null;
          v = unquote(value.slice(i, end));
          i = end;
        } else {
          const vs = i;
          while (i < value.length && isTokenChar(value.charCodeAt(i))) i++;
          if (i === vs) return null;
          v = value.slice(vs, i);
        }
        if (params.has(name)) return null;
        params.set(name, v);
        i = skipLws(value, i);
        if (i < value.length) {
          if (value.charCodeAt(i) !== 44) return null;
          i = skipLws(value, i + 1);
        }
      }
      return { scheme, params, token: null };
    };
    const alphabet = ['a', 'Z', '0', '=', '==', '"', '\\', ',', ' ', '\t', '-', '/', '+', '~', 'realm', 'x="y"', '"a\\"b"', '\\\\'];
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const cases = ['Digest abc==', 'Digest abc=', 'Bearer a.b.c', 'Digest a="b\\"c", d=e', 'Digest a="b\\', 'Digest a="\\\\"', 'Digest', 'Digest  '];
    for (let n = 0; n < 5000; n++) {
      let v = rnd(2) ? 'Digest ' : 'Bearer ';
      for (let k = rnd(8); k > 0; k--) v += alphabet[rnd(alphabet.length)];
      cases.push(v);
    }
    // Compared as entries: the parser holds its directives in a ParamList, the reference in a Map.
    const entries = (h: { scheme: string; params: ReadonlyMap<string, string>; token: string | null } | null) => h && { ...h, params: [...h.params] };
    for (const v of cases) assert.deepEqual(entries(parseAuthHeader(v)), entries(reference(v)), JSON.stringify(v));
  });
  for (const bad of ['', '   ', '"Digest"', 'Digest realm="open', 'Digest =x', 'Digest a=1 b=2', 'Digest a=1,,b=2', 'Digest a="1"x', 'Bearer a b', 'Digest a=<b>']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseAuthHeader(bad), null));
  }
});

describe('digestCredentials', () => {
  const full = 'Digest username="alice", realm="example.test", nonce="n", uri="sip:example.test", response="0123456789ABCDEF0123456789abcdef", qop=auth, nc=0000000A, cnonce="c"';
  it('reads the directives, with MD5 as the default algorithm and the response lower-cased', () => {
    const c = digestCredentials(parseAuthHeader(full)!)!;
    assert.deepEqual(
      { ...c },
      { username: 'alice', realm: 'example.test', nonce: 'n', uri: 'sip:example.test', response: '0123456789abcdef0123456789abcdef', algorithm: 'MD5', session: false, qop: 'auth', nc: 10, cnonce: 'c', opaque: null, userhash: false },
    );
  });
  it('refuses credentials without one of the required directives', () => {
    for (const d of ['username', 'realm', 'nonce', 'uri', 'response']) {
      const v = full.replace(new RegExp(`${d}="[^"]*", ?`), '');
      assert.notEqual(v, full);
      assert.equal(digestCredentials(parseAuthHeader(v)!), null, d);
    }
  });
  for (const [v, why] of [
    [full.replace('nc=0000000A', 'nc=1'), 'nc not 8 hex digits'],
    [full.replace('nc=0000000A', 'nc=0000000G'), 'nc not hex'],
    [full.replace(', nc=0000000A', ''), 'qop without nc'],
    [full.replace(', cnonce="c"', ''), 'qop without cnonce'],
    [full.replace('qop=auth', 'qop=auth-conf'), 'unknown qop'],
    [full + ', algorithm=SHA-1', 'unsupported algorithm'],
    ['Digest username="a", realm="r", nonce="n", uri="u", response="r", algorithm=MD5-sess', '-sess without cnonce'],
    ['Bearer abc', 'not Digest'],
  ] as const) {
    it(`refuses ${why}`, () => assert.equal(digestCredentials(parseAuthHeader(v) as AuthHeader), null));
  }
  it('reads -sess algorithms in any case, and userhash', () => {
    const c = digestCredentials(parseAuthHeader(full + ', algorithm=sha-512-256-SESS, userhash=TRUE')!)!;
    assert.equal(c.algorithm, 'SHA-512-256');
    assert.equal(c.session, true);
    assert.equal(c.userhash, true);
  });
});

describe('digestChallenge', () => {
  it('writes a challenge that parses back', () => {
    const v = digestChallenge({ realm: 'ex"ample.test', nonce: 'abc', algorithm: 'SHA-256', stale: true, opaque: 'o' });
    assert.equal(v, 'Digest realm="ex\\"ample.test", nonce="abc", opaque="o", stale=true, algorithm=SHA-256, qop="auth"');
    const p = parseAuthHeader(v)!;
    assert.deepEqual(Object.fromEntries(p.params), { realm: 'ex"ample.test', nonce: 'abc', opaque: 'o', stale: 'true', algorithm: 'SHA-256', qop: 'auth' });
  });
  it('omits qop, stale and opaque when not asked for', () => {
    assert.equal(digestChallenge({ realm: 'r', nonce: 'n', algorithm: 'MD5', qop: false }), 'Digest realm="r", nonce="n", algorithm=MD5');
  });
});

describe('NonceIssuer', () => {
  const secret = randomBytes(32);
  const t0 = Date.UTC(2025, 0, 1, 12, 0, 0, 250);

  it('issues nonces it accepts, carrying boot, index and issue time', () => {
    const n = new NonceIssuer(secret, 300, 0xdeadbeef);
    assert.equal(n.nextIndex, 0);
    const a = n.issue(t0);
    const b = n.issue(t0);
    assert.notEqual(a.nonce, b.nonce);
    assert.match(a.nonce, /^[A-Za-z0-9_-]{34}$/);
    assert.equal(n.nextIndex, 2);
    assert.deepEqual(a.info, { boot: 0xdeadbeef, index: 0, issuedAt: t0 - 250 });
    const c = n.check(b.nonce, t0 + 1000);
    assert.deepEqual(c, { valid: true, stale: false, info: { boot: 0xdeadbeef, index: 1, issuedAt: t0 - 250 } });
  });

  it('is signed with HMAC-SHA256 over version, time, boot and index, as documented', () => {
    const { nonce } = new NonceIssuer(secret, 300, 7).issue(t0);
    const raw = Buffer.from(nonce, 'base64url');
    assert.equal(raw.length, 25);
    assert.equal(raw[0], 1);
    assert.equal(raw.readUInt32BE(1), Math.floor(t0 / 1000));
    assert.equal(raw.readUInt32BE(5), 7);
    assert.deepEqual(raw.subarray(13), createHmac('sha256', secret).update(raw.subarray(0, 13)).digest().subarray(0, 12));
  });

  it('reports a nonce stale once older than its TTL, not before, and still vouches for it', () => {
    const n = new NonceIssuer(secret, 30, 1);
    const { nonce } = n.issue(t0);
    const issued = t0 - 250; // the issue time is kept in whole seconds
    const info = { boot: 1, index: 0, issuedAt: issued };
    assert.deepEqual(n.check(nonce, issued), { valid: true, stale: false, info });
    assert.deepEqual(n.check(nonce, issued + 30_000), { valid: true, stale: false, info });
    assert.deepEqual(n.check(nonce, issued + 30_001), { valid: true, stale: true, info });
    assert.deepEqual(n.check(nonce, issued + 86_400_000), { valid: true, stale: true, info });
  });

  it('refuses a nonce from further in the future than clock skew explains', () => {
    const n = new NonceIssuer(secret, 30, 1);
    const { nonce } = n.issue(t0 + 61_000);
    assert.equal(n.check(nonce, t0).valid, false);
    assert.equal(n.check(n.issue(t0 + 59_000).nonce, t0).valid, true);
  });

  it('refuses every single-character alteration, truncation and extension', () => {
    const n = new NonceIssuer(secret, 300, 1);
    const { nonce } = n.issue(t0);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < nonce.length; i++) {
      for (const ch of alphabet) {
        if (ch === nonce[i]) continue;
        const altered = nonce.slice(0, i) + ch + nonce.slice(i + 1);
        assert.equal(n.check(altered, t0).valid, false, `position ${i} → ${ch}`);
      }
    }
    for (let len = 0; len < nonce.length; len++) assert.equal(n.check(nonce.slice(0, len), t0).valid, false, `truncated to ${len}`);
    for (const extra of ['A', '=', '==', 'AAAA']) assert.equal(n.check(nonce + extra, t0).valid, false, `extended by ${extra}`);
    for (const s of [nonce.replace(/-/g, '+').replace(/_/g, '/'), ' ' + nonce.slice(1), nonce.slice(0, -1) + '=']) {
      if (s !== nonce) assert.equal(n.check(s, t0).valid, false, `non-canonical ${s}`);
    }
  });

  it('refuses a well-formed nonce forged without the secret, or issued under another secret', () => {
    const n = new NonceIssuer(secret, 300, 1);
    const other = new NonceIssuer(randomBytes(32), 300, 1);
    assert.equal(n.check(other.issue(t0).nonce, t0).valid, false);
    const forged = Buffer.alloc(25);
    forged[0] = 1;
    forged.writeUInt32BE(Math.floor(t0 / 1000), 1);
    assert.equal(n.check(forged.toString('base64url'), t0).valid, false);
  });

  it('refuses another version byte even with a valid MAC', () => {
    const raw = Buffer.alloc(25);
    raw[0] = 2;
    raw.writeUInt32BE(Math.floor(t0 / 1000), 1);
    createHmac('sha256', secret).update(raw.subarray(0, 13)).digest().copy(raw, 13, 0, 12);
    assert.equal(new NonceIssuer(secret, 300, 1).check(raw.toString('base64url'), t0).valid, false);
  });
});

describe('NonceCountWindow', () => {
  const setup = (sizeLog2 = 4) => {
    const issuer = new NonceIssuer(randomBytes(32), 300, 42);
    const window = new NonceCountWindow(42, () => issuer.nextIndex, sizeLog2);
    const issue = () => {
      const r = issuer.issue(Date.now());
      window.issued(r.info);
      return r.info;
    };
    return { issuer, window, issue };
  };

  it('accepts increasing nonce-counts and refuses a replayed or lower one', () => {
    const { window, issue } = setup();
    const a = issue();
    assert.equal(window.claim(a, 1), 'ok');
    assert.equal(window.claim(a, 1), 'replay');
    assert.equal(window.claim(a, 2), 'ok');
    assert.equal(window.claim(a, 5), 'ok');
    assert.equal(window.claim(a, 3), 'replay');
    assert.equal(window.claim(a, 5), 'replay');
    assert.equal(window.claim(a, 0), 'replay');
  });

  it('tracks each nonce separately', () => {
    const { window, issue } = setup();
    const a = issue();
    const b = issue();
    assert.equal(window.claim(a, 1), 'ok');
    assert.equal(window.claim(b, 1), 'ok');
    assert.equal(window.claim(b, 1), 'replay');
    assert.equal(window.claim(a, 2), 'ok');
  });

  it('reports nonces of another incarnation stale, so the client is re-challenged', () => {
    const { window } = setup();
    assert.equal(window.claim({ boot: 43, index: 0, issuedAt: 0 }, 1), 'stale');
  });

  it('reports nonces older than the window stale, and a reused slot starts afresh', () => {
    // With 2^4 slots the window vouches for a nonce while fewer than 16 newer ones were issued: index i and i+16
    // share a slot, and the window gives up on i one nonce early, before i+16 is issued (conservative by one).
    const { window, issue } = setup(4);
    const first = issue();
    assert.equal(window.claim(first, 7), 'ok');
    for (let i = 0; i < 14; i++) issue();
    assert.equal(window.claim(first, 8), 'ok', 'still inside the window');
    issue();
    assert.equal(window.claim(first, 9), 'stale', 'at the edge of the window');
    const wrapped = issue(); // index 16: same slot as index 0
    assert.equal(wrapped.index & 15, first.index & 15);
    assert.equal(window.claim(first, 10), 'stale', 'pushed out of the window');
    assert.equal(window.claim(wrapped, 1), 'ok', 'the slot was reset when the new nonce was issued');
  });

  it('reports a nonce index not issued yet as stale', () => {
    const { window, issuer } = setup();
    assert.equal(window.claim({ boot: 42, index: issuer.nextIndex, issuedAt: 0 }, 1), 'stale');
  });

  it('reports a nonce-count beyond what it can track as stale rather than accepting it', () => {
    const { window, issue } = setup();
    const a = issue();
    assert.equal(window.claim(a, 0x10000), 'stale');
    assert.equal(window.claim(a, 0xffff), 'ok');
  });
});

describe('Hmac256', () => {
  it('equals node:crypto HMAC-SHA256 for short, long and oversized keys and messages of any length', async () => {
    const { createHmac, randomBytes } = await import('node:crypto');
    const { Hmac256 } = await import('../../src/sip/digest.ts');
    for (const keyLen of [0, 1, 32, 64, 65, 200]) {
      const key = randomBytes(keyLen);
      const h = new Hmac256(key);
      for (const msgLen of [0, 1, 13, 31, 32, 33, 100, 500]) {
        const m = randomBytes(msgLen);
        assert.equal(h.digest(m).toString('hex'), createHmac('sha256', key).update(m).digest('hex'), `key ${keyLen}, message ${msgLen}`);
      }
    }
  });
});
