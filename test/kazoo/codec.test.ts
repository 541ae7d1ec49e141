// The Kazoo codec against the contract (docs/kazoo-amqp.md): routing-key encoding byte for byte,
// envelope validation, and each message's rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTH_METHODS, buildAuthnErr, buildAuthnResp, checkAuthnResp, parseAuthnReq, userAndHost } from '../../src/kazoo/authn.ts';
import { checkEnvelope, ENVELOPE_HEADERS, envelope, isTrue, replyTo, type Sender } from '../../src/kazoo/envelope.ts';
import { CALLMGR, KAZOO_EXCHANGES, REGISTRAR, SWITCHBOARD_EVENTS, TARGETED } from '../../src/kazoo/exchanges.ts';
import { buildRegFlush, buildRegSync, checkRegFlush, checkRegSync } from '../../src/kazoo/reg-control.ts';
import { buildRegQueryError, buildRegQueryResp, checkRegQuery, pickFields, REG_QUERY_FIELDS } from '../../src/kazoo/reg-query.ts';
import { bridgeRuri, buildRegSuccess, checkRegSuccess, cleanContact, REG_SUCCESS_KEYS, seconds } from '../../src/kazoo/reg-success.ts';
import { BINDING, decodeKeyWord, encodeKeyWord, KEY } from '../../src/kazoo/routing-keys.ts';
import { topicMatches } from '../../src/bus/event-bus.ts';

const ME: Sender = { appName: 'switchboard', appVersion: '0.1.0', node: 'switchboard@host', serverId: 'switchboard@host-1-ab' };
const env = (name: string, extra: Record<string, unknown> = {}) => ({
  'App-Name': 'kamailio',
  'App-Version': '5.6.3',
  'Event-Category': 'directory',
  'Event-Name': name,
  'Msg-ID': 'm-1',
  'Server-ID': 'kamailio@sbc-1-queue',
  ...extra,
});

describe('routing-key encoding (kz_amqp_util:encode/1)', () => {
  it('keeps [A-Za-z0-9-~_] and escapes everything else', () => {
    assert.equal(encodeKeyWord('AZaz09-~_'), 'AZaz09-~_');
    assert.equal(encodeKeyWord('example.com'), 'example%2Ecom');
    assert.equal(encodeKeyWord('john doe'), 'john+doe');
    assert.equal(encodeKeyWord('a+b'), 'a%2Bb', 'a literal + is a byte to escape, not a space');
    assert.equal(encodeKeyWord('user@host'), 'user%40host');
    assert.equal(encodeKeyWord('100%'), '100%25');
    assert.equal(encodeKeyWord('a/b:c;d=e'), 'a%2Fb%3Ac%3Bd%3De');
    assert.equal(encodeKeyWord('*.#'), '%2A%2E%23', 'wildcards inside a word are escaped');
    assert.equal(encodeKeyWord('\u0000\u001f\u007f'), '%00%1F%7F', 'upper-case hex, two digits');
  });

  it('escapes each byte of the UTF-8 encoding', () => {
    assert.equal(encodeKeyWord('é'), '%C3%A9');
    assert.equal(encodeKeyWord('müller.de'), 'm%C3%BCller%2Ede');
    assert.equal(encodeKeyWord('日'), '%E6%97%A5');
    assert.equal(encodeKeyWord('😀'), '%F0%9F%98%80');
  });

  it('lets a lone * or # and the empty word through', () => {
    assert.equal(encodeKeyWord('*'), '*');
    assert.equal(encodeKeyWord('#'), '#');
    assert.equal(encodeKeyWord(''), '');
    assert.equal(encodeKeyWord('**'), '%2A%2A');
  });

  it('decodes what it encodes', () => {
    for (const s of ['example.com', 'john doe', 'a+b', 'müller', '100%', 'x.y z']) assert.equal(decodeKeyWord(encodeKeyWord(s)), s);
  });

  it('builds every key of the contract', () => {
    assert.equal(KEY.authnReq('example.com'), 'authn.req.example%2Ecom');
    assert.equal(KEY.authnEndpointReq('example.com'), 'authn.endpoint.req.example%2Ecom');
    assert.equal(KEY.regSuccess('example.com', 'john.doe'), 'registration.success.example%2Ecom.john%2Edoe');
    assert.equal(KEY.regQuery('example.com', 'alice'), 'registration.query.example%2Ecom.alice');
    assert.equal(KEY.regQuery('example.com'), 'registration.query.example%2Ecom.*');
    assert.equal(KEY.regQuery('example.com', null), 'registration.query.example%2Ecom.*');
    assert.equal(KEY.regFlush('example.com'), 'registration.flush.example%2Ecom');
    assert.equal(KEY.regSync, 'registration.sync');
  });

  it('keeps every encoded key matching the registrar bindings, whatever the realm and user hold', () => {
    const nasty = ['a.b.c', 'x y', '*', '#', 'ü.é', 'a#b', 'a*b', '..'];
    for (const r of nasty) {
      assert.ok(topicMatches(BINDING.authnReq, KEY.authnReq(r)), r);
      assert.ok(topicMatches(BINDING.authnEndpointReq, KEY.authnEndpointReq(r)), r);
      assert.ok(topicMatches(BINDING.regFlush, KEY.regFlush(r)), r);
      for (const u of nasty) {
        assert.ok(topicMatches(BINDING.regSuccess, KEY.regSuccess(r, u)), `${r} ${u}`);
        assert.ok(topicMatches(BINDING.regQuery, KEY.regQuery(r, u)), `${r} ${u}`);
      }
    }
    assert.ok(topicMatches(BINDING.regSync, KEY.regSync));
    assert.ok(!topicMatches(BINDING.regSuccess, 'registration.success.example.com.alice'), 'an unencoded dot makes an extra word');
  });
});

