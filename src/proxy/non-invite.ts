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
// - Fork late (fork-late.ts): a device with push parameters whose connection here is gone is pushed at once and,
//   when the groups brought no 2xx, waited for; each of its bindings that registers again gets the request, within
//   SENDER_BUDGET_MS of arrival in all.

import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { BindingRecord } from '../storage/ports.ts';
import type { Logger } from '../log.ts';
import { gruuMatches } from '../registrar/gruu.ts';
import { parked } from '../registrar/push-params.ts';
import { groupByQ, MAX_BRANCHES } from './proxy.ts';
import type { LateForks } from './fork-late.ts';

/** The whole fork's bound: the sender's Timer F is 32 s, and it must still get our answer (200, or the 202 of a store). */
const SENDER_BUDGET_MS = 28_000;

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
  /** Fork late (fork-late.ts): push-only devices are pushed and waited for, `timeoutMs` at most. */
  late?: { forks: LateForks; timeoutMs: number };
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
    const pushOnly = d.late?.forks.pushOnly(bindings) ?? [];
    bindings = bindings.filter((b) => !pushOnly.includes(b) && !parked(b)); // parked: no flow, never a branch
    const late = pushOnly.length ? lateDevices(target.aor, pushOnly) : null;
    let left = MAX_BRANCHES;
    let branches = 0;
    const finals: SipResponse[] = [];
    try {
      for (const group of groupByQ(bindings)) {
        if (left <= 0) break;
        const take = group.slice(0, left);
        left -= take.length;
        branches += take.length;
        const won = await runGroup(take, build, finals, d.branchTimeoutMs);
        if (won) return { outcome: 'delivered', response: won, branches };
        if (finals.some((r) => r.status >= 600)) return { outcome: 'unavailable', response: best(finals), branches };
      }
      while (late) {
        const b = await late.next();
        if (!b) break;
        const budget = t + SENDER_BUDGET_MS - now();
        if (budget <= 0) break;
        branches++;
        const won = await runGroup([b], build, finals, Math.min(d.branchTimeoutMs, budget));
        if (won) return { outcome: 'delivered', response: won, branches };
      }
    } finally {
      late?.stop();
    }
    return { outcome: 'unavailable', response: best(finals), branches };
  };

  /** Pushes the devices now; `next()` resolves with each binding of them that registers again, null once the wait ends. */
  function lateDevices(aor: string, devices: BindingRecord[]) {
    const back: BindingRecord[] = [];
    let ended = false;
    let wake: (() => void) | null = null;
    const poke = () => {
      wake?.();
      wake = null;
    };
    const w = d.late!.forks.wait(aor, devices, 'message', Math.min(d.late!.timeoutMs, SENDER_BUDGET_MS), (b) => {
      back.push(b);
      poke();
    }, () => {
      ended = true;
      poke();
    });
    return {
      async next(): Promise<BindingRecord | null> {
        while (back.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
        return back.shift() ?? null;
      },
      stop: () => w.stop(),
    };
  }

  /** One q group in parallel: resolves with the first 2xx, or null once every branch ended or the wait ran out. */
  function runGroup(group: BindingRecord[], build: (b: BindingRecord) => SipRequest, finals: SipResponse[], timeoutMs: number): Promise<SipResponse | null> {
    return new Promise((resolve) => {
      let pending = group.length;
      let settled = false;
      const timer = setTimeout(() => finish(null), timeoutMs);
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
