// The RFC 4475 torture tests (and RFC 5118's IPv6 ones): (a) at the unit level, every message through parse,
// validate and serialize; (b) every message over real UDP to a running Switchboard, checking the answer (or the
// silence) and that the server keeps answering.
//
// Switchboard is a registrar and a UAS, not a proxy. Where RFC 4475 gives the answer by role, the registrar or
// endpoint one applies. The test server serves the realm example.test only, while the corpus addresses
// example.com and friends, so some answers differ from the manifest's `expect` (which assumes the element
// serves the Request-URI's domain): the `why` of each such entry says which answer is right here and why. The
// registrar-role answers (401, then 200) are checked separately against a server for example.com.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { canAnswer, H, parseMessage, serialize, SipParseError, SipRequest, SipResponse, validateRequest, type SipMessage } from '../../src/sip/message/index.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient, type SipResponseView } from '../helpers/sip-client.ts';
import { CORPUS, entry, type CorpusEntry } from './corpus.ts';

/**
 * What Switchboard does with a message.
 * unit: 'request' / 'response' = parses and (for requests) validates; a number = parse or validate fails with that
 *   status; 'drop' = unusable (no response can be formed).
 * wire: the status Switchboard answers over UDP, or 'silence'.
 * why: present where the answer is a choice between alternatives the RFC allows, or differs from the manifest's
 *   `expect` because of the element's role or domain.
 */
interface Outcome {
  unit: 'request' | 'response' | 'drop' | number;
  wire: number | 'silence';
  why?: string;
}

const NOT_OUR_DOMAIN = 'the Request-URI names a domain this registrar does not serve (realm example.test) and it is no proxy to forward it: 404 (RFC 3261 §10.3 step 1, before authentication and Contact processing); the registrar-role answer is checked below against a registrar for example.com';
const CALL = 'an INVITE is a call for the proxy, which first wants the caller authenticated (--calls-from authenticated, the default): 407 with Proxy-Authenticate, before the body or Accept, which are the callee\'s to judge (RFC 3261 §16.3, §22.3)';
const NO_DIALOG = 'an in-dialog request (BYE) whose dialog was not record-routed here: the proxy has nowhere to send it, 481 (RFC 3261 §16.4)';

