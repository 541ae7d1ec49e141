// One remote messaging account, connected: the narrow seam between the bridge's connector runtime (which takes
// Connection Requests from the bus, opens the sealed credential, keeps state and backoff) and one protocol's
// maintained client library (XMPP: @xmpp/client, IRC: irc-framework). A protocol module knows its wire and nothing
// of the bus, the vault or the inbox; the runtime knows no protocol.

/** What the runtime hands a protocol to connect one linked account. The password is plaintext only here, in memory. */
export interface LinkCredential {
  server: string;      // host or host:port (IRC: host:port; XMPP: the domain, or host:port to bypass SRV)
  address: string;     // the IP address `server`'s host resolved to and the server policy allowed: connect to this
  username: string;    // XMPP: the bare JID's local part or the full JID; IRC: the nick
  password: string;
  options: Record<string, string | number | boolean>; // protocol-specific, bounded and validated by the protocol
}

/** Per linked account state, as mautrix bridges report it. */
export type LinkState =
  | { state: 'connecting' }
  | { state: 'connected' }
  | { state: 'bad_credentials'; reason: string }   // the remote server refused the credential: do not retry
  | { state: 'unreachable'; reason: string }       // network or server failure: retry with backoff
  | { state: 'disconnected'; reason: string };     // closed on purpose (logout, delete) or by the remote

export interface IncomingIm {
  from: string;        // remote address: XMPP bare JID; IRC nick, or "#channel/nick" for a channel message
  body: string;        // text only, bounded by the protocol (MAX_IM_BODY)
  remoteId?: string;   // the remote's message id when the protocol has one (dedup)
}

export interface LinkEvents {
  state(s: LinkState): void;
  message(m: IncomingIm): void;
}

export interface ProtocolLink {
  /** Resolves when connected; rejects (after emitting bad_credentials/unreachable) when it cannot. */
  connect(): Promise<void>;
  /** Sends text to a remote address; resolves when handed to the remote server. */
  send(to: string, body: string): Promise<void>;
  /** Closes the connection; emits `disconnected` once. Idempotent. */
  close(reason: string): Promise<void>;
}

export type ProtocolFactory = (credential: LinkCredential, events: LinkEvents) => ProtocolLink;

/** Bound for one IM body in either direction (bytes of UTF-8), as RFC 3428's MESSAGE over stream transports. */
export const MAX_IM_BODY = 16 * 1024;
