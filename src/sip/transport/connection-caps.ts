// Connection-level defences shared by the stream transports (TCP, TLS, WS, WSS): a cap on the connections one
// peer may hold at once, and a log that says so without letting a flood write a line per connection.
//
// Kamailio has the same knobs spread over tcp_max_connections (global), pike (per source) and
// tcp_msg_read_timeout / tcp_msg_data_timeout (deadlines, in tcp.ts and ws.ts here).

import type net from 'node:net';
import { peerKey, type NetworkSet } from './networks.ts';

export class ConnectionCaps {
  private readonly perAddress: number;
  private readonly exempt: NetworkSet | null;
  private readonly onRefused: (address: string) => void;
  /** Open connections per peer key (IPv4 address, IPv6 /64), across every stream transport. */
  private readonly counts = new Map<string, number>();

  /**
   * `perAddress` 0 turns the cap off; `exempt` (an office NAT, an SBC, an edge proxy) is never capped, since many
   * phones behind one address each hold their own connection.
   */
  constructor(perAddress: number, exempt: NetworkSet | null, onRefused: (address: string) => void) {
    this.perAddress = perAddress;
    this.exempt = exempt;
    this.onRefused = onRefused;
  }

  /** Counts a new inbound socket against its peer's cap (released when it closes), or destroys it: false then. */
  admit(socket: net.Socket): boolean {
    if (this.perAddress <= 0) return true;
    const address = socket.remoteAddress ?? '';
    if (this.exempt?.has(address)) return true;
    const key = peerKey(address);
    const n = this.counts.get(key) ?? 0;
    if (n >= this.perAddress) {
      socket.destroy();
      this.onRefused(address);
      return false;
    }
    this.counts.set(key, n + 1);
    socket.once('close', () => {
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left <= 0) this.counts.delete(key);
      else this.counts.set(key, left);
    });
    return true;
  }

  /** Open connections counted for a peer (tests, metrics). */
  countFor(address: string): number {
    return this.counts.get(peerKey(address)) ?? 0;
  }
}

/**
 * One log line per reason per interval, with how many were left out since the last one: the sender decides how
 * often these happen, so each is logged, but not each on a line of its own.
 */
export class GuardLog {
  private readonly write: (fields: Record<string, unknown>, message: string) => void;
  private readonly everyMs: number;
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(write: (fields: Record<string, unknown>, message: string) => void, everyMs = 10_000) {
    this.write = write;
    this.everyMs = everyMs;
  }

  note(reason: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const l = this.last.get(reason);
    if (l && now - l.at < this.everyMs) {
      l.suppressed++;
      return;
    }
    this.write(l && l.suppressed ? { ...fields, reason, suppressedSinceLast: l.suppressed } : { ...fields, reason }, message);
    this.last.set(reason, { at: now, suppressed: 0 });
  }
}
