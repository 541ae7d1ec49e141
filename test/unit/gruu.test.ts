// RFC 5627 GRUUs (registrar/gruu.ts) as pure logic: the pub-gruu is the AOR with gr= the instance; a temp-gruu
// resolves back to its AOR and instance under the same key only, hides the AOR, differs each time, and any change to
// it (or another node's key) makes it a forgery; a temp-gruu matches only the binding whose Call-ID minted it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Gruus, gruuMatches } from '../../src/registrar/gruu.ts';
import { parseUri, type SipUri } from '../../src/sip/message/uri.ts';
import type { BindingRecord } from '../../src/storage/ports.ts';

const INSTANCE = '<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>';
const uri = (s: string) => parseUri(s) as SipUri;
const binding = (callId: string, instanceId: string | null = INSTANCE) => ({ aor: 'alice@example.test', instanceId, callId }) as BindingRecord;

describe('GRUU', () => {
  const key = randomBytes(32);
  const gruus = new Gruus(key);

  it('pub-gruu: the AOR with gr= the instance id, resolved to that instance', () => {
    const pub = gruus.pub('alice@example.test', INSTANCE);
    assert.equal(pub, 'sip:alice@example.test;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6');
    assert.deepEqual(gruus.resolve(uri(pub)), { aor: 'alice@example.test', instance: INSTANCE });
    assert.equal(gruus.resolve(uri('sip:alice@example.test')), null, 'no gr: not a GRUU');
  });

  it('temp-gruu: opaque, fresh each time, resolved under the same key only, forgeries refused', () => {
    const a = gruus.temp('alice@example.test', INSTANCE, 'call-1@phone');
    const b = gruus.temp('alice@example.test', INSTANCE, 'call-1@phone');
    assert.notEqual(a, b);
    assert.match(a, /^sip:tgruu\.[A-Za-z0-9_-]+@example\.test;gr$/);
    assert.doesNotMatch(a, /alice|f81d4fae/, 'the AOR and instance are not readable');
    const t = gruus.resolve(uri(a));
    assert.ok(t && t !== 'forged');
    assert.equal(t.aor, 'alice@example.test');
    assert.equal(t.instance, INSTANCE);
    assert.ok(gruuMatches(binding('call-1@phone'), t));
    assert.ok(!gruuMatches(binding('call-2@phone'), t), 'a new registration (Call-ID) invalidates it');
    assert.ok(!gruuMatches(binding('call-1@phone', '<urn:uuid:other>'), t));

    const token = a.slice('sip:tgruu.'.length, a.indexOf('@'));
    const flipped = token.slice(0, 20) + (token[20] === 'A' ? 'B' : 'A') + token.slice(21);
    assert.equal(gruus.resolve(uri(`sip:tgruu.${flipped}@example.test;gr`)), 'forged');
    assert.equal(gruus.resolve(uri('sip:tgruu.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@example.test;gr')), 'forged');
    assert.equal(gruus.resolve(uri('sip:alice@example.test;gr')), 'forged', 'bare gr without a temp-gruu token');
    assert.equal(new Gruus(randomBytes(32)).resolve(uri(a)), 'forged', 'another key');
  });

  it('contact parameters only for a binding with an instance', () => {
    assert.equal(gruus.contactParams(binding('c', null)), '');
    assert.match(gruus.contactParams(binding('c')), /^;pub-gruu="sip:alice@example\.test;gr=urn:uuid:[0-9a-f-]+";temp-gruu="sip:tgruu\.[^"]+;gr"$/);
  });
});