const OUTCOMES: Record<string, Outcome> = {
  // RFC 4475 §3.1.1: valid messages.
  wsinv: { unit: 'request', wire: 481, why: 'an INVITE with a To tag is a re-INVITE, and no dialog of it was record-routed here: 481 (RFC 3261 §16.4, §12.2.2)' },
  intmeth: { unit: 'request', wire: 501, why: 'unknown method at an endpoint: 501 with Allow (byRole endpoint)' },
  esc01: { unit: 'request', wire: 407, why: CALL },
  escnull: { unit: 'request', wire: 404, why: NOT_OUR_DOMAIN },
  esc02: { unit: 'request', wire: 501, why: 'RE%47IST%45R is an unknown method, not REGISTER: 501 (byRole endpoint)' },
  lwsdisp: { unit: 'request', wire: 200, why: 'OPTIONS is answered by the server itself, with what it supports (RFC 3261 §11.2)' },
  longreq: { unit: 'request', wire: 407, why: CALL },
  dblreq: { unit: 'request', wire: 404, why: `${NOT_OUR_DOMAIN}; the INVITE octets after the REGISTER are ignored (one response only)` },
  semiuri: { unit: 'request', wire: 200 },
  transports: { unit: 'request', wire: 200 },
  mpart01: { unit: 'request', wire: 404, why: 'MESSAGE is handled (RFC 3428, messaging/sip-message.ts) for the domains served; this one names another and the server is no proxy to forward it: 404' },
  unreason: { unit: 'response', wire: 'silence', why: 'a response matching no client transaction is discarded (RFC 3261 §18.1.2)' },
  noreason: { unit: 'response', wire: 'silence', why: 'a response matching no client transaction is discarded (RFC 3261 §18.1.2)' },
  // §3.1.2: invalid messages.
  badinv01: { unit: 400, wire: 400 },
  clerr: { unit: 400, wire: 400 },
  ncl: { unit: 400, wire: 400 },
  scalar02: { unit: 400, wire: 400 },
  scalarlg: { unit: 'drop', wire: 'silence' },
  quotbal: { unit: 400, wire: 400, why: 'rejected rather than guessing where the quote ends (both allowed)' },
  ltgtruri: { unit: 400, wire: 400, why: 'rejected rather than ignoring the brackets (both allowed)' },
  lwsruri: { unit: 400, wire: 400, why: 'rejected rather than ignoring the LWS (both allowed)' },
  lwsstart: { unit: 400, wire: 400, why: 'rejected rather than ignoring the extra SP (both allowed)' },
  trws: { unit: 400, wire: 400, why: 'rejected rather than ignoring the trailing SP (both allowed)' },
  escruri: { unit: 400, wire: 400, why: 'rejected rather than ignoring the escaped header (both allowed)' },
  baddate: { unit: 'request', wire: 407, why: `the Date header means nothing to a proxy, and the RFC asks to reject it only where it matters, so it parses (alsoAcceptable); then ${CALL}` },
  regbadct: { unit: 'request', wire: 404, why: `the Contact is the registrar's to check, at RFC 3261 §10.3 steps 6-7, after the domain and authentication; here ${NOT_OUR_DOMAIN}` },
  badaspec: { unit: 400, wire: 400, why: 'rejected rather than ignoring the spaces (both allowed)' },
  baddn: { unit: 400, wire: 400, why: 'rejected rather than inferring the quotes (both allowed)' },
  badvers: { unit: 505, wire: 505 },
  mismatch01: { unit: 400, wire: 400 },
  mismatch02: { unit: 501, wire: 501, why: '501 (the RFC\'s first choice): an unknown method is not implemented, whatever its CSeq says' },
  bigcode: { unit: 'drop', wire: 'silence' },
  // §3.2, §3.3, §3.4: valid syntax, wrong meaning.
  badbranch: { unit: 400, wire: 400, why: 'rejected statelessly rather than falling back to RFC 2543 matching: a bare magic cookie identifies no transaction' },
  insuf: { unit: 400, wire: 400, why: 'answered 400 although From, To and Call-ID cannot be copied: the Via and CSeq are there to route and match it' },
  unkscm: { unit: 416, wire: 416 },
  novelsc: { unit: 416, wire: 416, why: 'no soap.beep URI is ever accepted here, so 416 rather than 404' },
  unksm2: { unit: 'request', wire: 404, why: NOT_OUR_DOMAIN },
  bext01: { unit: 'request', wire: 420, why: 'as a UAS: 420 listing the Require tags; Proxy-Require is for proxies' },
  invut: { unit: 'request', wire: 407, why: `415 is the callee's answer; ${CALL}` },
  regaut01: { unit: 'request', wire: 404, why: NOT_OUR_DOMAIN },
  multi01: { unit: 400, wire: 400 },
  mcl01: { unit: 400, wire: 400 },
  bcast: { unit: 'response', wire: 'silence' },
  zeromf: { unit: 'request', wire: 200, why: 'an endpoint, not a proxy: Max-Forwards 0 only stops forwarding, so OPTIONS gets its 200 (byRole endpoint)' },
  cparam01: { unit: 'request', wire: 404, why: NOT_OUR_DOMAIN },
  cparam02: { unit: 'request', wire: 404, why: NOT_OUR_DOMAIN },
  regescrt: { unit: 'request', wire: 404, why: NOT_OUR_DOMAIN },
  sdp01: { unit: 'request', wire: 407, why: `406 or 400 are the callee's answers; ${CALL}` },
  inv2543: { unit: 'request', wire: 407, why: `accepted as RFC 2543 (no branch, tag, Max-Forwards or Content-Length); ${CALL}` },
  // RFC 5118.
  'ipv6-good': { unit: 'request', wire: 404, why: 'sip:[2001:db8::10] is neither a served domain nor this server: 404' },
  'ipv6-bad': { unit: 400, wire: 400 },
  'port-ambiguous': { unit: 'request', wire: 404, why: 'sip:[2001:db8::10:5070] is neither a served domain nor this server: 404' },
  'port-unambiguous': { unit: 'request', wire: 404, why: 'sip:[2001:db8::10]:5070 is neither a served domain nor this server: 404' },
  'via-received-param-with-delim': { unit: 'request', wire: 481, why: `the bracketed received= is tolerated (RFC 5118 §4.5); then ${NO_DIALOG}` },
  'via-received-param-no-delim': { unit: 'request', wire: 200 },
  'ipv6-in-sdp': { unit: 'request', wire: 407, why: CALL },
  'mult-ip-in-header': { unit: 'request', wire: 481, why: NO_DIALOG },
  'mult-ip-in-sdp': { unit: 'request', wire: 407, why: CALL },
  'ipv4-mapped-ipv6': { unit: 'request', wire: 407, why: CALL },
  'ipv6-bug-abnf-3-colons': { unit: 'request', wire: 200, why: 'the three-colon reference is tolerated (RFC 5118 §4.10)' },
  'ipv6-correct-abnf-2-colons': { unit: 'request', wire: 200 },
};

