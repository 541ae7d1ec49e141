// The bridge's messages on the bus, between the app nodes (bridge/links.ts) and the connectors (bridge/connector.ts).
// Every topic here is MAC'd between nodes (bus/internal-auth.ts INTERNAL_TOPICS: bridge.#, message.incoming,
// message.outgoing.*). Nothing here carries a password or the Secret: a credential travels only sealed to one
// connector's key (sealed-box.ts), its AAD naming that connector and the linked account.
//
//   bridge.connector.hello        connector → all   {connector, types, publicKey, stayKeys, node}  every HELLO_MS
//   bridge.connector.bye          connector → all   {connector}                                    on a clean stop
//   bridge.connector.discover     app → connectors  {node}: an app node started; connectors say hello now
//   bridge.connect.<connector>    app → connector   ConnectRequest
//   bridge.disconnect.<connector> app → connector   {linkedAccountId, reason}
//   bridge.state                  connector → apps  StateReport
//   message.incoming              connector → apps  IncomingReport (group: one app node stores it)
//   message.outgoing.<connector>  app → connector   OutgoingRequest
//   bridge.delivery               connector → apps  DeliveryReport
//   node.departed                 registrar → all   {node}: a node's heartbeat lapsed (registrar/node-membership.ts);
//                                 connectors drop the links that node's sessions held up (ConnectRequest.owner)

import type { LinkStateName, LinkType } from '../storage/ports/bridge.ts';

export const HELLO_MS = 5_000;
/** A connector not heard from for this long is gone: its links are free for another (or said to be down). */
export const CONNECTOR_DEAD_MS = 3 * HELLO_MS;

export const TOPIC = {
  hello: 'bridge.connector.hello',
  bye: 'bridge.connector.bye',
  discover: 'bridge.connector.discover',
  connect: (connector: string) => `bridge.connect.${connector}`,
  disconnect: (connector: string) => `bridge.disconnect.${connector}`,
  state: 'bridge.state',
  /** A state report once recorded (links.ts recordState): what the app nodes forward to the streams. */
  stateRecorded: 'bridge.recorded',
  incoming: 'message.incoming',
  outgoing: (connector: string) => `message.outgoing.${connector}`,
  delivery: 'bridge.delivery',
  nodeDeparted: 'node.departed',
} as const;

/** The reason a link gets when the app node whose session held it up is gone. */
export const OWNER_LOST = 'session node lost';

/** A connector id: one topic word (bus/event-bus.ts topicWord leaves it as it is). */
export const CONNECTOR_ID = /^[A-Za-z0-9_-]{8,64}$/;

export interface Hello {
  connector: string;
  types: LinkType[];
  /** This process's X25519 key (raw, base64url): session-time requests are sealed to it. */
  publicKey: string;
  /** Per type, the connectors' shared stay-connected key (derived from the master key): stay copies are sealed to it. */
  stayKeys: Partial<Record<LinkType, string>>;
  node: string;
}

export interface ConnectRequest {
  linkedAccountId: string;
  accountId: string;
  type: LinkType;
  server: string;
  username: string;
  options: Record<string, string | number | boolean>;
  /** The remote password sealed to the connector: its own key ('session') or its type's stay key ('stay'). */
  sealed: string;
  via: 'session' | 'stay';
  /**
   * The app node whose session keeps the link up (it holds the Secret and sees the session end): when that node
   * departs, the connector drops the link. Absent for stay-connected links: any node keeps those up.
   */
  owner?: string;
}

export interface StateReport {
  connector: string;
  linkedAccountId: string;
  accountId: string;
  state: LinkStateName;
  reason: string | null;
  at: number;
}

export interface IncomingReport {
  connector: string;
  linkedAccountId: string;
  accountId: string;
  from: string;
  body: string;
  remoteId: string | null;
}

export interface OutgoingRequest {
  id: string;
  linkedAccountId: string;
  accountId: string;
  to: string;
  body: string;
}

