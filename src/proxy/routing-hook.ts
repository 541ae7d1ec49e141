// The routing hook (issue 17): the operator's code decides where a call goes, as a Kamailio route block or a
// Flexisip script would. `--routing-module ./route.js` names a module exporting `route(call)`; embedding code
// registers the same function with `server.onRoute(fn)`. It runs after the caller was authenticated (or admitted by
// --calls-from) and before the default decisions, and returns:
//   'default'                        → the default routing (location lookup, 404/480, outbound proxy, …)
//   { reject: 486, reason?: '…' }    → that final response (300-699)
//   { targets: ['sip:…', …] }        → those URIs rung in parallel (IP addresses only: no DNS on the call path),
//                                      at most MAX_BRANCHES, Record-Routed as any call
// A hook that throws, returns anything else, or takes longer than HOOK_TIMEOUT_MS fails the call with 500 (logged):
// a broken hook must not silently fall back to routing the operator meant to override.

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sbError } from '../errors.ts';
import type { Destination } from '../sip/transport/types.ts';

export interface RouteCall {
  method: string;
  requestUri: string;
  callId: string;
  /** The From and To addresses (user@host), or null when not SIP URIs. */
  from: string | null;
  to: string | null;
  /** The user of a served domain the Request-URI names (user@realm), or null. */
  callee: string | null;
  caller: { authenticated: boolean; identity: string | null; transport: string; address: string; port: number };
  /** A header of the INVITE (first value), for decisions on anything else. */
  header(name: string): string | undefined;
}

export type RouteDecision = 'default' | { reject: number; reason?: string } | { targets: string[] };
export type RouteHook = (call: RouteCall) => RouteDecision | Promise<RouteDecision>;

export const HOOK_TIMEOUT_MS = 5000;

/** Loads `--routing-module`: a module (path relative to the working directory) exporting `route`. */
export async function loadRoutingModule(file: string): Promise<RouteHook> {
  const mod = (await import(pathToFileURL(path.resolve(file)).href)) as { route?: unknown; default?: { route?: unknown } };
  const fn = mod.route ?? mod.default?.route;
  if (typeof fn !== 'function') throw sbError('CONFIG_ERR_INVALID', `--routing-module ${file} does not export a route(call) function`);
  return fn as RouteHook;
}

export type CheckedDecision = { kind: 'default' } | { kind: 'reject'; status: number; reason: string | undefined } | { kind: 'targets'; targets: Array<{ uri: string; dest: Destination }> };

/** Runs the hooks in order (the first decision other than 'default' wins), each bounded in time, and checks it. */
export async function decide(
  hooks: RouteHook[],
  call: RouteCall,
  toDestination: (uri: string) => Destination | null,
  maxTargets: number,
): Promise<CheckedDecision> {
  for (const hook of hooks) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the routing hook did not answer within ${HOOK_TIMEOUT_MS} ms`)), HOOK_TIMEOUT_MS);
    });
    let d: unknown;
    try {
      d = await Promise.race([Promise.resolve().then(() => hook(call)), timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (d === 'default') continue;
    if (d && typeof d === 'object' && 'reject' in d) {
      const { reject, reason } = d as { reject: unknown; reason?: unknown };
      if (typeof reject !== 'number' || !Number.isInteger(reject) || reject < 300 || reject > 699) throw new Error(`the routing hook rejected with ${String(reject)}: not a final status 300-699`);
      return { kind: 'reject', status: reject, reason: typeof reason === 'string' ? reason.replace(/[\r\n]+/g, ' ').slice(0, 120) : undefined };
    }
    if (d && typeof d === 'object' && 'targets' in d && Array.isArray((d as { targets: unknown }).targets)) {
      const list = (d as { targets: unknown[] }).targets;
      if (list.length === 0 || list.length > maxTargets) throw new Error(`the routing hook returned ${list.length} targets (1 to ${maxTargets})`);
      const targets = list.map((uri) => {
        const dest = typeof uri === 'string' ? toDestination(uri) : null;
        if (!dest) throw new Error(`the routing hook returned ${JSON.stringify(uri)}: not a SIP URI with an IP address`);
        return { uri: uri as string, dest };
      });
      return { kind: 'targets', targets };
    }
    throw new Error(`the routing hook returned ${JSON.stringify(d)}: expected 'default', { reject } or { targets }`);
  }
  return { kind: 'default' };
}