/** What parse + validate make of a message. */
function unitOutcome(data: Buffer): { outcome: Outcome['unit']; msg: SipMessage | null } {
  let msg: SipMessage;
  try {
    msg = parseMessage(data);
  } catch (e) {
    assert.ok(e instanceof SipParseError, `only SipParseError may come out of parseMessage, got ${String(e)}`);
    const partial = e.partial;
    if (!partial || !partial.isRequest || !canAnswer(partial)) return { outcome: 'drop', msg: null };
    return { outcome: e.sip ?? -1, msg: null };
  }
  if (!msg.isRequest) {
    // A response is only ever matched to a client transaction by its top Via branch and CSeq.
    return { outcome: msg.topVia() && msg.cseq() ? 'response' : 'drop', msg };
  }
  const err = validateRequest(msg as SipRequest);
  if (err) return { outcome: canAnswer(msg) ? (err.sip ?? -1) : 'drop', msg };
  return { outcome: 'request', msg };
}

describe('the outcome table', () => {
  it('covers every message of both corpora, and nothing else', () => {
    assert.deepEqual(Object.keys(OUTCOMES).sort(), CORPUS.map((e) => e.name).sort());
  });

  for (const e of CORPUS) {
    const o = OUTCOMES[e.name];
    it(`${e.corpus} ${e.name}: agrees with the manifest or says why not`, () => {
      const expected = new Set([e.expect, ...(e.alsoAcceptable ?? []), ...Object.values(e.byRole ?? {})]);
      const wire = o.wire === 'silence' ? 'drop' : String(o.wire);
      // The unit outcome is the manifest's judgement of the message itself: it parses (a response parses and is
      // then dropped for matching no transaction), or fails with the manifest's status. Semantically wrong but
      // valid messages may parse where the status comes from a later stage, with a reason.
      const unit = typeof o.unit === 'number' ? String(o.unit) : o.unit;
      const unitOk =
        (unit === 'request' && expected.has('parse')) ||
        (unit === 'response' && (expected.has('parse') || expected.has('drop'))) ||
        expected.has(unit) ||
        (unit === 'request' && e.valid && o.why !== undefined);
      assert.ok(unitOk, `${e.name}: unit outcome ${unit} is not among ${[...expected]}`);
      // The answer on the wire may differ from the manifest only with a reason (the role, or the domain).
      assert.ok(expected.has(wire) || (e.expect === 'parse' && typeof o.wire === 'number') || o.why !== undefined, `${e.name}: answer ${wire} differs from ${[...expected]} without a reason`);
      if (e.expect === 'drop') assert.equal(o.wire, 'silence');
      if (!e.valid && !expected.has('parse')) assert.notEqual(o.unit, 'request', `${e.name} is invalid and must not pass validation`);
    });
  }
});

