// One delivery attempt of a stored message at a time, across nodes. A stored message reaches SIP devices by two
// paths (sip-message.ts): an app's message forked at once (deliverStored) and msilo's dump on REGISTER; on a cluster
// they may run on two nodes. Without a lease, a device that registers while an app message is on its way gets it
// twice (the dump reads it as pending until the first path's 2xx acks it).
//
// The lease is a key per message id in the shared cache (in-process embedded, Redis on a cluster), taken with an
// atomic set-if-absent before sending and released after the ack, by compare-and-set on a random token so a holder
// whose lease ran out never frees another's. The other path skips a leased message: it stays stored, and if the
// holder fails it is tried again on the next REGISTER or send. A holder that dies leaves it leased LEASE_TTL at most.

import { randomBytes } from 'node:crypto';
import type { Cache } from '../storage/ports/cache.ts';

/**
 * Seconds a lease holds: above the longest single attempt, so a live holder never loses it mid-send. The fork is
 * bounded by 28 s (proxy/non-invite.ts SENDER_BUDGET_MS, below the sender's Timer F of 32 s); one MESSAGE of a dump
 * over another node's flow by the relay's 34 s (sip/flow-relay.ts DEFAULT_RELAY_TIMEOUT_MS); then the ack (one UPDATE).
 */
export const LEASE_TTL = 60;

const keyOf = (messageId: string) => `msg-lease:${messageId}`;

export class DeliveryLeases {
  private readonly cache: Cache;

  constructor(cache: Cache) {
    this.cache = cache;
  }

  /** The lease on a message (its release), or null when another attempt holds it. */
  async take(messageId: string): Promise<(() => Promise<void>) | null> {
    const token = randomBytes(12).toString('base64url');
    if (!(await this.cache.setIfAbsent(keyOf(messageId), token, LEASE_TTL))) return null;
    return async () => {
      await this.cache.compareAndSet(keyOf(messageId), token, null, LEASE_TTL);
    };
  }

  /** Runs `attempt` under the message's lease; 'leased' (not run) when another attempt holds it. */
  async hold<T>(messageId: string, attempt: () => Promise<T>): Promise<T | 'leased'> {
    const release = await this.take(messageId);
    if (!release) return 'leased';
    try {
      return await attempt();
    } finally {
      // A failed release costs at most LEASE_TTL of waiting; the attempt's outcome stands.
      await release().catch(() => {});
    }
  }
}
