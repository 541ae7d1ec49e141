// Trusted-network sets and the per-peer key of the connection caps (src/sip/transport/networks.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkSet, peerKey, plainAddress } from '../../src/sip/transport/networks.ts';

describe('NetworkSet', () => {
  it('matches CIDRs and single addresses of both families, IPv4-mapped IPv6 as IPv4', () => {
    const n = new NetworkSet(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
    assert.ok(n.has('10.1.2.3'));
    assert.ok(n.has('::ffff:10.1.2.3'));
    assert.ok(n.has('192.0.2.7'));
    assert.ok(!n.has('192.0.2.8'));
    assert.ok(n.has('2001:db8:1::5'));
    assert.ok(!n.has('2001:db9::1'));
    assert.ok(!n.has('not-an-address'));
    assert.ok(!new NetworkSet([]).has('127.0.0.1'));
  });

  it('refuses malformed entries', () => {
    for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0.0/8/1', '::/129', '10.0.0.0/x']) assert.throws(() => new NetworkSet([bad]), /CIDR/, bad);
  });
});

describe('peerKey', () => {
  it('is the IPv4 address, and the /64 of an IPv6 one', () => {
    assert.equal(peerKey('192.0.2.1'), '192.0.2.1');
    assert.equal(peerKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(peerKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(peerKey('2001:0db8:0001:0002:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(peerKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(peerKey('::1'), '0:0:0:0::/64');
    assert.equal(plainAddress('::ffff:10.0.0.1'), '10.0.0.1');
  });
});
