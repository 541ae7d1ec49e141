// check-sync: the out-of-dialog NOTIFY that asks a phone to fetch its configuration again (and, depending on the
// phone and its settings, to reboot). Not an RFC event package but the de-facto one: Polycom, Yealink, Cisco,
// Grandstream and Snom phones honour it; Kazoo, Kamailio and Asterisk send it. The operator asks for it over HTTP
// (POST /v1/registrations/{aor}/check-sync); every live binding of the AOR gets one, over the flow its REGISTER came
// in on, through the node holding that connection when it is another node's (sip/flow-relay.ts).
//
// The request, as Asterisk's sip_notify check-sync and Kamailio's examples build it: Request-URI the registered
// contact, Route from the binding's Path (RFC 3327: the registrar's route set towards the phone, outermost first),
// From and To the AOR (a fresh From tag, no To tag), a fresh Call-ID, CSeq 1, our Contact, `Event: check-sync`, no
// body. No Subscription-State: there is no subscription, and phones do not look for one on this event.

import { randomBytes } from 'node:crypto';
import { Errors, isSwitchboardError, sbError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { H } from '../sip/message/header-names.ts';
import { newTag } from '../sip/message/response.ts';
import { SipRequest, type SipResponse } from '../sip/message/message.ts';
import type { TransportName } from '../sip/transport/types.ts';
import { ownContact } from '../sip/uas-checks.ts';
import type { BindingRecord } from '../storage/ports.ts';

export interface CheckSyncLocal {
  /** Our Contact header value (name-addr), e.g. `<sip:10.0.0.1:5060;transport=tcp>`. */
  contact: string;
  /** Call-ID and From tag; fresh ones by default. */
  callId?: string;
  fromTag?: string;
}

/** The AOR as a SIP URI: `sip:user@domain`, with characters a user part may not hold escaped (RFC 3261 §25.1). */
export function aorUri(aor: string): string {
  const at = aor.lastIndexOf('@');
  if (at < 0) return `sip:${aor}`;
  const user = aor.slice(0, at).replace(/[^A-Za-z0-9\-_.!~*'()&=+$,;?/]/g, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''),
  );
  return `sip:${user}@${aor.slice(at + 1)}`;
}

/** The check-sync NOTIFY for one binding (without Via and Max-Forwards: the endpoint adds them). */
export function buildCheckSyncNotify(b: BindingRecord, local: CheckSyncLocal): SipRequest {
  const uri = aorUri(b.aor);
  const req = new SipRequest('NOTIFY', b.contact);
  const hs = req.headers;
  for (const route of b.path) hs.push({ key: H.route, name: 'Route', value: route });
  hs.push({ key: H.from, name: 'From', value: `<${uri}>;tag=${local.fromTag ?? newTag()}` });
  hs.push({ key: H.to, name: 'To', value: `<${uri}>` });
  hs.push({ key: H.callId, name: 'Call-ID', value: local.callId ?? `${randomBytes(12).toString('hex')}@check-sync` });
  hs.push({ key: H.cseq, name: 'CSeq', value: '1 NOTIFY' });
  hs.push({ key: H.contact, name: 'Contact', value: local.contact });
  hs.push({ key: H.event, name: 'Event', value: 'check-sync' });
  return req;
}

/** The flow a binding's requests go over: the connection (or address) its REGISTER arrived on, on its node. */
export function bindingFlow(b: BindingRecord): { node: string; transport: string; address: string; port: number; connectionId: number | null } {
  return { node: b.node, transport: b.transport, address: b.sourceAddress, port: b.sourcePort, connectionId: b.connectionId };
}

interface CheckSyncBinding {
  key: string;
  contact: string;
  transport: string;
  node: string;
}

export type CheckSyncResult = CheckSyncBinding & ({ status: number; reason: string } | { error: { code: string; message: string } });

export interface CheckSyncReport {
  aor: string;
  results: CheckSyncResult[];
}

export interface CheckSyncOptions {
  location: { lookup(aor: string): BindingRecord[] | Promise<BindingRecord[]> };
  /** Sends over a flow, through its node when it is another's (FlowRelay). */
  relay: { send(req: SipRequest, flow: ReturnType<typeof bindingFlow>): Promise<SipResponse> };
  /** Where this node is reached over a transport (the endpoint's localAddress), for our Contact. */
  localAddress: (transport: TransportName) => { host: string; port: number } | null;
  log: Logger;
}

/** user@Domain → user@domain, as the location service keys AORs. */
function normalizeAor(aor: string): string {
  const at = aor.lastIndexOf('@');
  return at < 0 ? aor.toLowerCase() : aor.slice(0, at + 1) + aor.slice(at + 1).toLowerCase();
}

/**
 * check-sync for an AOR: one NOTIFY per live binding, all at once; resolves when every one has its final response
 * or failed (REG_ERR_NOT_REGISTERED when the AOR has no live binding).
 */
export function checkSyncService(o: CheckSyncOptions): (aor: string) => Promise<CheckSyncReport> {
  const contactOf = (transport: string): string => ownContact(transport as TransportName, o.localAddress(transport as TransportName));
  return async (input: string) => {
    const aor = normalizeAor(input);
    const bindings = await o.location.lookup(aor);
    if (bindings.length === 0) throw sbError('REG_ERR_NOT_REGISTERED', `${aor} has no live bindings`);
    const results = await Promise.all(
      bindings.map(async (b): Promise<CheckSyncResult> => {
        const base = { key: b.key, contact: b.contact, transport: b.transport, node: b.node };
        try {
          const res = await o.relay.send(buildCheckSyncNotify(b, { contact: contactOf(b.transport) }), bindingFlow(b));
          return { ...base, status: res.status, reason: res.reason };
        } catch (e) {
          // Catalogue codes only: anything else the send threw is a transport failure, its message kept.
          const code = isSwitchboardError(e) ? e.code : Errors.SIP_ERR_TRANSPORT.code;
          return { ...base, error: { code, message: e instanceof Error ? e.message : String(e) } };
        }
      }),
    );
    o.log.info(
      { aor, bindings: results.length, outcomes: results.map((r) => ('status' in r ? r.status : r.error.code)) },
      'check-sync sent',
    );
    return { aor, results };
  };
}
