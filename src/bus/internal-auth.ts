// Authentication of Switchboard's inter-node messages on the AMQP bus. Whoever can publish on the broker could
// otherwise speak for a node: relay SIP through a node's connections (`sip.relay.<node>`) or answer another's relayed
// request (`sip.relay-reply.<node>`), flush every node's credential cache (`account.credentials.changed`), rewrite
// presence on every node (`presence.replicate`), announce a node's departure (`node.departed`).
//
// The nodes of a deployment share the master key (as they do for the Kazoo deployment tag and Digest nonces), so each
// message on these topics carries an HMAC-SHA256 under a key derived from it, in an AMQP header (the JSON body stays
// what it was for any other reader): over the routing key, the publication instant and the body bytes. A node drops a
// message on these topics whose MAC is missing or wrong (logged, rate-limited; counted as `forged`).
//
// Left as they are: Kazoo's exchanges (Kazoo must be able to send and read them as Kazoo defines them), and
// Switchboard's announcements (`binding.*` on every REGISTER, `presence.*`, `account.*` other than the above), which
// nodes act on only as a hint to read the shared state again (registration-feed.ts) or pass on to observers.
// Replays of a message a broker client captured are not stopped here: the relay serves a request id once and within
// its expiry (flow-relay.ts); broker permissions (README, Security) keep others from reading these topics at all.
// Cost (measured on the 2-core dev VM): one HMAC per inter-node message, ~15 µs for a 1 KB relay request; every
// other publication on Switchboard's exchange (binding.* per REGISTER) pays only `covers`, 25-60 ns.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { topicMatches } from './event-bus.ts';

/** The key's purpose, for deriveKey(master, …). */
export const BUS_MAC_KEY = 'bus-internal-mac';
/** The AMQP header carrying the MAC (base64url). */
export const MAC_HEADER = 'x-switchboard-mac';

/** Topics of Switchboard's own exchange that only a node of the deployment may publish. */
// The bridge's too (bridge/wire.ts): connection requests, connector announcements and link states, IMs both ways: a
// forged one could point a user's credential at another key, or put words in a remote contact's mouth.
export const INTERNAL_TOPICS: readonly string[] = ['sip.relay.*', 'sip.relay-reply.*', 'account.credentials.changed', 'presence.replicate', 'node.departed', 'bridge.#', 'message.incoming', 'message.outgoing.*'];

export class BusAuthenticator {
  private readonly key: Buffer;
  private readonly patterns: readonly string[];
  /** First words of the patterns: most topics (binding.*) are told apart by it without matching. */
  private readonly heads: ReadonlySet<string>;

  constructor(key: Buffer, patterns: readonly string[] = INTERNAL_TOPICS) {
    this.key = key;
    this.patterns = patterns;
    this.heads = new Set(patterns.map((p) => p.split('.')[0]));
  }

  /** Whether messages on this topic must carry the MAC. */
  covers(topic: string): boolean {
    const dot = topic.indexOf('.');
    if (!this.heads.has(dot < 0 ? topic : topic.slice(0, dot))) return false;
    return this.patterns.some((p) => topicMatches(p, topic));
  }

  mac(topic: string, at: number, body: Buffer): string {
    return createHmac('sha256', this.key).update(`${topic}\n${at}\n`).update(body).digest('base64url');
  }

  /** Constant-time check of a received MAC; anything not a string of the right length fails. */
  verify(topic: string, at: unknown, body: Buffer, mac: unknown): boolean {
    if (typeof mac !== 'string' || typeof at !== 'number') return false;
    const want = Buffer.from(this.mac(topic, at, body), 'base64url');
    const got = Buffer.from(mac, 'base64url');
    return got.length === want.length && timingSafeEqual(got, want);
  }
}
