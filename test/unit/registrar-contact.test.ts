// The registrar's reading of contacts (src/registrar/contact.ts): delta-seconds (RFC 3261 §20.19, §25.1), q-values
// (§20.10) and the binding key (§10.3 step 6, §19.1.4).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bindingKey, parseDeltaSeconds, parseQ } from '../../src/registrar/contact.ts';
import { parseNameAddr } from '../../src/sip/message/index.ts';

describe('parseDeltaSeconds', () => {
  it('reads 1*20DIGIT, surrounding whitespace allowed, capped at 2^32-1', () => {
    assert.equal(parseDeltaSeconds('3600'), 3600);
    assert.equal(parseDeltaSeconds(' 0 '), 0);
    assert.equal(parseDeltaSeconds('007'), 7);
    assert.equal(parseDeltaSeconds('99999999999999999999'), 2 ** 32 - 1);
    assert.equal(parseDeltaSeconds('4294967296'), 2 ** 32 - 1);
  });
  it('takes anything else as absent', () => {
    for (const v of ['', ' ', '-1', '+5', '1.5', '1e3', '0x10', '12a', '３６', '999999999999999999999', undefined, null]) assert.equal(parseDeltaSeconds(v), null, String(v));
  });
});

describe('parseQ', () => {
  it('reads qvalues and refuses anything else', () => {
    assert.deepEqual(['0', '0.5', '1', '1.000', '0.001'].map(parseQ), [0, 0.5, 1, 1, 0.001]);
    for (const v of ['1.5', '2', '.5', '0.0001', 'x', null]) assert.equal(parseQ(v), 'invalid', String(v));
    assert.equal(parseQ(undefined), null);
  });
});

describe('bindingKey', () => {
  it('keys a contact by its URI compared per RFC 3261 §19.1.4, or by instance and reg-id', () => {
    const key = (v: string) => bindingKey(parseNameAddr(v)!);
    assert.equal(key('<sip:Alice@Example.TEST:5060;transport=UDP;foo=bar>'), 'uri:sip:Alice@example.test:5060;transport=udp');
    assert.equal(key('<sip:%61lice@h>'), key('<sip:alice@h>'));
    assert.equal(key('<sip:a@h>;+sip.instance="<urn:uuid:1>";reg-id=2'), 'instance:<urn:uuid:1>|2');
  });
});
