// Which remote servers a linked account may name (SSRF defence): a user picks the `server` a connector opens a TCP
// connection to, so without a policy any user could make a connector talk to this deployment's own internals
// (Redis on 127.0.0.1:6379, the cloud metadata service at 169.254.169.254, a database on 10.x …).
//
// By default refused: loopback, unspecified, RFC 1918 and ULA (fc00::/7) private, link-local, CGNAT (100.64/10),
// multicast and reserved ranges, and this deployment's own listen addresses (every interface's address when it
// listens on a wildcard). `--bridge-allow-servers` (CIDRs or host names) lets an intranet
// server or a test's loopback through; `--bridge-deny-servers` refuses more and wins over everything.
//
// Checked twice: when the link is made (a clear 400), and by the connector right before it connects, on the
// addresses the name resolves to then (DNS can change between the two; a name with several addresses is refused
// when any of them is). The connector then connects to the address it checked, not to the name again.

import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Config } from '../config.ts';

/** Ranges no linked account may reach unless allowed: [network, prefix]. */
const REFUSED_V4: Array<[string, number]> = [
  ['0.0.0.0', 8], //        "this network", the unspecified address
  ['10.0.0.0', 8], //       RFC 1918
  ['100.64.0.0', 10], //    CGNAT (RFC 6598)
  ['127.0.0.0', 8], //      loopback
  ['169.254.0.0', 16], //   link-local (cloud metadata services live here)
  ['172.16.0.0', 12], //    RFC 1918
  ['192.0.0.0', 24], //     IETF protocol assignments
  ['192.168.0.0', 16], //   RFC 1918
  ['198.18.0.0', 15], //    benchmarking
  ['224.0.0.0', 4], //      multicast
  ['240.0.0.0', 4], //      reserved, and the broadcast address
];
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) need no entry: BlockList checks them against the IPv4 rules.
const REFUSED_V6: Array<[string, number]> = [
  ['::', 128], //           unspecified
  ['::1', 128], //          loopback
  ['64:ff9b::', 96], //     NAT64 (reaches IPv4 space, private ranges included)
  ['fc00::', 7], //         unique local
  ['fe80::', 10], //        link-local
  ['ff00::', 8], //         multicast
];

export interface ServerPolicyOptions {
  /** CIDRs, addresses or host names let through although in a refused range (--bridge-allow-servers). */
  allow: readonly string[];
  /** CIDRs, addresses or host names refused whatever else says (--bridge-deny-servers). */
  deny: readonly string[];
  /** This deployment's listen addresses (a wildcard stands for every interface's address). */
  listen: readonly string[];
  /** Name resolution (tests); default: the system resolver, every address. */
  resolve?: (host: string) => Promise<string[]>;
}

export type ServerCheck = { ok: true; host: string; port: number | null; addresses: string[] } | { ok: false; reason: string };

/** `host`, `host:port`, `[v6]` or `[v6]:port` → its parts; null when it is none of those. */
export function splitServer(server: string): { host: string; port: number | null } | null {
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(server) ?? /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(server);
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) return null;
  return { host: m[1].toLowerCase().replace(/\.$/, ''), port: m[2] === undefined ? null : Number(m[2]) };
}

/** An IPv4-mapped IPv6 address as the IPv4 address it reaches. */
const plain = (a: string) => (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a);
const family = (a: string) => (isIP(a) === 6 ? 'ipv6' : 'ipv4');

class AddressSet {
  readonly list = new BlockList();
  readonly names = new Set<string>();

  add(entry: string, what: string): void {
    const e = entry.trim().toLowerCase();
    const [net, bits, extra] = e.split('/');
    const v = isIP(net);
    if (v === 0 && bits === undefined && /^[a-z0-9.-]{1,255}$/.test(e)) return void this.names.add(e.replace(/\.$/, ''));
    const max = v === 6 ? 128 : 32;
    if (v === 0 || extra !== undefined || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max))) throw new Error(`${what}: not a CIDR, address or host name: ${entry}`);
    if (bits === undefined) this.list.addAddress(net, family(net));
    else this.list.addSubnet(net, Number(bits), family(net));
  }

  hasAddress(a: string): boolean {
    return isIP(a) !== 0 && this.list.check(a, family(a));
  }
}

export class ServerPolicy {
  private readonly allow = new AddressSet();
  private readonly deny = new AddressSet();
  private readonly refused = new BlockList();
  private readonly own = new Set<string>();
  private readonly resolve: (host: string) => Promise<string[]>;

  constructor(o: ServerPolicyOptions) {
    for (const e of o.allow) this.allow.add(e, '--bridge-allow-servers');
    for (const e of o.deny) this.deny.add(e, '--bridge-deny-servers');
    for (const [n, p] of REFUSED_V4) this.refused.addSubnet(n, p, 'ipv4');
    for (const [n, p] of REFUSED_V6) this.refused.addSubnet(n, p, 'ipv6');
    for (const l of o.listen) {
      const a = plain(l);
      if (isIP(a) === 0) continue;
      if (a === '0.0.0.0' || a === '::') {
        for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) this.own.add(plain(i.address.toLowerCase()));
      } else this.own.add(a.toLowerCase());
    }
    this.resolve = o.resolve ?? (async (host) => (await lookup(host, { all: true, order: 'ipv4first' })).map((r) => r.address));
  }

  /** Why this address may not be reached, or null when it may (`name`: the host name it came from, if any). */
  private refusal(address: string, name: string | null): string | null {
    const a = plain(address.toLowerCase());
    if (this.deny.hasAddress(a) || (name !== null && this.deny.names.has(name))) return `${a} is denied (--bridge-deny-servers)`;
    if (this.allow.hasAddress(a) || (name !== null && this.allow.names.has(name))) return null;
    if (this.own.has(a)) return `${a} is an address of this deployment`;
    if (this.refused.check(a, family(a))) return `${a} is a loopback, private, link-local, shared or multicast address`;
    return null;
  }

  /** Resolves the server's host now and checks every address it has; `ok` carries them (the ones to connect to). */
  async check(server: string): Promise<ServerCheck> {
    const s = splitServer(server);
    if (!s) return { ok: false, reason: `not a host or host:port: ${server.slice(0, 100)}` };
    const literal = isIP(s.host) !== 0;
    let addresses: string[];
    try {
      addresses = literal ? [s.host] : await this.resolve(s.host);
    } catch (err) {
      return { ok: false, reason: `${s.host} does not resolve (${(err as { code?: string }).code ?? 'lookup failed'})` };
    }
    if (addresses.length === 0) return { ok: false, reason: `${s.host} does not resolve` };
    for (const a of addresses) {
      const why = this.refusal(a, literal ? null : s.host);
      if (why) return { ok: false, reason: `address not allowed: ${literal ? why : `${s.host} resolves to ${why}`}` };
    }
    return { ok: true, host: s.host, port: s.port, addresses: addresses.map(plain) };
  }
}

/** The policy of this deployment's configuration (--bridge-allow-servers, --bridge-deny-servers, its listeners). */
export function serverPolicy(c: Pick<Config, 'bridge' | 'sip' | 'http' | 'metrics'>): ServerPolicy {
  const metricsHost = c.metrics.listen ? (splitServer(c.metrics.listen)?.host ?? null) : null;
  const listen = [...c.sip.hosts, c.http.host, ...(metricsHost ? [metricsHost] : [])];
  return new ServerPolicy({ allow: c.bridge.allowServers, deny: c.bridge.denyServers, listen });
}