describe('exchanges', () => {
  it('are those of the contract, declared as Kazoo declares them', () => {
    assert.deepEqual(CALLMGR, { name: 'callmgr', type: 'topic', durable: false });
    assert.deepEqual(REGISTRAR, { name: 'registrar', type: 'topic', durable: false });
    assert.deepEqual(TARGETED, { name: 'targeted', type: 'direct', durable: false });
    assert.deepEqual(KAZOO_EXCHANGES.map((e) => e.name), ['callmgr', 'registrar', 'targeted']);
    assert.deepEqual(SWITCHBOARD_EVENTS, { name: 'switchboard', type: 'topic', durable: true });
  });
});

describe('envelope', () => {
  it('requires App-Name, App-Version, Event-Category, Event-Name and Msg-ID, non-empty', () => {
    assert.deepEqual([...ENVELOPE_HEADERS], ['App-Name', 'App-Version', 'Event-Category', 'Event-Name', 'Msg-ID']);
    assert.ok(checkEnvelope(env('reg_sync'), 'directory', 'reg_sync').ok);
    for (const h of ENVELOPE_HEADERS) {
      for (const v of [undefined, '', 42, null]) {
        const m: Record<string, unknown> = env('reg_sync');
        if (v === undefined) delete m[h];
        else m[h] = v;
        const r = checkEnvelope(m, 'directory', 'reg_sync');
        assert.ok(!r.ok, `${h}=${String(v)}`);
        assert.match(r.error, new RegExp(h));
      }
    }
  });

  it('rejects what is not an object, and the wrong event', () => {
    for (const v of [null, [], 'x', 1, true]) assert.ok(!checkEnvelope(v, 'directory', 'reg_sync').ok);
    assert.match((checkEnvelope(env('reg_query'), 'directory', 'reg_sync') as { error: string }).error, /Event-Name/);
    assert.match((checkEnvelope({ ...env('reg_sync'), 'Event-Category': 'call_event' }, 'directory', 'reg_sync') as { error: string }).error, /Event-Category/);
  });

  it('tolerates keys it does not know', () => {
    assert.ok(checkEnvelope({ ...env('reg_sync'), 'X-Whatever': { deep: [1] }, Node: 'kamailio@sbc' }, 'directory', 'reg_sync').ok);
  });

  it('builds our envelope and finds where a reply goes', () => {
    assert.deepEqual(envelope(ME, 'directory', 'reg_sync', 'id-1'), {
      'App-Name': 'switchboard', 'App-Version': '0.1.0', 'Event-Category': 'directory', 'Event-Name': 'reg_sync', 'Msg-ID': 'id-1', Node: 'switchboard@host', 'Server-ID': 'switchboard@host-1-ab',
    });
    assert.equal(replyTo(env('x')), 'kamailio@sbc-1-queue');
    assert.equal(replyTo({ ...env('x'), 'Server-ID': '' }), null);
    assert.equal(replyTo({}), null);
  });

  it('reads booleans as Kazoo does', () => {
    for (const v of [true, 'true', 'TRUE', 1, '1']) assert.equal(isTrue(v), true, String(v));
    for (const v of [false, 'false', 0, '0', undefined, null, 'yes']) assert.equal(isTrue(v), false, String(v));
  });
});

