// Watcher policy (who may see a presentity's state), per account. Modes:
// - realm (the default): any authenticated watcher in the presentity's own domain;
// - allow-list: only the watchers on the list;
// - nobody: nobody but the listed ones (an empty list: nobody at all).
// The allow list adds to every mode. A presentity may always watch itself. A watcher not allowed is not refused:
// its subscription stays pending (RFC 6665 §4.1.2.4: empty NOTIFYs with Subscription-State: pending) until the
// policy allows it, so it cannot tell "not allowed" from "not yet decided".

import type { WatcherPolicyRecord } from '../storage/ports.ts';

export type WatcherDecision = 'active' | 'pending';

export const POLICY_MODES = ['realm', 'allow-list', 'nobody'] as const;

function domainOf(aor: string): string {
  return aor.slice(aor.lastIndexOf('@') + 1);
}

export function decide(policy: WatcherPolicyRecord | undefined, watcher: string, presentity: string): WatcherDecision {
  if (watcher === presentity) return 'active';
  if (policy?.allow.includes(watcher)) return 'active';
  const mode = policy?.mode ?? 'realm';
  if (mode === 'realm' && domainOf(watcher) === domainOf(presentity)) return 'active';
  return 'pending';
}
