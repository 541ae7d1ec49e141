// The protocols a connector can speak: type → ProtocolFactory (protocol.ts). Each protocol module adds itself here
// and nothing else knows it by name; the connector runtime looks types up and knows no protocol.

import type { LinkType } from '../storage/ports/bridge.ts';
import type { ProtocolFactory } from './protocol.ts';
import { ircLink } from './protocols/irc.ts';
import { sipLink } from './protocols/sip.ts';
import { xmppLink } from './protocols/xmpp.ts';

export type ProtocolRegistry = ReadonlyMap<LinkType, ProtocolFactory>;

export const PROTOCOLS: ProtocolRegistry = new Map<LinkType, ProtocolFactory>([
  ['xmpp', xmppLink],
  ['irc', ircLink],
  ['sip', sipLink],
]);
