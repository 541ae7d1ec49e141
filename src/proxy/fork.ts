// One proxied INVITE's branches (RFC 3261 §16.6-§16.10): targets in q groups, parallel within a group and serial
// across groups (Kamailio's t_load_contacts/t_next_contacts: the next group when the current one ended without a
// 2xx or 6xx, or when it rang for `groupTimeoutMs`), per-branch Timer C, the response context and best response.
//
// - 1xx (not 100) are forwarded upstream; every 2xx is forwarded at once (the server transaction is in Accepted,
//   RFC 6026), and the first one cancels the other branches with `Reason: SIP;cause=200` (RFC 3326).
// - A 6xx ends the search: the other branches are cancelled and the 6xx is the answer.
// - Otherwise, when no branch is left and no group remains, the best final goes upstream (§16.7 step 6): the
//   lowest class; within 4xx a 401/407 carrying every branch's challenge, else the most telling status (a branch
//   timeout, 408, only when nothing else); 503 becomes 500.
// - A 3xx is one of those finals, unless `redirect` is given (--call-follow-redirects): then its Contacts, as the
//   proxy allows them (proxy.ts: bounded, no target twice), become new branches of the current group, and the 3xx
//   counts as a final only when none did (§16.5, as Kamailio's get_redirects + t_relay).
// - The caller's CANCEL cancels every branch and the answer is 487; branches that had no provisional yet are not
//   waited for (their CANCEL goes when one arrives, §9.1), so the caller gets its 487 at once.
// - Fork late (fork-late.ts): while a hold is on, the fork does not end when its branches have; `addBranch` adds a
//   branch to the pending transaction (a pushed device that registered again), `release` lifts the hold with the
//   final that stands for the device that never came (480).

import { H } from '../sip/message/header-names.ts';
import { SipRequest, type SipResponse } from '../sip/message/message.ts';
import { Errors } from '../errors.ts';
import { sipError } from '../sip/message/response.ts';
import type { InviteClientCallbacks, InviteClientHandle } from '../sip/transaction/invite-table.ts';
import type { Destination } from '../sip/transport/types.ts';

export interface Target {
  /** The new Request-URI. */
  uri: string;
  dest: Destination;
  /** Route values to put first (a binding's Path, outermost first). */
  routes: string[];
  /** Record-Route values to add (ours, one or two), the first topmost. */
  recordRoute: string[];
}

export interface ForkOptions {
  /** The request as received, after route preprocessing: copied per branch. */
  request: SipRequest;
  /** Targets by q group, highest q first. */
  groups: Target[][];
  invite: (req: SipRequest, dest: Destination, callbacks: InviteClientCallbacks, branch: string) => InviteClientHandle;
  /** Our branch for the i-th branch (unique; carries the loop-detection hash). */
  branchId: (i: number) => string;
  /** Sends a response upstream through the server transaction. */
  respond: (res: SipResponse) => boolean;
  /** Timer C (§16.8: more than 3 minutes). */
  timerCMs: number;
  /** How long a group rings before the next one starts (serial forking); 0: only when it ends. */
  groupTimeoutMs: number;
  /** The call ended upstream with this status (2xx: answered). */
  onFinal?: (status: number) => void;
  /** 3xx recursion: the branches a redirect's Contacts become (none: the 3xx is a final); absent: never followed. */
  redirect?: (res: SipResponse) => Promise<Target[]>;
}

interface Branch {
  handle: InviteClientHandle | null;
  done: boolean;
  /** Left behind when its group timed out or the caller cancelled: only a 2xx from it still counts. */
  abandoned: boolean;
  provisional: boolean;
  timerC: NodeJS.Timeout | null;
  /** performance.now() when Timer C is due: a provisional moves it, the timer then finds it moved and waits on. */
  timerCAt: number;
}

const REASON_ANSWERED = 'SIP;cause=200;text="Call completed elsewhere"';
const REASON_DECLINED = 'SIP;cause=600;text="Busy Everywhere"';

