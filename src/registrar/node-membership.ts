// Node membership on a shared location index (the LocationCluster port, Redis): this node says it is alive every
// heartbeat, and cleans up after the nodes that stopped saying so (killed, or cut off): their connection-bound
// bindings can no longer be reached through anyone, so they are removed, durably and announced, and
// `node.departed` goes out on the bus. Bindings another node can reach (UDP, plain TCP/TLS contacts) stay: any
// node serves them. A graceful stop departs at once. The location service owns one when its index is shared.

import type { EventBus } from '../bus/event-bus.ts';
import type { Logger } from '../log.ts';
import { diesWithConnection, type BindingRecord, type LocationCluster } from '../storage/ports/location.ts';

export interface NodeMembershipOptions {
  cluster: LocationCluster;
  node: string;
  /** How often this node says it is alive (ms); it is taken for gone after four silent periods. */
  heartbeatMs: number;
  bus: EventBus;
  log: Logger;
  now: () => number;
  /** Removes the AOR's live bindings that `drop` picks, durably and announced; how many went. */
  remove(aor: string, drop: (b: BindingRecord) => boolean): Promise<number>;
  /** Loads every live binding from the store into the index; how many. */
  reload(): Promise<number>;
}

export class NodeMembership {
  private readonly o: NodeMembershipOptions;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;

  constructor(o: NodeMembershipOptions) {
    this.o = o;
  }

  /** The first heartbeat (and clean-up), then one every heartbeatMs. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.o.heartbeatMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Leaving the deployment (graceful stop): this node's connections are about to close, so the bindings that need
   * them go now, and the other nodes hear of it. Throws when the clean-up fails (the others do it once the
   * heartbeat lapses).
   */
  async depart(): Promise<void> {
    const { cluster, node, bus } = this.o;
    this.stop();
    await this.beating;
    const removed = await this.removeFlowsOf(node);
    await cluster.forgetNode(node);
    bus.publish('node.departed', { node, removed, graceful: true, by: node });
  }

  private beat(): Promise<void> {
    const { cluster, node: self, heartbeatMs, log, bus, now } = this.o;
    this.beating ??= (async () => {
      try {
        await cluster.heartbeat(self, now() + heartbeatMs * 4);
        if (!(await cluster.isPrimed())) await this.reprime();
        for (const { node, lapsedAt } of await cluster.claimDeparted(now(), now() + heartbeatMs * 4)) {
          if (node === self) continue; // our own lapse (a long pause): we are alive, the next beat says so
          const removed = await this.removeFlowsOf(node, lapsedAt);
          await cluster.forgetNode(node);
          log.warn({ node, removed }, 'node departed: its connection-bound bindings were removed');
          bus.publish('node.departed', { node, removed, graceful: false, by: self });
        }
      } catch (err) {
        log.error({ err }, 'node heartbeat failed');
      } finally {
        this.beating = null;
      }
    })();
    return this.beating;
  }

  /**
   * The shared index lost its data (Redis restarted without persistence, or was flushed): the first node to see
   * it takes the priming lease and reloads every live binding from the store; the others find it primed.
   */
  private async reprime(): Promise<void> {
    const { cluster } = this.o;
    if ((await cluster.beginPriming()) !== 'mine') return;
    const bindings = await this.o.reload();
    await cluster.endPriming();
    this.o.log.warn({ bindings }, 'the shared location index had lost its bindings: reloaded them from the store');
  }

  /** Removes the bindings that only `node`'s connections could reach (those it made up to `before`, if given). */
  private async removeFlowsOf(node: string, before = Infinity): Promise<number> {
    let removed = 0;
    for (const aor of await this.o.cluster.flowAors(node)) {
      removed += await this.o.remove(aor, (b) => b.node === node && diesWithConnection(b) && b.updatedAt <= before);
    }
    return removed;
  }
}