export interface DeliveryReport {
  id: string;
  linkedAccountId: string;
  accountId: string;
  status: 'sent' | 'failed';
  reason: string | null;
}

/** What a sealed credential is bound to (its AAD). */
export const sessionBoxAad = (connector: string, r: { linkedAccountId: string; accountId: string }) => `bridge connect\n${connector}\n${r.accountId}\n${r.linkedAccountId}`;
export const stayBoxAad = (type: LinkType, r: { linkedAccountId: string; accountId: string }) => `bridge stay\n${type}\n${r.accountId}\n${r.linkedAccountId}`;
/** The purpose (secrets.ts deriveKey) of a type's stay-connected key seed. */
export const stayKeyPurpose = (type: LinkType) => `bridge-stay-connected ${type}`;

const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

export const LINK_STATES: readonly LinkStateName[] = ['connecting', 'connected', 'bad_credentials', 'unreachable', 'disconnected'];
export const LINK_TYPES: readonly LinkType[] = ['xmpp', 'irc', 'sip'];

/** Shape checks of what arrives (MAC'd, but a bug in one node must not crash another). */
export function asConnectRequest(p: Record<string, unknown>): ConnectRequest | null {
  if (!str(p.linkedAccountId, 64) || !str(p.accountId, 64) || !LINK_TYPES.includes(p.type as LinkType) || !str(p.server, 255) || !str(p.username, 255)) return null;
  if (!str(p.sealed, 4096) || (p.via !== 'session' && p.via !== 'stay') || typeof p.options !== 'object' || p.options === null) return null;
  if (p.owner !== undefined && !str(p.owner, 255)) return null;
  return p as unknown as ConnectRequest;
}

export function asStateReport(p: Record<string, unknown>): StateReport | null {
  if (!str(p.connector, 64) || !str(p.linkedAccountId, 64) || !str(p.accountId, 64) || !LINK_STATES.includes(p.state as LinkStateName)) return null;
  if (p.reason !== null && typeof p.reason !== 'string') return null;
  return { ...(p as unknown as StateReport), reason: typeof p.reason === 'string' ? p.reason.slice(0, 200) : null };
}

export function asIncoming(p: Record<string, unknown>, maxBody: number): IncomingReport | null {
  if (!str(p.connector, 64) || !str(p.linkedAccountId, 64) || !str(p.accountId, 64) || !str(p.from, 300) || typeof p.body !== 'string' || Buffer.byteLength(p.body) > maxBody) return null;
  return { ...(p as unknown as IncomingReport), remoteId: typeof p.remoteId === 'string' ? p.remoteId.slice(0, 64) : null };
}

export function asOutgoing(p: Record<string, unknown>, maxBody: number): OutgoingRequest | null {
  if (!str(p.id, 64) || !str(p.linkedAccountId, 64) || !str(p.accountId, 64) || !str(p.to, 300) || typeof p.body !== 'string' || Buffer.byteLength(p.body) > maxBody) return null;
  return p as unknown as OutgoingRequest;
}

export function asDelivery(p: Record<string, unknown>): DeliveryReport | null {
  if (!str(p.id, 64) || !str(p.linkedAccountId, 64) || !str(p.accountId, 64) || (p.status !== 'sent' && p.status !== 'failed')) return null;
  return { ...(p as unknown as DeliveryReport), reason: typeof p.reason === 'string' ? p.reason.slice(0, 200) : null };
}

export function asHello(p: Record<string, unknown>): Hello | null {
  if (!str(p.connector, 64) || !CONNECTOR_ID.test(p.connector) || !Array.isArray(p.types) || !str(p.publicKey, 64)) return null;
  if (!p.types.every((t) => LINK_TYPES.includes(t as LinkType)) || typeof p.stayKeys !== 'object' || p.stayKeys === null) return null;
  return p as unknown as Hello;
}