describe('RFC 4475 and RFC 5118 at the unit level', () => {
  for (const e of CORPUS) {
    const want = OUTCOMES[e.name];
    it(`${e.corpus} ${e.section} ${e.name}: ${typeof want.unit === 'number' ? `fails with ${want.unit}` : want.unit}`, () => {
      const { outcome, msg } = unitOutcome(e.data);
      assert.equal(outcome, want.unit);
      if (msg && (outcome === 'request' || outcome === 'response')) {
        // It survives a serialize → parse round trip unchanged.
        const again = parseMessage(serialize(msg));
        assert.deepEqual(
          again.headers.filter((h) => h.key !== H.contentLength).map((h) => [h.key, h.name, h.value]),
          msg.headers.filter((h) => h.key !== H.contentLength).map((h) => [h.key, h.name, h.value]),
        );
        assert.deepEqual(again.body, msg.body);
        if (msg instanceof SipRequest) assert.deepEqual([(again as SipRequest).method, (again as SipRequest).uri], [msg.method, msg.uri]);
        if (msg instanceof SipResponse) assert.deepEqual([(again as SipResponse).status, (again as SipResponse).reason], [msg.status, msg.reason]);
      }
    });
  }

  // What the RFCs say about particular messages beyond accept/reject.
  it('wsinv: folded values, escaped quotes, LWS everywhere and an opaque unknown header', () => {
    const m = parseMessage(entry('wsinv').data) as SipRequest;
    assert.equal(m.to()?.params.get('tag'), '1918181833n');
    assert.equal(m.from()?.displayName, 'J Rosenberg \\"');
    assert.equal(m.from()?.params.get('tag'), '98asjd8');
    assert.deepEqual(m.cseq(), { seq: 9, method: 'INVITE' });
    assert.equal(m.get(H.maxForwards), '0068');
    assert.equal(m.get(H.subject), '');
    assert.equal(m.get('NewFangledHeader'), 'newfangled value continued newfangled value');
    assert.equal(m.get('UnknownHeaderWithUnusualValue'), ';;,,;;,;');
    assert.deepEqual(m.vias().map((v) => [v.transport, v.host, v.params.get('branch')]), [
      ['UDP', '192.0.2.2', '390skdjuw'],
      ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
      ['UDP', '192.168.255.111', 'z9hG4bK30239'],
    ]);
    const contact = m.values(H.contact);
    assert.equal(contact.length, 1);
    assert.equal(m.body.length, 150);
  });

  it('intmeth: the unusual method, URI and header are taken as they are', () => {
    const m = parseMessage(entry('intmeth').data) as SipRequest;
    assert.equal(m.method, "!interesting-Method0123456789_*+`.%indeed'~");
    assert.equal(m.cseq()?.method, m.method);
    assert.equal(m.to()?.displayName, 'BEL:\u0007 NUL:\u0000 DEL:\u007f');
    assert.equal(m.callId(), 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
  });

  it('esc02: C%6Fntact is an unknown header, so there are two Contact values, not three', () => {
    const m = parseMessage(entry('esc02').data) as SipRequest;
    assert.equal(m.values(H.contact).length, 2);
    assert.equal(m.from()?.displayName, '%Z%45');
  });

  it('escnull: the AORs are not truncated at the escaped NUL', async () => {
    const { aorOf, isSipUri } = await import('../../src/sip/message/index.ts');
    const m = parseMessage(entry('escnull').data) as SipRequest;
    const to = m.to()!.uri;
    assert.ok(isSipUri(to));
    assert.equal(aorOf(to), 'null-\u0000-null@example.com');
  });

  it('dblreq: only the REGISTER is taken from the datagram; the INVITE octets after it are noise', () => {
    const m = parseMessage(entry('dblreq').data) as SipRequest;
    assert.equal(m.method, 'REGISTER');
    assert.equal(m.body.length, 0);
    assert.ok(!serialize(m).toString('latin1').includes('INVITE'));
  });

  it('mpart01: the binary multipart body is framed by Content-Length, NULs and all', () => {
    const m = parseMessage(entry('mpart01').data);
    assert.equal(m.body.length, 553);
    assert.ok(m.body.includes(0));
    assert.equal(m.body.subarray(-22).toString('latin1'), '--7a9cbec02ceef655--\r\n');
  });

  it('inv2543: without Content-Length, the body is the rest of the datagram', () => {
    const m = parseMessage(entry('inv2543').data);
    assert.ok(m.body.toString('latin1').startsWith('v=0\r\n'));
    assert.equal(m.topVia()?.params.get('branch'), undefined);
  });

  it('port-ambiguous / port-unambiguous: the port is only ever outside the brackets', () => {
    const a = (parseMessage(entry('port-ambiguous').data) as SipRequest).requestUri() as { host: string; port: number | null };
    assert.deepEqual([a.host, a.port], ['[2001:db8::10:5070]', null]);
    const b = (parseMessage(entry('port-unambiguous').data) as SipRequest).requestUri() as { host: string; port: number | null };
    assert.deepEqual([b.host, b.port], ['[2001:db8::10]', 5070]);
  });

  it('mult-ip-in-header: IPv4 and IPv6 Vias, ports after "]", an IPv4 received', () => {
    const m = parseMessage(entry('mult-ip-in-header').data);
    assert.deepEqual(m.vias().map((v) => [v.host, v.port, v.params.get('received') ?? null]), [
      ['[2001:db8::9:1]', 6050, null],
      ['192.0.2.1', null, null],
      ['[2001:db8::9:255]', null, '192.0.2.200'],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Over real sockets.

/**
 * Groups the messages into rounds that share no server transaction: several corpus messages reuse a branch and
 * sent-by (cparam01/cparam02, escnull/regescrt, the RFC 5118 REGISTERs…), and a server rightly answers the second
 * one as a retransmission of the first (RFC 3261 §17.2.3). Each round goes to a fresh server.
 */
function rounds(entries: CorpusEntry[]): CorpusEntry[][] {
  const out: Array<{ keys: Set<string>; entries: CorpusEntry[] }> = [];
  for (const e of entries) {
    let key = e.name;
    try {
      const m = parseMessage(e.data);
      const via = m.topVia();
      const branch = via?.params.get('branch');
      if (m instanceof SipRequest && via && branch?.startsWith('z9hG4bK')) key = `${branch}|${via.host}:${via.port ?? ''}|${m.method === 'ACK' ? 'INVITE' : m.method}`;
    } catch {
      // unparsable: no transaction
    }
    let r = out.find((x) => !x.keys.has(key));
    if (!r) out.push((r = { keys: new Set(), entries: [] }));
    r.keys.add(key);
    r.entries.push(e);
  }
  return out.map((r) => r.entries);
}

/** The Call-ID and CSeq the corpus message carries, read by the parser (from the partial message if it fails). */
function idsOf(data: Buffer): { callId: string | undefined; cseq: string | undefined } {
  let m: SipMessage | null;
  try {
    m = parseMessage(data);
  } catch (e) {
    m = (e as SipParseError).partial;
  }
  return { callId: m?.callId(), cseq: m?.get(H.cseq) };
}

/** A response header by full or compact name (responses copy the request's spelling). */
function hdr(res: SipResponseView, name: string, compact?: string): string | undefined {
  return res.header(name) ?? (compact ? res.header(compact) : undefined);
}

async function optionsAnswered(client: SipTestClient, port: number): Promise<void> {
  const res = await client.request(buildRequest(client, { method: 'OPTIONS', uri: `sip:127.0.0.1:${port}`, from: '<sip:probe@example.test>', to: `<sip:127.0.0.1:${port}>` }));
  assert.equal(res.status, 200, 'the server still answers OPTIONS');
}

describe('RFC 4475 and RFC 5118 over UDP to a running server (realm example.test)', () => {
  for (const [i, round] of rounds(CORPUS).entries()) {
    describe(`round ${i + 1} (${round.length} messages)`, () => {
      let server: TestServer;
      let client: SipTestClient;
      before(async () => {
        // force-rport: answer at the datagram's source, since the corpus Vias name hosts like host5.example.com.
        server = await startTestServer({ flags: { 'sip-force-rport': true } });
        client = await SipTestClient.open('UDP', server.sipPort);
      });
      after(async () => {
        client.close();
        await server.close();
      });

      for (const e of round) {
        const want = OUTCOMES[e.name];
        it(`${e.corpus} ${e.name} → ${want.wire}${want.why ? ` (${want.why})` : ''}`, async () => {
          client.send(e.data);
          if (want.wire === 'silence') {
            assert.ok(await client.silent(400), 'no response');
          } else {
            const res: SipResponseView = await client.response(3000);
            assert.equal(res.status, want.wire, `${res.status} ${res.reason}`);
            // It is the answer to this message: its Call-ID (when it has one) and CSeq come back.
            const ids = idsOf(e.data);
            assert.ok(ids.cseq, 'every answered message has a CSeq');
            assert.equal(hdr(res, 'Call-ID', 'i'), ids.callId);
            assert.equal(res.header('CSeq'), ids.cseq);
            assert.match(hdr(res, 'Via', 'v') ?? '', /;received=127\.0\.0\.1|;rport=\d+/, 'the top Via was stamped (RFC 3261 §18.2.1, RFC 3581)');
            if (want.wire === 405 || want.wire === 501) assert.match(res.header('Allow') ?? '', /REGISTER/);
            if (want.wire === 420) assert.equal(res.header('Unsupported'), 'nothingSupportsThis, nothingSupportsThisEither');
            const to = hdr(res, 'To', 't');
            if (to !== undefined) assert.match(to, /;\s*tag\s*=/i, 'a To tag on the final response');
            // And nothing more (dblreq: the trailing INVITE is not answered).
            assert.ok(await client.silent(e.name === 'dblreq' ? 500 : 50), 'exactly one response');
          }
        });
      }

      it('still answers OPTIONS after the round', () => optionsAnswered(client, server.sipPort));
    });
  }
});

describe('the REGISTER messages at a registrar that serves example.com (byRole registrar, requiring authentication)', () => {
  const users = { 'watson@example.com': 'elementary', 'user@example.com': 'secret-user', 'j.user@example.com': 'secret-j' };
  let server: TestServer;
  let client: SipTestClient;
  // A fresh server for each message: several of them share a branch and sent-by, so one server would rightly take
  // the later ones for retransmissions (RFC 3261 §17.2.3) and answer with the earlier one's challenge.
  beforeEach(async () => {
    server = await startTestServer({ flags: { realm: ['example.com'], 'sip-force-rport': true }, users });
    client = await SipTestClient.open('UDP', server.sipPort);
  });
  afterEach(async () => {
    client.close();
    await server.close();
  });

  /** The corpus message as a new transaction (fresh branch, next CSeq) answering `challenge`. */
  function authenticated(e: CorpusEntry, challenge: SipResponseView, username: string): Buffer {
    const text = e.data.toString('latin1');
    const c = parseChallenge(challenge.header('WWW-Authenticate')!);
    assert.equal(c.realm, 'example.com');
    const auth = digestAuthorization(c, { username, password: users[`${username}@example.com` as keyof typeof users], method: 'REGISTER', uri: 'sip:example.com' });
    const eol = text.indexOf('\r\n');
    const out = (text.slice(0, eol + 2) + `Authorization: ${auth}\r\n` + text.slice(eol + 2))
      .replace(/branch=z9hG4bK([^;\r\n]*)/, `branch=z9hG4bK$1-${randomBytes(4).toString('hex')}`)
      .replace(/CSeq: (\d+) REGISTER/, (_, n: string) => `CSeq: ${Number(n) + 1} REGISTER`);
    return Buffer.from(out, 'latin1');
  }

  async function send(data: Buffer): Promise<SipResponseView> {
    client.send(data);
    return client.response(3000);
  }

  it('regaut01: an unknown Authorization scheme is ignored and the client is challenged with Digest (401)', async () => {
    const res = await send(entry('regaut01').data);
    assert.equal(res.status, 401);
    assert.match(res.header('WWW-Authenticate') ?? '', /^Digest realm="example\.com", nonce="[^"]+"/);
  });

  it('dblreq: one 401 for the REGISTER, nothing for the INVITE octets', async () => {
    assert.equal((await send(entry('dblreq').data)).status, 401);
    assert.ok(await client.silent(500));
  });

  it('escnull: challenged like any REGISTER (401)', async () => {
    assert.equal((await send(entry('escnull').data)).status, 401);
  });

  it('cparam01: after authenticating, 200; unknownparam stays a contact parameter, not a URI parameter', async () => {
    const e = entry('cparam01');
    const challenge = await send(e.data);
    assert.equal(challenge.status, 401);
    const res = await send(authenticated(e, challenge, 'watson'));
    assert.equal(res.status, 200, res.reason);
    const contacts = res.all('Contact');
    assert.equal(contacts.length, 1);
    assert.match(contacts[0], /^<sip:\+19725552222@gw1\.example\.net>;unknownparam;expires=\d+$/);
    assert.deepEqual((await server.location.lookup('watson@example.com')).map((b) => [b.contact, b.params]), [['sip:+19725552222@gw1.example.net', ';unknownparam']]);
  });

  it('cparam02: after authenticating, 200; unknownparam stays a URI parameter', async () => {
    const e = entry('cparam02');
    const challenge = await send(e.data);
    assert.equal(challenge.status, 401);
    const res = await send(authenticated(e, challenge, 'watson'));
    assert.equal(res.status, 200, res.reason);
    assert.deepEqual(res.all('Contact').map((c) => c.replace(/;expires=\d+$/, '')), ['<sip:+19725552222@gw1.example.net;unknownparam>']);
    // And a later retrieval of the registration has it there too.
    assert.deepEqual((await server.location.lookup('watson@example.com')).map((b) => [b.contact, b.params]), [['sip:+19725552222@gw1.example.net;unknownparam', '']]);
  });

  it('regescrt: after authenticating, 200; the escaped Route header stays in the binding\'s URI', async () => {
    const e = entry('regescrt');
    const challenge = await send(e.data);
    assert.equal(challenge.status, 401);
    const res = await send(authenticated(e, challenge, 'user'));
    assert.equal(res.status, 200, res.reason);
    assert.deepEqual(res.all('Contact').map((c) => c.replace(/;expires=\d+$/, '')), ['<sip:user@example.com?Route=%3Csip:sip.example.com%3E>']);
    assert.deepEqual((await server.location.lookup('user@example.com')).map((b) => b.contact), ['sip:user@example.com?Route=%3Csip:sip.example.com%3E']);
  });

  it('regbadct: challenged first; once authenticated, 400 for the unbracketed Contact with URI headers', async () => {
    // RFC 3261 §10.3 processes Contact (steps 6-7) after authentication (step 3).
    const e = entry('regbadct');
    const challenge = await send(e.data);
    assert.equal(challenge.status, 401);
    const res = await send(authenticated(e, challenge, 'user'));
    assert.equal(res.status, 400, res.reason);
  });

  it('unksm2: refused before authentication, the To URI being no address of record', async () => {
    // RFC 4475 §3.3.4 wants 400 from a registrar (To must hold a SIP or SIPS URI); RFC 3261 §10.3 step 5 has 404
    // for an address of record "not valid for the domain". Either refuses it without a challenge.
    const res = await send(entry('unksm2').data);
    assert.ok([400, 404].includes(res.status), `${res.status} ${res.reason}`);
  });

  it('scalar02: 400 before anything else, for the CSeq out of range', async () => {
    assert.equal((await send(entry('scalar02').data)).status, 400);
  });

  it('still answers OPTIONS', () => optionsAnswered(client, server.sipPort));
});
