// A routing module: `switchboard start --routing-module examples/route.js`. Switchboard asks route(call) for every
// new call once the caller is authenticated (or admitted by --calls-from), before its default routing; see
// src/proxy/routing-hook.ts for what `call` holds. Return 'default', { reject, reason } or { targets }.
// Targets are SIP URIs with IP addresses (no DNS on the call path), rung in parallel and Record-Routed.

const SUPPORT_DESKS = ['sip:desk1@192.0.2.21:5060', 'sip:desk2@192.0.2.22:5060'];
const VOICEMAIL = 'sip:voicemail@192.0.2.30:5060';

export function route(call) {
  // A hunt group: support@ rings every desk phone at once.
  if (call.callee === 'support@example.com') return { targets: SUPPORT_DESKS };
  // Only our own, authenticated users may call the operators' line.
  if (call.callee === 'noc@example.com' && !call.caller.authenticated) return { reject: 403, reason: 'Internal line' };
  // Out of office hours the front desk goes to voicemail.
  const hour = new Date().getHours();
  if (call.callee === 'reception@example.com' && (hour < 8 || hour >= 18)) return { targets: [VOICEMAIL] };
  return 'default';
}