describe('authn_req / authn_resp / authn_err', () => {
  const req = (extra: Record<string, unknown> = {}) =>
    env('authn_req', { 'Auth-User': 'Alice', 'Auth-Realm': 'Example.COM', From: 'sip:alice@example.com', To: 'sip:alice@example.com', Method: 'REGISTER', ...extra });

  it('takes user and realm, lower-cased', () => {
    const r = parseAuthnReq(req());
    assert.ok(r.ok);
    assert.equal(r.value.user, 'alice');
    assert.equal(r.value.realm, 'example.com');
    assert.equal(r.value.rawUser, 'Alice');
  });

  it('takes the user from To when Auth-User is missing, empty or unknown', () => {
    for (const u of ['unknown', 'UNKNOWN', '']) {
      const r = parseAuthnReq(req({ 'Auth-User': u, To: '"Bob" <sip:Bob@example.com:5060;transport=udp>;tag=1' }));
      assert.ok(r.ok, u);
      assert.equal(r.value.user, 'bob');
    }
    const plain = parseAuthnReq(req({ 'Auth-User': 'unknown', To: 'carol@example.com' }));
    assert.ok(plain.ok);
    assert.equal(plain.value.user, 'carol');
    assert.ok(!parseAuthnReq(req({ 'Auth-User': 'unknown', To: 'no-user-part' })).ok);
  });

  it('takes the realm from the domain of To when Auth-Realm is an IP address', () => {
    for (const ip of ['192.0.2.10', '2001:db8::1', '[2001:db8::1]']) {
      const r = parseAuthnReq(req({ 'Auth-Realm': ip, To: 'sip:alice@Tenant.Example.com:5080' }));
      assert.ok(r.ok, ip);
      assert.equal(r.value.realm, 'tenant.example.com');
    }
    assert.equal((parseAuthnReq(req({ 'Auth-Realm': '10.0.0.1', To: 'alice@[2001:db8::2]' })) as { value: { realm: string } }).value.realm, '2001:db8::2');
  });

  it('requires To, From, Auth-User and Auth-Realm', () => {
    for (const k of ['To', 'From', 'Auth-User', 'Auth-Realm']) {
      const m: Record<string, unknown> = req();
      delete m[k];
      const r = parseAuthnReq(m);
      assert.ok(!r.ok, k);
      assert.match(r.error, new RegExp(k));
    }
    assert.ok(!parseAuthnReq(req({ 'Custom-SIP-Headers': 'x' })).ok);
    assert.ok(!parseAuthnReq({ ...req(), 'Event-Name': 'authn_resp' }).ok);
  });

  it('splits To and From values of every shape', () => {
    assert.deepEqual(userAndHost('alice@example.com'), { user: 'alice', host: 'example.com' });
    assert.deepEqual(userAndHost('sips:alice@example.com;transport=tls'), { user: 'alice', host: 'example.com' });
    assert.deepEqual(userAndHost('"A" <sip:alice@example.com:5061>;tag=x'), { user: 'alice', host: 'example.com' });
    assert.deepEqual(userAndHost('<sip:alice@[2001:db8::1]:5060>'), { user: 'alice', host: '2001:db8::1' });
    assert.equal(userAndHost('example.com'), null);
  });

  it('answers authn_resp with the method, secret, the echoed Msg-ID and Custom-Channel-Vars', () => {
    const ccvs = { Username: 'alice', Realm: 'example.com', 'Account-ID': 'a1', 'Authorizing-ID': 'a1', 'Authorizing-Type': 'device', 'Owner-ID': 'a1', 'Presence-ID': 'alice@example.com' };
    const resp = buildAuthnResp(ME, req(), { method: 'a1-hash', secret: '0123456789abcdef0123456789abcdef', username: 'alice', ccvs });
    assert.deepEqual(resp, {
      'App-Name': 'switchboard',
      'App-Version': '0.1.0',
      'Event-Category': 'directory',
      'Event-Name': 'authn_resp',
      'Msg-ID': 'm-1',
      Node: 'switchboard@host',
      'Server-ID': 'switchboard@host-1-ab',
      'Auth-Method': 'a1-hash',
      'Auth-Password': '0123456789abcdef0123456789abcdef',
      'Auth-Username': 'alice',
      'Custom-Channel-Vars': ccvs,
    });
    assert.ok(checkAuthnResp(resp).ok);
  });

  it('validates authn_resp as kapi_authn:resp_v does', () => {
    const good = buildAuthnResp(ME, req(), { method: 'password', secret: 'pw', username: 'alice', ccvs: {} });
    for (const m of AUTH_METHODS) assert.ok(checkAuthnResp({ ...good, 'Auth-Method': m }).ok, m);
    assert.ok(!checkAuthnResp({ ...good, 'Auth-Method': 'md5' }).ok);
    assert.ok(!checkAuthnResp({ ...good, 'Auth-Password': undefined }).ok);
    assert.ok(!checkAuthnResp({ ...good, 'Custom-Channel-Vars': 'x' }).ok);
  });

  it('answers authn_err with the envelope and Defer-Response "true" only', () => {
    assert.deepEqual(buildAuthnErr(ME, req()), {
      'App-Name': 'switchboard', 'App-Version': '0.1.0', 'Event-Category': 'directory', 'Event-Name': 'authn_err', 'Msg-ID': 'm-1', Node: 'switchboard@host', 'Server-ID': 'switchboard@host-1-ab', 'Defer-Response': 'true',
    });
  });
});

