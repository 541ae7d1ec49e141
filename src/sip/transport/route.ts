// Where requests' Vias are stamped on arrival (RFC 3261 §18.2.1, RFC 3581) and where responses go
// (RFC 3261 §18.2.2).

import { H } from '../message/header-names.ts';
import type { SipMessage } from '../message/message.ts';
import { splitComma } from '../message/grammar.ts';
import { defaultPort, formatVia, type Via } from '../message/via.ts';
import { isReliable, type Destination, type Source } from './types.ts';

/** Host text of a Via sent-by compared with a source address (IPv6 references carry brackets). */
function sameHost(viaHost: string, address: string): boolean {
  if (viaHost.charCodeAt(0) === 91) return viaHost.slice(1, -1).toLowerCase() === address.toLowerCase();
  return viaHost === address;
}

/**
 * Adds `received` when the sent-by host is not the source address, and fills in `rport` when the client asked
 * for it, rewriting the first value of the first Via line. Returns the updated top Via.
 */
export function stampVia(msg: SipMessage, source: Source): Via | null {
  const via = msg.topVia();
  if (!via) return null;
  // A received the client wrote itself is replaced (or dropped): responses go where the packet came from, not
  // where the client says.
  const claimed = via.params.get('received');
  const needReceived = !sameHost(via.host, source.address);
  const wantsRport = via.params.has('rport') && via.params.get('rport') === null;
  const fixClaim = claimed !== undefined && (needReceived ? claimed !== source.address : true);
  if (!needReceived && !wantsRport && !fixClaim) return via;
  // Parsed parameters are read-only (an empty list is the shared EMPTY_PARAMS): the stamped ones are a copy, in the
  // same order, a changed value keeping its place.
  const params = new Map(via.params);
  if (needReceived) params.set('received', source.address);
  else if (claimed !== undefined) params.delete('received');
  if (wantsRport) params.set('rport', String(source.port));
  via.params = params;
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    if (hs[i].key !== H.via) continue;
    const v = hs[i].value;
    if (v.indexOf(',') < 0) hs[i].value = formatVia(via);
    else {
      const parts = splitComma(v);
      parts[0] = formatVia(via);
      hs[i].value = parts.join(', ');
    }
    break;
  }
  return via;
}

/**
 * §18.2.2: reliable transports answer on the connection the request came in on (or a new one to the
 * received address and sent-by port); unreliable ones go to received + rport/sent-by port.
 * `forceRport` answers to the source address and port whatever the Via says (NAT'd clients that forget rport).
 *
 * The address is always the packet's source (stampVia made `received` equal to it), never a name from the Via:
 * resolving names here would let a peer make us query DNS and answer wherever the name points. So `maddr` (§18.2.2's
 * multicast case) is ignored: honoured, it let anyone aim our responses (a 401 is several times the size of the
 * REGISTER that asked for it) at a third party without spoofing; when it names the source it changes nothing.
 */
export function responseDestination(via: Via, source: Source, forceRport: boolean): Destination {
  const transport = source.transport;
  if (isReliable(transport)) {
    return {
      transport,
      connectionId: source.connectionId,
      address: source.address,
      port: via.port ?? defaultPort(via.transport),
    };
  }
  if (forceRport) return { transport, address: source.address, port: source.port };
  const rport = via.params.get('rport');
  const port = rport ? Number(rport) : (via.port ?? defaultPort(via.transport));
  return { transport, address: source.address, port };
}
