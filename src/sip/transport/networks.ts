// Address sets from operator-given CIDRs (trusted edge proxies) and the per-peer key connection caps count by.

import { BlockList, isIP } from 'node:net';

/** An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as the IPv4 address it is. */
export function plainAddress(address: string): string {
  return address.length > 7 && address.charCodeAt(0) === 58 && address.startsWith('::ffff:') && address.indexOf('.') > 0 ? address.slice(7) : address;
}

/** A set of networks (CIDRs, or single addresses) from the configuration; throws on a malformed entry. */
export class NetworkSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [net, bits, extra] = cidr.trim().split('/');
      const version = isIP(net);
      const max = version === 6 ? 128 : 32;
      if (version === 0 || extra !== undefined || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max))) {
        throw new Error(`not an address or CIDR: ${cidr}`);
      }
      const family = version === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(net, family);
      else this.list.addSubnet(net, Number(bits), family);
    }
    this.size = cidrs.length;
  }

  has(address: string): boolean {
    if (this.size === 0) return false;
    const a = plainAddress(address);
    const v = isIP(a);
    return v !== 0 && this.list.check(a, v === 6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * The key connections are counted under: the IPv4 address, or an IPv6 address's /64 (one subscriber's LAN gets a
 * /64, and an attacker holding one has 2^64 addresses to spread over).
 */
export function peerKey(address: string): string {
  const a = plainAddress(address);
  if (a.indexOf(':') < 0) return a;
  const [head, tail] = a.split('::');
  const groups = head ? head.split(':') : [];
  if (groups.length < 4) {
    const right = tail ? tail.split(':') : [];
    while (groups.length + right.length < 8) groups.push('0');
    groups.push(...right);
  }
  return groups
    .slice(0, 4)
    .map((g) => (g.replace(/^0+/, '') || '0').toLowerCase())
    .join(':') + '::/64';
}
