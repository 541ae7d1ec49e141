// Presence across nodes: publications and watcher policies are written by the node that took the PUBLISH (or
// the HTTP call) and replicated to every other node over the bus (`presence.replicate`), so each node composes
// the same state and notifies its own watchers (a subscription stays on the node that holds its flow).

import type { EventBus } from '../bus/event-bus.ts';
import type { PresenceStore, PresenceWrite, WatcherPolicyRecord } from '../storage/ports.ts';
import type { PresenceService } from './presence-service.ts';

const TOPIC = 'presence.replicate';

/** The store, announcing every committed publication and policy change to the other nodes. */
export function replicatingStore(store: PresenceStore, bus: EventBus, node: string): PresenceStore {
  return {
    loadSubscriptions: () => store.loadSubscriptions(),
    loadPublications: () => store.loadPublications(),
    loadPolicies: () => store.loadPolicies(),
    async write(ops: PresenceWrite[]): Promise<void> {
      await store.write(ops);
      const shared = ops.filter((op) => op.op === 'put-publication' || op.op === 'delete-publication');
      if (shared.length) bus.publish(TOPIC, { node, kind: 'publications', ops: shared as unknown as Record<string, unknown>[] });
    },
    async putPolicy(p: WatcherPolicyRecord): Promise<void> {
      await store.putPolicy(p);
      bus.publish(TOPIC, { node, kind: 'policy', policy: p as unknown as Record<string, unknown> });
    },
    async deletePolicy(aor: string): Promise<void> {
      await store.deletePolicy(aor);
      bus.publish(TOPIC, { node, kind: 'policy', policy: { aor, deleted: true } });
    },
    close: () => store.close?.(),
  };
}

/** Applies other nodes' changes to this node's presence service. Returns the unsubscribe function. */
export function followReplicas(bus: EventBus, node: string, presence: PresenceService): () => void {
  return bus.subscribe(TOPIC, async (msg) => {
    const p = msg.payload;
    if (p.node === node) return;
    if (p.kind === 'publications' && Array.isArray(p.ops)) await presence.applyReplica(p.ops as PresenceWrite[]);
    else if (p.kind === 'policy' && p.policy && typeof p.policy === 'object') {
      presence.applyPolicyReplica(p.policy as WatcherPolicyRecord | { aor: string; deleted: true });
    }
  });
}