describe('reg_success', () => {
  const rs = (extra: Record<string, unknown> = {}) =>
    env('reg_success', { 'Event-Timestamp': 1700000000, Contact: '<sip:alice@192.0.2.1:5060>;expires=300', Expires: 300, Username: 'alice', Realm: 'example.com', ...extra });

  it('requires Event-Timestamp, Contact, Expires, Username and Realm', () => {
    assert.ok(checkRegSuccess(rs()).ok);
    for (const k of ['Event-Timestamp', 'Contact', 'Expires', 'Username', 'Realm']) {
      const m: Record<string, unknown> = rs();
      delete m[k];
      assert.ok(!checkRegSuccess(m).ok, k);
    }
    assert.ok(!checkRegSuccess(rs({ Expires: -1 })).ok);
    assert.ok(!checkRegSuccess(rs({ Expires: 'soon' })).ok);
  });

  it('takes Expires as a number or a numeric string; 0 means gone', () => {
    assert.equal((checkRegSuccess(rs({ Expires: '3600' })) as { value: { expires: number } }).value.expires, 3600);
    assert.equal((checkRegSuccess(rs({ Expires: 0 })) as { value: { expires: number } }).value.expires, 0);
    assert.equal(seconds(' 60 '), 60);
    assert.equal(seconds(1.5), null);
  });

  it('carries only reg_success keys', () => {
    const m = buildRegSuccess(ME, 'id-9', { Contact: 'c', Expires: 10, Username: 'u', Realm: 'r', 'Event-Timestamp': 1, 'Not-A-Key': 1, Status: undefined, 'User-Agent': null });
    assert.deepEqual(Object.keys(m).sort(), ['App-Name', 'App-Version', 'Contact', 'Event-Category', 'Event-Name', 'Event-Timestamp', 'Expires', 'Msg-ID', 'Node', 'Realm', 'Server-ID', 'Username']);
    assert.equal(m['Event-Name'], 'reg_success');
    assert.ok(REG_SUCCESS_KEYS.includes('Original-Contact') && REG_SUCCESS_KEYS.includes('Custom-Channel-Vars') && REG_SUCCESS_KEYS.includes('Proxy-Path'));
  });

  it('cleans contacts of every < and >', () => {
    assert.equal(cleanContact('<sip:alice@192.0.2.1:5060;ob>;+sip.instance="<urn:uuid:1>"'), 'sip:alice@192.0.2.1:5060;ob;+sip.instance="urn:uuid:1"');
  });

  it('builds Bridge-RURI from Proxy-Path', () => {
    assert.equal(bridgeRuri('<sip:alice@192.0.2.1:5060;transport=tcp>', '<sip:10.0.0.1:5060;lr>', 'alice', 'example.com'), 'sip:alice@example.com;fs_path=<sip:10.0.0.1:5060;lr>');
    assert.equal(bridgeRuri('sips:alice@192.0.2.1', 'sip:10.0.0.1;lr', 'alice', 'example.com'), 'sips:alice@example.com;fs_path=<sip:10.0.0.1>');
    assert.equal(bridgeRuri('<sip:alice@192.0.2.1>', undefined, 'alice', 'example.com'), undefined);
    assert.equal(bridgeRuri('garbage', '<sip:10.0.0.1>', 'alice', 'example.com'), undefined);
  });
});