export class Fork {
  private readonly o: Omit<ForkOptions, 'request'>;
  /**
   * The request, until the fork has its answer: an answered call's client and server transactions stay 32 s
   * (Timers L and M) and hold this fork, for the 2xx retransmissions; the parsed INVITE is not needed for them.
   */
  private request: SipRequest | null;
  private readonly branches: Branch[] = [];
  private readonly finals: SipResponse[] = [];
  private group = -1;
  private groupTimer: NodeJS.Timeout | null = null;
  private answered = false;
  private finished = false;
  private cancelled = false;
  private sixxx: SipResponse | null = null;
  private holds = 0;
  /** Redirects whose Contacts are being resolved: the search is not over while any is. */
  private redirecting = 0;

  constructor(options: ForkOptions) {
    const { request, ...o } = options;
    this.o = o;
    this.request = request;
  }

  start(): void {
    this.nextGroup();
  }

  /** The caller's CANCEL (§16.10). */
  cancel(reason?: string): void {
    if (this.finished || this.answered) return;
    this.cancelled = true;
    this.clearGroupTimer();
    for (const b of this.branches) {
      if (b.done) continue;
      b.handle?.cancel(reason);
      if (!b.provisional) this.settle(b, true);
      else b.abandoned = true;
    }
    this.complete();
  }

  /** Keeps the fork open after its branches ended (a device woken by push may still register). */
  hold(): void {
    this.holds++;
  }

  /** Lifts a hold; `final` (the device that did not come) counts among the branches' finals. */
  release(final?: SipResponse): void {
    if (this.holds === 0) return;
    this.holds--;
    if (final && !this.finished) this.finals.push(final);
    this.complete();
  }

  /** A branch to a late target; false when the fork has ended (answered, cancelled, a 6xx, or finished). */
  addBranch(t: Target): boolean {
    if (this.finished || this.answered || this.cancelled || this.sixxx) return false;
    this.startBranch(t);
    return true;
  }

  /** True once the fork has an answer or a final upstream. */
  get ended(): boolean {
    return this.finished || this.answered;
  }

  private nextGroup(): void {
    this.group++;
    const targets = this.o.groups[this.group];
    if (!targets) return;
    if (this.o.groupTimeoutMs > 0 && this.group + 1 < this.o.groups.length) {
      this.groupTimer = setTimeout(() => this.groupTimedOut(), this.o.groupTimeoutMs);
      this.groupTimer.unref();
    }
    for (const t of targets) this.startBranch(t);
  }

  private startBranch(t: Target): void {
    if (!this.request) return; // answered or finished: addBranch and nextGroup do not get here then
    const b: Branch = { handle: null, done: false, abandoned: false, provisional: false, timerC: null, timerCAt: 0 };
    const i = this.branches.push(b) - 1;
    const req = forwardedCopy(this.request, t);
    this.armTimerC(b);
    b.handle = this.o.invite(req, t.dest, {
      onResponse: (res) => this.onResponse(b, res),
      onFailure: (reason) => this.onFailure(b, reason),
    }, this.o.branchId(i));
  }

  /**
   * Timer C (§16.8), restarted by every provisional: the deadline moves and the one Node timer, when it fires
   * early, waits for the rest (a clearTimeout and setTimeout per 180 were two of a call's eight timers).
   */
  private armTimerC(b: Branch): void {
    b.timerCAt = performance.now() + this.o.timerCMs;
    if (!b.timerC) b.timerC = this.timerC(b, this.o.timerCMs);
  }

