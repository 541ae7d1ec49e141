// The exchanges of Kazoo's directory API and Switchboard's own events exchange.
//
// Kazoo (kz_amqp_util:new_exchange/3) and Kamailio's kazoo module declare their exchanges non-durable and not
// auto-deleted; declaring one with other flags fails with PRECONDITION_FAILED, so ours match theirs. Switchboard's own
// exchange is durable and its messages persistent, so a consumer's durable queue keeps events across a broker restart.

export type ExchangeType = 'topic' | 'direct' | 'fanout';

export interface ExchangeSpec {
  name: string;
  type: ExchangeType;
  /** Durable exchange, and messages published to it are persistent. */
  durable: boolean;
}

export const CALLMGR: ExchangeSpec = { name: 'callmgr', type: 'topic', durable: false };
export const REGISTRAR: ExchangeSpec = { name: 'registrar', type: 'topic', durable: false };
/** Replies: routing key = the requester's Server-ID (its queue). */
export const TARGETED: ExchangeSpec = { name: 'targeted', type: 'direct', durable: false };

export const KAZOO_EXCHANGES: readonly ExchangeSpec[] = [CALLMGR, REGISTRAR, TARGETED];

/** Switchboard's own events (binding.*, presence.*, account.*): routing key = the event's topic. */
export const SWITCHBOARD_EVENTS: ExchangeSpec = { name: 'switchboard', type: 'topic', durable: true };
