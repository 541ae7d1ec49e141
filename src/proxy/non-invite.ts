// Non-INVITE forking (RFC 3261 §16.6 with §16.7 for non-INVITE): MESSAGE and other out-of-dialog requests to a
// user go to the AOR's live bindings the way INVITE does (fork.ts): q groups, parallel within a group, serial across;
// each branch a non-INVITE client transaction over the binding's own flow (RFC 5626: the connection it registered
// on, through the node that holds it, over sip/flow-relay.ts as NOTIFY is), its Path as Route. A GRUU target
// (RFC 5627) narrows the bindings to that one instance first.
//
// - The first 2xx decides: it is the answer at once, without waiting for the other branches (a non-INVITE cannot be
//   CANCELled, §9.1: they run out on their own and their answers are dropped).
// - A 6xx ends the search (the next q group is not tried); otherwise, when every branch of every group answered
//   non-2xx, failed or ran past `branchTimeoutMs`, the outcome is 'unavailable' with the best final (§16.7 step 6).
// - The wait per group is bounded by `branchTimeoutMs` (below the sender's own Timer F of 32 s, so that the sender
//   still gets our answer, e.g. the 202 of a stored MESSAGE, before it gives up).

import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { BindingRecord } from '../storage/ports.ts';
import type { Logger } from '../log.ts';
import { gruuMatches } from '../registrar/gruu.ts';
import { groupByQ, MAX_BRANCHES } from './proxy.ts';

export interface BranchFlow {
  node: string;
  transport: string;
  address: string;
  port: number;
  connectionId: number | null;
}

export interface NonInviteDeps {
  location: { lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]> };
  /** The flow relay: a flow of this node through the endpoint, another node's connection over the bus. */
  relay: { send(req: SipRequest, flow: BranchFlow): Promise<SipResponse> };
  /** A binding whose flow is this proxy itself (a contact pointing back at us is never a branch: loops). */
  isOurAddress: (transport: string, address: string, port: number) => boolean;
  /** How long one q group's branches may take to answer. */
  branchTimeoutMs: number;
  now?: () => number;
  log: Logger;
}

export interface NonInviteOutcome {
  /** 'delivered' when a branch answered 2xx. */
  outcome: 'delivered' | 'unavailable';
  /** The deciding 2xx, else the best final received (null: no branch, or none answered in time). */
  response: SipResponse | null;
  /** Branches tried. */
  branches: number;
}

export interface NonInviteTarget {
  aor: string;
  /** RFC 5627: the `+sip.instance` a GRUU named (as the binding records it, `<urn:…>`): only that device. */
  instance?: string | null;
  /** A temp-gruu's: the registration (Call-ID) it was minted for. */
  callIdHash?: string;
}

export type NonInviteFork = (target: NonInviteTarget, build: (b: BindingRecord) => SipRequest) => Promise<NonInviteOutcome>;

export function flowOfBinding(b: BindingRecord): BranchFlow {
  return { node: b.node, transport: b.transport, address: b.sourceAddress, port: b.sourcePort, connectionId: b.connectionId };
}

export function createNonInviteFork(d: NonInviteDeps): NonInviteFork {
  const now = d.now ?? Date.now;
  return async (target, build) => {
    const t = now();
    let bindings = (await d.location.lookup(target.aor)).filter((b) => b.expiresAt > t && !d.isOurAddress(b.transport, b.sourceAddress, b.sourcePort));
    if (target.instance) bindings = bindings.filter((b) => gruuMatches(b, target));
    let left = MAX_BRANCHES;
    let branches = 0;
    const finals: SipResponse[] = [];
    for (const group of groupByQ(bindings)) {
      if (left <= 0) break;
      const take = group.slice(0, left);
      left -= take.length;
      branches += take.length;
      const won = await runGroup(take, build, finals);
      if (won) return { outcome: 'delivered', response: won, branches };
      if (finals.some((r) => r.status >= 600)) break;
    }
    return { outcome: 'unavailable', response: best(finals), branches };
  };

  /** One q group in parallel: resolves with the first 2xx, or null once every branch ended or the wait ran out. */
  function runGroup(group: BindingRecord[], build: (b: BindingRecord) => SipRequest, finals: SipResponse[]): Promise<SipResponse | null> {
    return new Promise((resolve) => {
      let pending = group.length;
      let settled = false;
      const timer = setTimeout(() => finish(null), d.branchTimeoutMs);
      timer.unref();
      function finish(res: SipResponse | null): void {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(res);
      }
      for (const b of group) {
        d.relay.send(build(b), flowOfBinding(b)).then(
          (res) => {
            if (res.status >= 200 && res.status < 300) return finish(res);
            if (!settled) finals.push(res);
            if (--pending === 0 || res.status >= 600) finish(null);
          },
          (err: unknown) => {
            d.log.debug({ err: (err as Error).message, aor: b.aor, transport: b.transport }, 'non-INVITE branch failed');
            if (--pending === 0) finish(null);
          },
        );
      }
    });
  }
}

/** §16.7 step 6 for non-INVITE: a 6xx first, else the lowest class; null when nothing answered. */
function best(finals: SipResponse[]): SipResponse | null {
  if (finals.length === 0) return null;
  const sixxx = finals.find((r) => r.status >= 600);
  if (sixxx) return sixxx;
  return finals.reduce((a, r) => (Math.floor(r.status / 100) < Math.floor(a.status / 100) ? r : a));
}