  private timerC(b: Branch, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      b.timerC = null;
      if (b.done) return;
      const left = b.timerCAt - performance.now();
      if (left >= 1) b.timerC = this.timerC(b, left);
      else b.handle?.cancel(); // rang for ever: cancelled; its 487 (or its CANCEL's timeout) ends it
    }, ms);
    t.unref();
    return t;
  }

  private onResponse(b: Branch, res: SipResponse): void {
    popVia(res);
    const status = res.status;
    if (status < 200) {
      b.provisional = true;
      this.armTimerC(b);
      if (!b.abandoned && !this.finished && !this.answered) this.o.respond(res);
      return;
    }
    if (status < 300) {
      // Every 2xx goes upstream (RFC 6026); the first one ends the search.
      if (!b.done) this.settle(b, false);
      this.o.respond(res);
      if (!this.answered) {
        this.answered = true;
        this.finished = true;
        this.clearGroupTimer();
        this.cancelOthers(REASON_ANSWERED);
        this.o.onFinal?.(status);
        this.searchOver();
        this.handOver();
      }
      return;
    }
    if (b.done) return;
    this.settle(b, false);
    if (b.abandoned) return this.complete();
    if (status < 400 && this.o.redirect && !this.cancelled && !this.sixxx) return this.follow(res);
    this.finals.push(res);
    if (status >= 600 && !this.sixxx) {
      this.sixxx = res;
      this.clearGroupTimer();
      this.cancelOthers(REASON_DECLINED);
    }
    this.complete();
  }

  /** A 3xx followed: its Contacts as new branches of this group, or the 3xx as a final when none may be rung. */
  private follow(res: SipResponse): void {
    this.redirecting++;
    this.o
      .redirect!(res)
      .catch((): Target[] => [])
      .then((targets) => {
        this.redirecting--;
        const searching = !this.finished && !this.answered && !this.cancelled && !this.sixxx;
        if (targets.length === 0) this.finals.push(res);
        else if (searching) for (const t of targets) this.startBranch(t);
        this.complete();
      });
  }

  private onFailure(b: Branch, reason: 'timeout' | 'transport'): void {
    if (b.done) return;
    this.settle(b, false);
    if (!b.abandoned && this.request) this.finals.push(sipError(this.request, reason === 'timeout' ? Errors.SIP_ERR_TIMEOUT : Errors.SIP_ERR_TRANSPORT));
    this.complete();
  }

  private settle(b: Branch, abandoned: boolean): void {
    b.done = true;
    if (abandoned) b.abandoned = true;
    if (b.timerC) clearTimeout(b.timerC);
    b.timerC = null;
  }

  private cancelOthers(reason: string): void {
    for (const b of this.branches) {
      if (b.done) continue;
      b.abandoned = true;
      b.handle?.cancel(reason);
      if (!b.provisional) this.settle(b, true);
    }
  }

  private groupTimedOut(): void {
    this.groupTimer = null;
    if (this.finished || this.answered || this.cancelled) return;
    for (const b of this.branches) {
      if (b.done) continue;
      b.abandoned = true;
      b.handle?.cancel();
      if (!b.provisional) this.settle(b, true);
    }
    this.nextGroup();
  }

  /** When no branch is left: the next group, or the best response upstream. */
  private complete(): void {
    if (this.finished || this.redirecting > 0 || this.branches.some((b) => !b.done && !b.abandoned)) return;
    if (!this.cancelled && !this.sixxx && this.group + 1 < this.o.groups.length) {
      this.clearGroupTimer();
      this.nextGroup();
      return;
    }
    if (this.holds > 0 && !this.cancelled && !this.sixxx) return;
    this.finished = true;
    this.clearGroupTimer();
    const best = this.cancelled ? sipError(this.request!, Errors.SIP_ERR_REQUEST_TERMINATED) : this.best(this.request!);
    this.o.respond(best);
    this.o.onFinal?.(best.status);
    this.searchOver();
  }

  /**
   * Once the fork has its answer it only passes further 2xx upstream (RFC 6026), for as long as its branches' client
   * transactions stay in Accepted (Timer M, 32 s): what only the search needed goes, the request, the targets, the
   * finals and the TU's callbacks with the call's accounting (whose strings are slices of the INVITE's header text).
   */
  private searchOver(): void {
    this.request = null;
    this.finals.length = 0;
    this.o.groups = [];
    this.o.onFinal = undefined;
    this.o.redirect = undefined;
  }

  /**
   * Answered: every branch reports to a relay that passes its 2xx upstream (RFC 6026: a 2xx from any branch, for as
   * long as its client transaction is in Accepted) and nothing else, so the fork itself, its branches and options
   * are let go at the answer instead of being held by the branches' transactions for Timer M's 32 s (about a quarter
   * of the ~2.7 KB an answered call held, heap snapshot of bench/calls-hotpath.bench.ts). Nothing else of the search
   * is needed then: the other branches have their CANCEL (a transaction that gets no final after it ends itself,
   * §9.1), so their Timer C goes; a provisional or non-2xx final from them is dropped, as the fork dropped it.
   */
  private handOver(): void {
    const relay = new AcceptedRelay(this.o.respond);
    for (const b of this.branches) {
      if (b.timerC) clearTimeout(b.timerC);
      b.timerC = null;
      b.handle?.handOver?.(relay);
    }
  }

  private best(request: SipRequest): SipResponse {
    if (this.sixxx) return this.sixxx;
    if (this.finals.length === 0) return sipError(request, Errors.SIP_ERR_TIMEOUT);
    const lowest = Math.min(...this.finals.map((r) => Math.floor(r.status / 100)));
    const inClass = this.finals.filter((r) => Math.floor(r.status / 100) === lowest);
    const challenges = inClass.filter((r) => r.status === 401 || r.status === 407);
    if (challenges.length > 0) {
      // §16.7 step 7: one 401/407 carrying every branch's challenges.
      const res = challenges.find((r) => r.status === 407) ?? challenges[0];
      for (const other of challenges) {
        if (other === res) continue;
        for (const v of other.getAll(H.wwwAuthenticate)) res.append('WWW-Authenticate', v);
        for (const v of other.getAll(H.proxyAuthenticate)) res.append('Proxy-Authenticate', v);
      }
      return res;
    }
    const chosen = inClass.find((r) => r.status !== 408 && r.status !== 503) ?? inClass[0];
    if (chosen.status === 503) return sipError(request, Errors.SIP_ERR_INTERNAL, 'every branch unavailable'); // §16.7 step 6
    return chosen;
  }

  private clearGroupTimer(): void {
    if (this.groupTimer) clearTimeout(this.groupTimer);
    this.groupTimer = null;
  }
}