describe('reg_query', () => {
  const q = (extra: Record<string, unknown> = {}) => env('reg_query', { Username: 'Alice', Realm: 'Example.com', ...extra });

  it('reads user, realm, Count-Only and Fields', () => {
    const r = checkRegQuery(q({ Fields: ['Contact', 'Expires', 'Bridge-RURI'], 'Count-Only': 'true' }));
    assert.ok(r.ok);
    assert.deepEqual({ u: r.value.username, r: r.value.realm, c: r.value.countOnly, f: r.value.fields }, { u: 'alice', r: 'example.com', c: true, f: ['Contact', 'Expires', 'Bridge-RURI'] });
    const all = checkRegQuery(env('reg_query', { Realm: 'all' }));
    assert.ok(all.ok);
    assert.equal(all.value.realm, null);
    assert.equal(all.value.username, null);
    assert.deepEqual(all.value.fields, []);
    assert.equal(all.value.countOnly, false);
  });

  it('refuses Fields that are not reg_success keys', () => {
    assert.ok(!checkRegQuery(q({ Fields: ['Contact', 'Password'] })).ok);
    assert.ok(!checkRegQuery(q({ Fields: 'Contact' })).ok);
    assert.ok(!checkRegQuery(q({ Fields: [1] })).ok);
    assert.ok(REG_QUERY_FIELDS.includes('Bridge-RURI'));
  });

  it('keeps only the requested fields, all of them when none are named', () => {
    const reg = { Contact: 'c', Expires: 60, Username: 'u', 'Bridge-RURI': undefined, Secret: 'never' };
    assert.deepEqual(pickFields(reg, ['Contact', 'Bridge-RURI']), { Contact: 'c' });
    assert.deepEqual(pickFields(reg, []), { Contact: 'c', Expires: 60, Username: 'u' });
  });

  it('answers reg_query_resp or reg_query_error (that name) with Registrar-Age', () => {
    const resp = buildRegQueryResp(ME, q(), 12, [{ Contact: 'c' }]);
    assert.equal(resp['Event-Name'], 'reg_query_resp');
    assert.equal(resp['Msg-ID'], 'm-1');
    assert.equal(resp['Registrar-Age'], 12);
    assert.deepEqual(resp.Fields, [{ Contact: 'c' }]);
    assert.equal('Count' in resp, false);
    assert.equal(buildRegQueryResp(ME, q(), 1, [], 7).Count, 7);
    const err = buildRegQueryError(ME, q(), 3);
    assert.equal(err['Event-Name'], 'reg_query_error');
    assert.equal(err['Registrar-Age'], 3);
    assert.equal(err['Msg-ID'], 'm-1');
  });
});

describe('reg_flush / reg_sync', () => {
  it('reg_flush needs Realm; Username is optional', () => {
    const f = checkRegFlush(env('reg_flush', { Realm: 'Example.com', Username: 'Bob' }));
    assert.ok(f.ok);
    assert.deepEqual([f.value.realm, f.value.username], ['example.com', 'bob']);
    const whole = checkRegFlush(env('reg_flush', { Realm: 'example.com' }));
    assert.ok(whole.ok && whole.value.username === null);
    assert.ok(!checkRegFlush(env('reg_flush', {})).ok);
    assert.ok(!checkRegFlush(env('reg_flush', { Realm: '' })).ok);
    assert.equal(buildRegFlush(ME, 'i', 'example.com', 'bob').Username, 'bob');
  });

  it('reg_sync is the envelope alone', () => {
    assert.ok(checkRegSync(env('reg_sync')).ok);
    assert.ok(checkRegSync(buildRegSync(ME, 'i')).ok);
    assert.ok(!checkRegSync(env('reg_flush')).ok);
  });
});