/** §16.6 steps 1-6: the request copied with the target's Request-URI, Max-Forwards one less, Record-Route and Route. */
export function forwardedCopy(req: SipRequest, t: Target): SipRequest {
  const out = new SipRequest(req.method, t.uri);
  for (const v of t.recordRoute) out.append('Record-Route', v);
  for (const v of t.routes) out.append('Route', v);
  for (const h of req.headers) {
    if (h.key === H.maxForwards) out.headers.push({ key: h.key, name: h.name, value: String(Math.max(0, Number(h.value.trim()) - 1)) });
    else out.headers.push({ key: h.key, name: h.name, value: h.value });
  }
  if (!req.has(H.maxForwards)) out.append('Max-Forwards', '69');
  out.body = req.body;
  return out;
}

/**
 * An answered fork's branches' callbacks (Fork.handOver): apart from the fork, so they do not hold it, and a class
 * (one small object a call for Timer M's 32 s, not an object literal and two closures).
 */
class AcceptedRelay implements InviteClientCallbacks {
  private readonly respond: (res: SipResponse) => boolean;

  constructor(respond: (res: SipResponse) => boolean) {
    this.respond = respond;
  }

  onResponse(res: SipResponse): void {
    if (res.status < 200 || res.status >= 300) return;
    popVia(res);
    this.respond(res);
  }

  onFailure(): void {}
}

/** Removes the top Via value (ours) from a response before it goes upstream (§16.7 step 3); the others stay as they came. */
export function popVia(res: SipResponse): void {
  res.removeFirstValue(H.via);
}
