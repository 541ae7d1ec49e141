// One typed configuration, from defaults < JSON file (--config / SWITCHBOARD_CONFIG) < environment < flags.
// Every option is declared once in OPTIONS below; the README's configuration table and `switchboard help`
// are generated from it, so documentation cannot drift from behaviour.
// Over 400 lines on purpose: OPTIONS is one table of every option (one line each, as the README's table), and
// splitting it by room would scatter the single source the README and its test read.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { TLS_INTERMEDIATE_CIPHERS } from './certificates.ts';
import { sbError } from './errors.ts';
import { limiterDefaultSpecs, parseBucketSpec, parseLimiterSpecs } from './identity/rate-limiter.ts';
import { jwksUrlProblem } from './identity/tokens.ts';
import { NetworkSet } from './sip/transport/networks.ts';

export type DigestAlgorithm = 'MD5' | 'SHA-256' | 'SHA-512-256';

export interface Config {
  dataDir: string;
  /** What an existing secret file (master.key, the SQLite files) readable by other users gets at start. */
  fileModeCheck: 'refuse' | 'warn';
  realms: string[];
  logLevel: string;
  sip: {
    hosts: string[];
    port: number;
    transports: Array<'UDP' | 'TCP' | 'TLS' | 'WS' | 'WSS'>;
    tlsPort: number;
    wsPort: number;
    wssPort: number;
    maxMessageSize: number;
    tcpIdleTimeout: number;
    tcpMaxConnections: number;
    maxConnectionsPerAddress: number;
    tcpMessageTimeout: number;
    firstMessageTimeout: number;
    forceRport: boolean;
    advertisedHost: string | null;
    serverHeader: string | null;
    trustedProxies: string[];
  };
  http: { host: string; port: number; loginRateLimit: number; trustProxy: string[]; requestTimeout: number; headersTimeout: number; keepAliveTimeout: number };
  metrics: {
    /** host:port of a listener of its own serving only /metrics, or null (served on the HTTP port). */
    listen: string | null;
    /** CIDRs that may scrape /metrics without credentials. */
    openTo: string[];
  };
  tls: { cert: string | null; key: string | null; verifyPeers: boolean; ciphers: string };
  tokens: {
    issuer: string;
    audience: string;
    algorithm: 'EdDSA' | 'ES256';
    accessTtl: number;
    refreshTtl: number;
    jwksUrl: string | null;
    jwksCooldown: number;
    jwksUsernameClaim: string | null;
    jwksRealm: string | null;
    jwksRealmClaim: string | null;
    jwksRolesClaim: string;
    jwksRoleMap: string[];
    sipBearer: 'off' | 'accept' | 'offer';
  };
  passwords: { argon2MemoryKiB: number; argon2Passes: number };
  registrar: {
    defaultExpires: number;
    minExpires: number;
    maxExpires: number;
    maxContacts: number;
    maxContactsPolicy: 'reject' | 'evict-oldest';
    expirySpread: number;
  };
  digest: {
    algorithms: DigestAlgorithm[];
    nonceTtl: number;
    /** Offer challenges without qop too (RFC 2069 clients); nonces are then single-use. */
    allowNoQop: boolean;
  };
  auth: {
    accountFailures: number;
    addressFailures: number;
    failureWindow: number;
    lockoutDuration: number;
    trustedNetworks: string[];
    accountAddressFailures: number;
    knownAddressTtl: number;
    challengeBurst: number;
    challengeRate: number;
  };
  storage: {
    durability: 'os' | 'fsync';
    credentialCacheTtl: number;
    credentialCacheBytes: number;
    /** 'sqlite' (the file in dataDir) or a postgres:// URL. */
    database: string;
    databaseSchema: string;
    /** 'memory' (in-process) or a redis:// URL. */
    cache: string;
    cachePrefix: string;
  };
  cluster: {
    /** This process's node name (default: the host name; workers add -w<n>). */
    nodeId: string | null;
    /** Processes sharing the SIP ports on this host: a number, or 'auto' for one per core. */
    workers: string;
    /** Seconds between heartbeats of a node on a shared index; silent for four, it is taken for gone. */
    heartbeat: number;
  };
  bus: {
    /** 'memory' (in-process) or an AMQP URL. */
    url: string;
    outboxLimit: number;
    authenticate: boolean;
  };
  kazoo: {
    directory: 'on' | 'off';
    foreignRegistrations: 'on' | 'off' | 'all';
    node: string | null;
    expiresDeviation: number;
  };
  /** The call proxy (src/proxy/): who may call, where calls out of our domains and to unregistered users go. */
  calls: {
    from: string;
    outboundProxy: string | null;
    fallbackUri: string | null;
    serialTimeout: number;
    /** Seconds a forked MESSAGE (non-INVITE) waits for a 2xx from one q group's devices. */
    nonInviteTimeout: number;
    presencePolicy: 'off' | 'busy-to-fallback';
    routingModule: string | null;
    /** 3xx from a branch: its Contacts rung (bounded, no loops, by the same rules as a new call's targets), or returned. */
    followRedirects: boolean;
  };
  presence: {
    defaultExpires: number;
    minExpires: number;
    maxExpires: number;
    /** Derived tuples carry the binding's contact (the device's address). */
    derivedContacts: boolean;
    /** SUBSCRIBEs per watcher: size/seconds-per-permit, or off. */
    subscribeRate: string;
  };
  messaging: {
    /** Seconds a stored message waits for its recipient. */
    ttl: number;
    /** Undelivered messages per account. */
    quota: number;
    /** Largest message body, bytes. */
    maxBody: number;
    /** POST /v1/messages per minute per address (0: no limit). */
    rateLimit: number;
    /** SIP MESSAGE token buckets (size/seconds-per-permit, or off): per authenticated sender, per source address. */
    sipSenderRate: string;
    sipSourceRate: string;
    /** App session lifetime, and the old key's overlap after a rollover, seconds. */
    sessionTtl: number;
    sessionOverlap: number;
    /** Seconds between expiry sweeps of messages and sessions (0: none). */
    sweepInterval: number;
  };
  bridge: {
    /** Link types this process's own connector serves (empty: none here; `switchboard connector` runs them). */
    connectors: string[];
    /** Linked accounts per account. */
    maxLinked: number;
    /** CIDRs or host names a linked account may name although loopback/private/link-local/own (bridge/server-policy.ts). */
    allowServers: string[];
    /** CIDRs or host names no linked account may name. */
    denyServers: string[];
  };
  push: {
    fcmServiceAccount: string | null;
    fcmUrl: string;
    apnsKeyFile: string | null;
    apnsKeyId: string | null;
    apnsTeamId: string | null;
    apnsTopic: string | null;
    apnsUrl: string;
    webpush: boolean;
    webpushSubject: string | null;
    webpushHosts: string[];
    /** RFC 8599 +sip.pnsreg: seconds before expiry a push-registered device should re-register. */
    pnsreg: number;
    /** Fork late: seconds an INVITE waits for a pushed device to register again (0: no fork late). */
    forkLateTimeout: number;
    /** The same for a MESSAGE, before it is stored (202). */
    forkLateMessageTimeout: number;
  };
  phone: {
    codeProvider: 'local' | 'twilio';
    codeFile: string | null;
    twilioUrl: string;
    twilioAccountSid: string | null;
    twilioAuthToken: string | null;
    twilioFrom: string | null;
    captchaUrl: string | null;
    captchaSecret: string | null;
    captchaSiteKey: string | null;
    providerTimeout: number;
    smsPacing: number[];
    voicePacing: number[];
    checkPacing: number[];
    rateLimits: string[];
    maxDevices: number;
    sweepInterval: number;
  };
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'enum';

interface Option {
  /** Dotted path into Config. */
  path: string;
  flag: string;
  env: string;
  kind: Kind;
  values?: readonly string[];
  default: unknown;
  doc: string;
}

const O = (path: string, flag: string, kind: Kind, def: unknown, doc: string, values?: readonly string[]): Option => ({
  path,
  flag,
  env: 'SWITCHBOARD_' + flag.replace(/-/g, '_').toUpperCase(),
  kind,
  values,
  default: def,
  doc,
});

export const OPTIONS: Option[] = [
  O('dataDir', 'data-dir', 'string', './data', 'Directory for the SQLite database and generated secrets.'),
  O('fileModeCheck', 'file-mode-check', 'enum', 'refuse', 'An existing master.key or SQLite file that other users may read (or a data directory they may write): refuse to start, or warn. New ones are created 0600 in a 0700 directory.', ['refuse', 'warn']),
  O('realms', 'realm', 'list', ['localhost'], 'Domains (realms) served; repeat the flag or comma-separate. The first is the default realm.'),
  O('logLevel', 'log-level', 'enum', 'info', 'Log level.', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  O('sip.hosts', 'sip-host', 'list', ['0.0.0.0'], 'Addresses to listen on for SIP (IPv4 and/or IPv6, e.g. 0.0.0.0,::).'),
  O('sip.port', 'sip-port', 'int', 5060, 'SIP port for UDP and TCP.'),
  O('sip.transports', 'sip-transports', 'list', ['UDP', 'TCP', 'TLS', 'WS', 'WSS'], 'SIP transports to listen on (UDP, TCP, TLS, WS, WSS).'),
  O('sip.tlsPort', 'sip-tls-port', 'int', 5061, 'SIP over TLS port.'),
  O('sip.wsPort', 'sip-ws-port', 'int', 8088, 'SIP over WebSocket port (RFC 7118).'),
  O('sip.wssPort', 'sip-wss-port', 'int', 8089, 'SIP over secure WebSocket port.'),
  O('tls.cert', 'tls-cert', 'string', null, 'PEM certificate (chain) for TLS and WSS; without it a self-signed one is generated in <data-dir>/tls for local use.'),
  O('tls.key', 'tls-key', 'string', null, 'PEM private key for --tls-cert.'),
  O('tls.verifyPeers', 'tls-verify-peers', 'bool', true, 'Verify certificates on TLS connections Switchboard opens itself.'),
  O('tls.ciphers', 'tls-ciphers', 'string', TLS_INTERMEDIATE_CIPHERS, "OpenSSL cipher list for SIP over TLS and WSS (TLS 1.2 and 1.3 suites); the default is Mozilla's intermediate profile, AEAD suites only. Renegotiation is always refused."),
  O('sip.maxMessageSize', 'sip-max-message-size', 'int', 65535, 'Largest SIP message accepted, in bytes (larger: dropped on UDP, 513 and close on TCP).'),
  O('sip.tcpIdleTimeout', 'sip-tcp-idle-timeout', 'int', 600, 'Seconds before a TCP, TLS or WebSocket connection that carried no SIP message (keepalives and pongs do not count) and has no binding on it is closed.'),
  O('sip.tcpMaxConnections', 'sip-tcp-max-connections', 'int', 100000, 'Most simultaneous TCP connections.'),
  O('sip.maxConnectionsPerAddress', 'sip-max-connections-per-address', 'int', 100, 'Most inbound TCP, TLS, WS and WSS connections one address (IPv6: one /64) may hold at once, per process; beyond it new ones are closed at once. --auth-trusted-networks and --sip-trusted-proxies are exempt (0: no cap).'),
  O('sip.tcpMessageTimeout', 'sip-tcp-message-timeout', 'int', 20, 'Seconds a TCP/TLS message may take to arrive whole once its first byte has (Kamailio tcp_msg_read_timeout); then the connection is closed.'),
  O('sip.firstMessageTimeout', 'sip-first-message-timeout', 'int', 10, 'Seconds a new TCP, TLS, WS or WSS connection has for its handshakes and its first SIP message; then it is closed.'),
  O('sip.forceRport', 'sip-force-rport', 'bool', false, 'Answer UDP requests at their source address and port even without rport (NAT).'),
  O('sip.advertisedHost', 'sip-advertised-host', 'string', null, 'Host to put in Via/Contact of requests Switchboard sends (default: the listening address).'),
  O('sip.serverHeader', 'sip-server-header', 'string', 'Switchboard', 'Server header on responses (empty to omit).'),
  O('sip.trustedProxies', 'sip-trusted-proxies', 'list', [], 'CIDRs of edge proxies (e.g. Kamailio with the path module) whose Path headers are stored with a registration; Path from anyone else is ignored.'),
  O('http.host', 'http-host', 'string', '0.0.0.0', 'HTTP listen address.'),
  O('http.port', 'http-port', 'int', 8080, 'HTTP port (health, metrics, APIs).'),
  O('metrics.openTo', 'metrics-open-to', 'list', ['127.0.0.0/8', '::1/128'], 'Source networks (CIDRs) that may scrape /metrics without credentials; from anywhere else it needs a Bearer token of an admin or an API key with metrics.read (401 without). 0.0.0.0/0,::/0 opens it to all; none: credentials always.'),
  O('metrics.listen', 'metrics-listen', 'string', null, 'host:port of a listener of its own for /metrics (a management network), where --metrics-open-to applies; the HTTP port then serves /metrics with credentials only (the admin console).'),
  O('http.requestTimeout', 'http-request-timeout', 'int', 30, 'Seconds an HTTP request may take to arrive whole, body included (0: no limit); then 408 and close.'),
  O('http.headersTimeout', 'http-headers-timeout', 'int', 10, 'Seconds an HTTP connection has to send a complete request head; then 408 and close.'),
  O('http.keepAliveTimeout', 'http-keep-alive-timeout', 'int', 72, 'Seconds an idle keep-alive HTTP connection stays open (above a load balancer\'s idle timeout, as Fastify\'s default).'),
  O('http.loginRateLimit', 'login-rate-limit', 'int', 60, 'Login and refresh requests per minute per address (0: unlimited); beyond it 429.'),
  O('http.trustProxy', 'http-trust-proxy', 'list', [], 'Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed (default none: the header is ignored and the peer address counts).'),
  O('tokens.issuer', 'jwt-issuer', 'string', 'switchboard', 'iss of the access tokens we issue, and required of the ones we accept.'),
  O('tokens.audience', 'jwt-audience', 'string', 'switchboard', 'aud of the access tokens we issue, and required of the ones we accept.'),
  O('tokens.algorithm', 'jwt-algorithm', 'enum', 'EdDSA', 'Signature algorithm of access tokens (keys are generated and rotated by Switchboard).', ['EdDSA', 'ES256']),
  O('tokens.accessTtl', 'access-token-ttl', 'int', 900, 'Access token lifetime in seconds.'),
  O('tokens.refreshTtl', 'refresh-token-ttl', 'int', 2_592_000, 'Refresh token lifetime in seconds (rotated on every use).'),
  O('tokens.jwksUrl', 'jwks-url', 'string', null, 'Verify Bearer tokens against this remote JWKS (another issuer) instead of our own keys: https (plain http only on loopback); needs --jwks-username-claim and --jwks-realm or --jwks-realm-claim.'),
  O('tokens.jwksCooldown', 'jwks-cooldown', 'int', 30, 'Least seconds between key reloads caused by tokens naming an unknown kid (re-fetches of the remote JWKS, or re-reads of our own keys from the store).'),
  O('tokens.jwksUsernameClaim', 'jwks-username-claim', 'string', null, 'With --jwks-url (required): the claim of the remote tokens that holds the user name (e.g. preferred_username).'),
  O('tokens.jwksRealm', 'jwks-realm', 'string', null, 'With --jwks-url: the realm of every remote token (one of --realm); or set --jwks-realm-claim.'),
  O('tokens.jwksRealmClaim', 'jwks-realm-claim', 'string', null, 'With --jwks-url: the claim of the remote tokens naming their realm (must be one of --realm); or set --jwks-realm.'),
  O('tokens.jwksRolesClaim', 'jwks-roles-claim', 'string', 'roles', 'With --jwks-url: the claim holding the issuer\'s roles, a dotted path (Keycloak: realm_access.roles).'),
  O('tokens.jwksRoleMap', 'jwks-role-map', 'list', [], 'With --jwks-url: their role names to ours, theirs=ours (e.g. sb-admins=admin); unmapped roles are ignored.'),
  // Not offered by default: libre-based clients (baresip) refuse a 401 carrying any challenge but Digest MD5
  // (docs/digest-clients.md); clients that use tokens send them without being asked.
  O('tokens.sipBearer', 'sip-bearer', 'enum', 'accept', 'Authorization: Bearer on SIP (RFC 8898): off, accept (tokens work, 401s offer only Digest), or offer (401s add a Bearer challenge).', ['off', 'accept', 'offer']),
  O('passwords.argon2MemoryKiB', 'argon2-memory', 'int', 19_456, 'argon2id memory cost in KiB for HTTP passwords (OWASP minimum: 19456).'),
  O('passwords.argon2Passes', 'argon2-passes', 'int', 2, 'argon2id passes (time cost).'),
  O('registrar.defaultExpires', 'default-expires', 'int', 3600, 'Binding lifetime when the REGISTER names none, in seconds.'),
  O('registrar.minExpires', 'min-expires', 'int', 60, 'Shortest lifetime accepted; shorter gets 423 with Min-Expires.'),
  O('registrar.maxExpires', 'max-expires', 'int', 7200, 'Longest lifetime granted; longer is lowered to this.'),
  O('registrar.maxContacts', 'max-contacts', 'int', 10, 'Most bindings per address of record (0: unlimited).'),
  O('registrar.maxContactsPolicy', 'max-contacts-policy', 'enum', 'reject', 'What a REGISTER over the limit gets: reject (403) or evict-oldest.', ['reject', 'evict-oldest']),
  O('registrar.expirySpread', 'expiry-spread', 'int', 0, 'Percent (0-20) by which granted lifetimes are randomly shortened, spreading re-registrations after a restart.'),
  // MD5 alone by default: the strongest offer SIPp 3.6, sipsak 0.9.8 and baresip 1.0 all accept (the first two answer
  // only the first challenge, MD5 only; baresip refuses a 401 naming any other algorithm). A response to any offered
  // algorithm is accepted. docs/digest-clients.md; the interop tests lock it in.
  O('digest.algorithms', 'digest-algorithms', 'list', ['MD5'], 'Digest algorithms offered, one challenge each, in this order (MD5, SHA-256, SHA-512-256).'),
  O('digest.nonceTtl', 'nonce-ttl', 'int', 300, 'Seconds a nonce stays valid; after that the client is re-challenged with stale=true.'),
  O('digest.allowNoQop', 'digest-allow-no-qop', 'bool', true, 'Accept RFC 2069 responses without qop (their nonces are single-use).'),
  O('auth.accountFailures', 'auth-account-failures', 'int', 50, 'Failed authentications per account, from all addresses, within the window before it is locked to addresses it has not authenticated from (its known addresses keep working).'),
  O('auth.addressFailures', 'auth-address-failures', 'int', 100, 'Failed authentications per source address (IPv6: one /64), across accounts, within the window before it is locked.'),
  O('auth.failureWindow', 'auth-failure-window', 'int', 300, 'Window in seconds over which failures are counted.'),
  O('auth.lockoutDuration', 'auth-lockout', 'int', 300, 'Seconds a locked account or address stays locked.'),
  O('auth.trustedNetworks', 'auth-trusted-networks', 'list', [], 'CIDRs never locked out by address (an office NAT, an SBC), e.g. 10.0.0.0/8.'),
  O('auth.accountAddressFailures', 'auth-account-address-failures', 'int', 10, 'Failed authentications for one account from one address (IPv6: one /64) within the window before that address is locked out of that account, even with the right password.'),
  O('auth.knownAddressTtl', 'auth-known-address-ttl', 'int', 2592000, 'Seconds an address an account authenticated from stays known to it: known addresses are not refused by the account lockout (0: none are).'),
  O('auth.challengeBurst', 'auth-challenge-burst', 'int', 500, 'Digest challenges (401) sent to one UDP source address (IPv6: one /64) in a burst; beyond it and --auth-challenge-rate they are dropped (a spoofed-source flood must not aim 401s at a victim). Loopback and --auth-trusted-networks are not limited. 0: unlimited.'),
  O('auth.challengeRate', 'auth-challenge-rate', 'int', 50, 'Digest challenges per second one UDP source address regains after its burst.'),
  O('storage.durability', 'durability', 'enum', 'os', 'os: a 200 OK follows the write reaching the OS (survives kill -9); fsync: also flushed to disk (survives power loss).', ['os', 'fsync']),
  O('storage.credentialCacheTtl', 'credential-cache-ttl', 'int', 60, 'Seconds a credential lookup is cached.'),
  O('storage.credentialCacheBytes', 'credential-cache-bytes', 'int', 67108864, 'Heap the credential cache may hold, in bytes (estimated); lookups of unknown users get an eighth of it.'),
  O('storage.database', 'database', 'string', 'sqlite', 'Durable store: sqlite (the file in --data-dir) or postgres://user:pass@host:port/db for several nodes. The password is never logged.'),
  O('storage.databaseSchema', 'database-schema', 'string', 'switchboard', 'PostgreSQL schema (created if missing).'),
  O('storage.cache', 'cache', 'string', 'memory', 'Shared short-lived state and the location index: memory (in-process) or redis://host:port/db for several nodes.'),
  O('storage.cachePrefix', 'cache-prefix', 'string', 'switchboard:', 'Prefix of every Redis key (several deployments can share a Redis).'),
  O('cluster.nodeId', 'node-id', 'string', null, 'This node\u2019s name in bindings and on the bus (default: the host name; workers add -w<n>).'),
  O('cluster.workers', 'workers', 'string', '1', 'Processes on this host sharing the SIP ports (SO_REUSEPORT): a number, or auto for one per core. More than 1 needs --database postgres, --cache redis and --bus amqp.'),
  O('cluster.heartbeat', 'node-heartbeat', 'int', 5, 'Seconds between a node\u2019s heartbeats in Redis; a node silent for four is taken for gone and its WebSocket and outbound-flow bindings are removed.'),
  O('bus.url', 'bus', 'string', 'memory', 'Event bus: memory (in-process), or amqp://user:pass@host:port/vhost for RabbitMQ (events shared between nodes, Kazoo directory on its exchanges). The password is never logged.'),
  O('bus.authenticate', 'bus-authenticate', 'bool', true, 'Drop inter-node messages (sip.relay, credential-cache invalidation, presence replication, node departure) that lack an HMAC under a key derived from the master key: only nodes sharing SWITCHBOARD_MASTER_KEY can send them. They are signed either way; false only while a cluster is upgraded from a version that did not sign.'),
  O('bus.outboxLimit', 'bus-outbox', 'int', 100_000, 'Most AMQP publications held unconfirmed (while the broker is away); beyond it the oldest are dropped and counted.'),
  O('kazoo.directory', 'kazoo', 'enum', 'on', 'With an AMQP bus: answer Kazoo directory requests (authn_req, reg_query, reg_flush, reg_sync) and publish reg_success.', ['on', 'off']),
  O('kazoo.foreignRegistrations', 'kazoo-foreign-registrations', 'enum', 'on', "With the Kazoo directory: keep the registrations other registrars announce (reg_success; reg_sync at start) so reg_query answers for them too, as ecallmgr does. Every node's queue then gets every registration of every registrar, its own included: off where Switchboard is the only registrar on the bus. Never for an account we hold in a realm we serve (a broker client could otherwise take its calls); all: for those too, where a Kamailio registers Switchboard's accounts itself (then only broker permissions stand between a broker client and their calls).", ['on', 'off', 'all']),
  O('kazoo.node', 'kazoo-node', 'string', null, 'Node name in Kazoo messages (Node, Registrar-Node); the Server-ID adds the pid and a random suffix, after the deployment tag where nodes share a location index (default: switchboard@<hostname>).'),
  O('kazoo.expiresDeviation', 'kazoo-expires-deviation', 'int', 180, "Seconds added to the Expires of registrations other switches announce before they leave the cache (Kazoo's expires_deviation_time)."),
  O('calls.from', 'calls-from', 'string', 'authenticated', "Calls to our users from callers outside the served domains: any, authenticated (they must hold credentials of ours), or a comma-separated list of CIDRs (a trunk or SBC) allowed without credentials. Callers in our domains always authenticate (407)."),
  O('calls.outboundProxy', 'outbound-proxy', 'string', null, 'Where calls from our users to other domains go: a SIP URI with an IP address, e.g. sip:192.0.2.10:5060;transport=tcp. Unset: such calls get 403 (no open relay).'),
  O('calls.fallbackUri', 'call-fallback-uri', 'string', null, 'Where a call to a user with no registered device goes (voicemail): a SIP URI with an IP address. Unset: 480.'),
  O('calls.nonInviteTimeout', 'non-invite-fork-timeout', 'int', 16, 'Seconds the devices of one q value have to answer a forked MESSAGE (or other out-of-dialog non-INVITE) with a 2xx before the next q is tried or the message is stored (202). Below the sender\'s own 32 s transaction timeout, so the sender still hears the answer.'),
  O('calls.presencePolicy', 'call-presence-policy', 'enum', 'off', 'busy-to-fallback: a callee who published busy or on-the-phone (RPID), or closed with a note (do not disturb), is not rung: the call goes to --call-fallback-uri, or gets 486. off: presence does not route calls.', ['off', 'busy-to-fallback']),
  O('calls.routingModule', 'routing-module', 'string', null, 'A JavaScript/TypeScript module exporting route(call): asked for every new call after the caller is admitted, it returns "default", { reject: status, reason } or { targets: [SIP URIs with IP addresses] } (examples/route.js).'),
  O('calls.followRedirects', 'call-follow-redirects', 'bool', false, 'A 3xx from a device: on, its Contacts are rung in place of it (at most 8 new branches a call, none rung twice; users of ours at their registered devices, other domains only for our callers through --outbound-proxy, as new calls); off (Kamailio\'s default), the best 3xx goes back to the caller.'),
  O('calls.serialTimeout', 'call-serial-timeout', 'int', 20, 'Seconds the devices of one q value ring before those of the next lower q are tried (serial forking; the next group also starts when all of the current one have declined).'),
  O('presence.defaultExpires', 'presence-default-expires', 'int', 3600, 'Lifetime of a presence subscription or publication that names none, in seconds (RFC 3856, RFC 3903).'),
  O('presence.minExpires', 'presence-min-expires', 'int', 60, 'Shortest presence subscription or publication accepted; shorter (except 0) gets 423 with Min-Expires.'),
  O('presence.derivedContacts', 'presence-derived-contacts', 'bool', false, "Put each registered device's contact (its IP address, port and transport) in the tuple derived from its registration; every watcher the presentity's policy allows sees it. Off: derived tuples say open/closed only."),
  O('presence.subscribeRate', 'presence-subscribe-rate', 'string', '200/1', 'SUBSCRIBEs per authenticated watcher, as size/seconds-per-permit (a token bucket: this many at once, one more per that many seconds), or off; beyond it 503 with Retry-After.'),
  O('presence.maxExpires', 'presence-max-expires', 'int', 3600, 'Longest presence subscription or publication granted; longer is lowered to this.'),
  O('messaging.ttl', 'message-ttl', 'int', 604_800, 'Seconds a stored message (the app inbox; a SIP MESSAGE nobody took) waits for its recipient before it expires unread.'),
  O('messaging.quota', 'message-quota', 'int', 1000, 'Undelivered messages one account may hold; beyond it sends are refused (HTTP 507).'),
  O('messaging.maxBody', 'message-max-body', 'int', 65_536, 'Largest message body accepted, in bytes (HTTP 413 beyond it).'),
  O('messaging.sipSenderRate', 'message-sip-sender-rate', 'string', '30/2', 'SIP MESSAGEs per authenticated sender, as size/seconds-per-permit (a token bucket shared by every node: this many at once, one more per that many seconds), or off; beyond it 503 with Retry-After. Bounds how fast one account can fill another\'s store (the --message-quota caps how much).'),
  O('messaging.sipSourceRate', 'message-sip-source-rate', 'string', '120/0.5', 'SIP MESSAGEs per source address (before authentication: also bounds guessing and challenge floods), as size/seconds-per-permit, or off; beyond it 503 with Retry-After.'),
  O('messaging.rateLimit', 'message-rate-limit', 'int', 600, 'POST /v1/messages per minute per address (0: unlimited); beyond it 429.'),
  O('messaging.sessionTtl', 'app-session-ttl', 'int', 2_592_000, 'Lifetime of an app session (its key authenticates the inbox), in seconds.'),
  O('messaging.sessionOverlap', 'app-session-overlap', 'int', 3600, 'Seconds the old key of a rolled-over app session stays good (in-flight pushes encrypted to it still decrypt).'),
  O('bridge.connectors', 'bridge-connectors', 'list', ['xmpp', 'irc', 'sip'], 'IM bridge: link types served by a connector inside this process (xmpp, irc, sip); empty: none here, `switchboard connector --type …` processes serve them.'),
  O('bridge.maxLinked', 'bridge-max-linked', 'int', 10, 'IM bridge: linked accounts (XMPP, IRC, SIP) one account may hold.'),
  O('bridge.allowServers', 'bridge-allow-servers', 'list', [], 'IM bridge: CIDRs and host names linked accounts may name although refused by default (loopback, private, link-local, CGNAT, multicast, unspecified, this deployment\u2019s own addresses), e.g. an intranet XMPP server 10.1.2.3/32 or xmpp.corp.example.'),
  O('bridge.denyServers', 'bridge-deny-servers', 'list', [], 'IM bridge: CIDRs and host names linked accounts may never name (checked at linking and again by the connector on the addresses resolved right before it connects); wins over --bridge-allow-servers.'),
  O('messaging.sweepInterval', 'message-sweep-interval', 'int', 300, 'Seconds between sweeps removing expired messages and app sessions (0: none).'),
  O('push.fcmServiceAccount', 'fcm-service-account', 'string', null, 'Google service-account JSON file (project_id, client_email, private_key, token_uri) for FCM HTTP v1 pushes; unset: no FCM (pn-provider=fcm gets 555).'),
  O('push.fcmUrl', 'fcm-url', 'string', 'https://fcm.googleapis.com', 'FCM HTTP v1 base URL (POST /v1/projects/<project>/messages:send).'),
  O('push.apnsKeyFile', 'apns-key-file', 'string', null, 'APNs token-auth key (.p8, EC P-256) for APNs pushes; with --apns-key-id and --apns-team-id. Unset: no APNs (pn-provider=apns gets 555).'),
  O('push.apnsKeyId', 'apns-key-id', 'string', null, 'Key ID of --apns-key-file (the provider token\'s kid).'),
  O('push.apnsTeamId', 'apns-team-id', 'string', null, 'Apple developer team ID (the provider token\'s iss).'),
  O('push.apnsTopic', 'apns-topic', 'string', null, 'The app\'s bundle ID, for devices whose pn-param does not name it.'),
  O('push.apnsUrl', 'apns-url', 'string', 'https://api.push.apple.com', 'APNs base URL (https://api.sandbox.push.apple.com for development builds).'),
  O('push.webpush', 'webpush', 'bool', true, 'Web Push (RFC 8030/8291/8292) with a VAPID key derived from the master key (GET /v1/push/vapid gives its public key).'),
  O('push.webpushSubject', 'webpush-subject', 'string', null, 'VAPID sub claim: a mailto: or https: contact for push services (default mailto:postmaster@<first realm>).'),
  O('push.webpushHosts', 'webpush-hosts', 'list', ['fcm.googleapis.com', 'push.services.mozilla.com', 'notify.windows.com', 'push.apple.com'], 'Push-service hosts (and their subdomains) a Web Push endpoint may name; the endpoint comes from the client, so any other is refused (no requests to hosts of its choosing).'),
  O('push.forkLateTimeout', 'push-fork-late-timeout', 'int', 30, 'Fork late (RFC 8599 §5.3, Flexisip\'s name): an INVITE to a device that registered with pn-* parameters and whose connection is gone pushes it (a content-free wake-up) and waits this many seconds for it to register again, then rings it on the same call; after that, 480. 0: no pushes for calls or MESSAGE, such bindings are tried as they are.'),
  O('push.forkLateMessageTimeout', 'push-fork-late-message-timeout', 'int', 10, 'The same wait for a MESSAGE; the device gets it when it registers in time (200 to the sender), otherwise it is stored (202). At most 28 s in all with the other devices\' answers, within the sender\'s 32 s.'),
  O('push.pnsreg', 'push-pnsreg', 'int', 120, 'RFC 8599 +sip.pnsreg in a push-capable REGISTER\'s 200 OK: seconds before expiry the device should wake and re-register.'),
  O('phone.codeProvider', 'verification-provider', 'enum', 'local', 'How verification codes go out: local (written to the log and --verification-code-file; NOT for production) or twilio.', ['local', 'twilio']),
  O('phone.codeFile', 'verification-code-file', 'string', null, 'File the local provider appends codes and push challenges to, one JSON line each (default: <data-dir>/verification-codes.log).'),
  O('phone.twilioUrl', 'twilio-url', 'string', 'https://api.twilio.com', 'Base URL of the Twilio-style API (POST /2010-04-01/Accounts/<sid>/Messages.json and Calls.json).'),
  O('phone.twilioAccountSid', 'twilio-account-sid', 'string', null, 'Twilio account SID (the Basic auth user).'),
  O('phone.twilioAuthToken', 'twilio-auth-token', 'string', null, 'Twilio auth token (better given in the environment).'),
  O('phone.twilioFrom', 'twilio-from', 'string', null, 'Sender number (E.164) for verification SMS and calls.'),
  O('phone.captchaUrl', 'captcha-verify-url', 'string', null, 'hCaptcha/Turnstile-style siteverify URL. Unset: any non-empty captcha is accepted (local use only; NOT for production).'),
  O('phone.captchaSecret', 'captcha-secret', 'string', null, 'Secret sent with each captcha to --captcha-verify-url (better given in the environment).'),
  O('phone.captchaSiteKey', 'captcha-site-key', 'string', null, 'Site key sent with each captcha to --captcha-verify-url (optional).'),
  O('phone.providerTimeout', 'provider-timeout', 'int', 10, 'Seconds to wait for the captcha service or the SMS/voice provider.'),
  O('phone.smsPacing', 'sms-pacing', 'list', ['0', '60', '120', '300', '600'], 'Seconds before each SMS of a verification session after the previous one (the first: after the session starts); one entry per SMS allowed.'),
  O('phone.voicePacing', 'voice-pacing', 'list', ['60', '300'], 'Seconds before each voice call of a verification session after the previous call (the first: after the latest SMS); one entry per call allowed.'),
  O('phone.checkPacing', 'code-check-pacing', 'list', ['0', '0', '0', '60', '120'], 'Seconds before each code check of a verification session after the previous one; one entry per check allowed.'),
  O('phone.rateLimits', 'rate-limits', 'list', limiterDefaultSpecs(), 'Token buckets as name=size/seconds-per-permit; names not given keep these defaults.'),
  O('phone.maxDevices', 'max-devices', 'int', 6, 'Most devices of a phone account, the primary included (beyond it 411).'),
  O('phone.sweepInterval', 'phone-sweep-interval', 'int', 3600, 'Seconds between idle-expiry sweeps of phone accounts and devices (0: none).'),
];

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let o = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    o[parts[i]] ??= {};
    o = o[parts[i]] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

function getPath(obj: Record<string, unknown>, dotted: string): unknown {
  let o: unknown = obj;
  for (const p of dotted.split('.')) {
    if (o === null || typeof o !== 'object') return undefined;
    o = (o as Record<string, unknown>)[p];
  }
  return o;
}

function coerce(opt: Option, raw: unknown, origin: string): unknown {
  const fail = (why: string) => sbError('CONFIG_ERR_INVALID', `${origin}: ${why}`);
  switch (opt.kind) {
    case 'string':
      if (raw === null) return null;
      if (typeof raw !== 'string') throw fail('expected a string');
      return raw === '' && opt.default === null ? null : raw;
    case 'int': {
      const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
      if (!Number.isInteger(n) || n < 0) throw fail(`expected a non-negative integer, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (/^(1|true|yes|on)$/i.test(String(raw))) return true;
      if (/^(0|false|no|off)$/i.test(String(raw))) return false;
      throw fail(`expected a boolean, got ${JSON.stringify(raw)}`);
    case 'list': {
      const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
      return items.map((s) => s.trim()).filter(Boolean);
    }
    case 'enum':
      if (!opt.values!.includes(String(raw))) throw fail(`expected one of ${opt.values!.join(', ')}, got ${JSON.stringify(raw)}`);
      return String(raw);
  }
}

export interface ConfigSources {
  /** Flags already split by parseArgs: option flag name → string or string[] (repeatable). */
  flags?: Record<string, string | string[] | boolean | undefined>;
  env?: NodeJS.ProcessEnv;
  file?: string | null;
  /** Settings by their config-file key, as from a program embedding the server (index.ts): after the file, before env. */
  values?: Record<string, unknown>;
}

export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const cfg: Record<string, unknown> = {};
  for (const opt of OPTIONS) setPath(cfg, opt.path, structuredClone(opt.default));
  const file = sources.file ?? env.SWITCHBOARD_CONFIG ?? null;
  if (file) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw sbError('CONFIG_ERR_INVALID', `cannot read config file ${file}: ${(e as Error).message}`);
    }
    applyValues(cfg, json, file);
  }
  if (sources.values) applyValues(cfg, sources.values, 'options');
  for (const opt of OPTIONS) {
    const v = env[opt.env];
    if (v !== undefined && v !== '') setPath(cfg, opt.path, coerce(opt, v, opt.env));
  }
  const flags = sources.flags ?? {};
  for (const opt of OPTIONS) {
    const v = flags[opt.flag];
    if (v === undefined) continue;
    const raw = Array.isArray(v) ? v.flatMap((x) => x.split(',')) : v;
    setPath(cfg, opt.path, coerce(opt, raw, `--${opt.flag}`));
  }
  const config = cfg as unknown as Config;
  validate(config);
  config.dataDir = path.resolve(config.dataDir);
  config.realms = config.realms.map((r) => r.toLowerCase());
  config.sip.transports = config.sip.transports.map((t) => t.toUpperCase()) as Config['sip']['transports'];
  config.digest.algorithms = config.digest.algorithms.map((a) => a.toUpperCase()) as DigestAlgorithm[];
  for (const k of ['smsPacing', 'voicePacing', 'checkPacing'] as const) config.phone[k] = config.phone[k].map(Number);
  return config;
}

/** Settings keyed as in a config file (nested objects, `sip.port`) over `cfg`; `where` names their source in errors. */
function applyValues(cfg: Record<string, unknown>, json: Record<string, unknown>, where: string): void {
  for (const opt of OPTIONS) {
    const v = getPath(json, opt.path);
    if (v !== undefined) setPath(cfg, opt.path, coerce(opt, v, `${where}: ${opt.path}`));
  }
}

function validate(c: Config): void {
  const bad = (m: string) => {
    throw sbError('CONFIG_ERR_INVALID', m);
  };
  if (c.realms.length === 0) bad('at least one realm is required');
  if (c.sip.port > 65535 || c.http.port > 65535) bad('ports must be below 65536');
  for (const t of c.sip.transports) if (!['UDP', 'TCP', 'TLS', 'WS', 'WSS'].includes(t.toUpperCase())) bad(`unknown SIP transport ${t}`);
  if ((c.tls.cert === null) !== (c.tls.key === null)) bad('--tls-cert and --tls-key go together');
  try {
    createSecureContext({ ciphers: c.tls.ciphers });
  } catch (e) {
    bad(`--tls-ciphers: ${(e as Error).message}`);
  }
  for (const a of c.digest.algorithms) if (!['MD5', 'SHA-256', 'SHA-512-256'].includes(a.toUpperCase())) bad(`unknown digest algorithm ${a}`);
  if (c.digest.algorithms.length === 0) bad('at least one digest algorithm is required');
  if (c.registrar.minExpires > c.registrar.maxExpires) bad('min-expires above max-expires');
  if (c.calls.serialTimeout < 0) bad('--call-serial-timeout is 0 (only when a group ends) or more seconds');
  if (c.calls.nonInviteTimeout < 1 || c.calls.nonInviteTimeout > 30) bad('--non-invite-fork-timeout is 1 to 30 seconds (the sender gives up after 32)');
  if (!['any', 'authenticated'].includes(c.calls.from)) {
    try {
      new NetworkSet(c.calls.from.split(',').map((x) => x.trim()));
    } catch {
      bad('--calls-from is any, authenticated or a list of CIDRs');
    }
  }
  for (const [flag, v] of [['--outbound-proxy', c.calls.outboundProxy], ['--call-fallback-uri', c.calls.fallbackUri]] as const) {
    if (v !== null && !/^sips?:(?:[^@;]+@)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])(?::\d+)?(?:;[^;]+)*$/.test(v)) bad(`${flag} must be a SIP URI with an IP address`);
  }
  if (c.presence.minExpires < 1 || c.presence.minExpires > c.presence.maxExpires) bad('presence-min-expires must be at least 1 and not above presence-max-expires');
  if (c.registrar.defaultExpires < c.registrar.minExpires) bad('default-expires below min-expires');
  if (c.registrar.expirySpread > 20) bad('expiry-spread is a percentage from 0 to 20');
  if (c.sip.maxMessageSize < 1024) bad('sip-max-message-size below 1024');
  if (c.sip.tcpMessageTimeout < 1 || c.sip.firstMessageTimeout < 1 || c.sip.tcpIdleTimeout < 1) bad('SIP connection timeouts are at least 1 second');
  if (c.sip.maxConnectionsPerAddress < 0) bad('--sip-max-connections-per-address is 0 (no cap) or more');
  if (c.http.headersTimeout < 1 || c.http.keepAliveTimeout < 1 || c.http.requestTimeout < 0) bad('HTTP timeouts are at least 1 second (--http-request-timeout 0: none)');
  if (c.http.requestTimeout > 0 && c.http.headersTimeout > c.http.requestTimeout) bad('--http-headers-timeout above --http-request-timeout');
  for (const cidr of c.sip.trustedProxies) {
    try {
      new NetworkSet([cidr]);
    } catch (e) {
      bad(`--sip-trusted-proxies: ${(e as Error).message}`);
    }
  }
  if (c.storage.database !== 'sqlite' && !/^postgres(ql)?:\/\//.test(c.storage.database)) bad('--database is sqlite or a postgres:// URL');
  if (c.storage.cache !== 'memory' && !/^rediss?:\/\//.test(c.storage.cache)) bad('--cache is memory or a redis:// URL');
  if (c.cluster.workers !== 'auto' && !/^[1-9][0-9]{0,2}$/.test(c.cluster.workers)) bad('--workers is a number or auto');
  if (c.cluster.workers !== '1' && (c.storage.database === 'sqlite' || c.storage.cache === 'memory' || c.bus.url === 'memory')) {
    bad('--workers above 1 shares state between processes: it needs --database postgres://…, --cache redis://… and --bus amqp://…');
  }
  if (c.cluster.heartbeat < 1 || c.cluster.heartbeat > 300) bad('--node-heartbeat is 1 to 300 seconds');
  if (c.cluster.workers !== '1') {
    const ports: Array<[string, number]> = [['--sip-port', c.sip.port], ['--http-port', c.http.port]];
    if (c.sip.transports.includes('TLS')) ports.push(['--sip-tls-port', c.sip.tlsPort]);
    if (c.sip.transports.includes('WS')) ports.push(['--sip-ws-port', c.sip.wsPort]);
    if (c.sip.transports.includes('WSS')) ports.push(['--sip-wss-port', c.sip.wssPort]);
    // Port 0 would give every worker a different port: they share one only when it is named.
    for (const [flag, port] of ports) if (port === 0) bad(`--workers shares ports between processes: ${flag} cannot be 0`);
  }
  if (c.passwords.argon2MemoryKiB < 8 || c.passwords.argon2Passes < 1) bad('argon2 cost too low');
  if (c.tokens.accessTtl < 30) bad('access-token-ttl below 30 seconds');
  if (c.tokens.jwksUrl !== null) {
    const problem = jwksUrlProblem(c.tokens.jwksUrl);
    if (problem) bad(problem);
    if (!c.tokens.jwksUsernameClaim) bad('--jwks-url needs --jwks-username-claim (which claim of the remote tokens is the user name)');
    if ((c.tokens.jwksRealm === null) === (c.tokens.jwksRealmClaim === null)) bad('--jwks-url needs exactly one of --jwks-realm and --jwks-realm-claim (the realm of the remote tokens)');
    if (c.tokens.jwksRealm !== null && !c.realms.includes(c.tokens.jwksRealm.toLowerCase())) bad('--jwks-realm must be one of --realm');
    for (const m of c.tokens.jwksRoleMap) if (!/^[^=]+=admin$/.test(m)) bad(`--jwks-role-map takes theirs=ours with ours one of: admin (got ${JSON.stringify(m)})`);
  }
  if (c.bus.url !== 'memory' && !/^amqps?:\/\/[^/]/.test(c.bus.url)) bad('bus must be memory or an amqp:// (amqps://) URL');
  if (c.phone.codeProvider === 'twilio' && (!c.phone.twilioAccountSid || !c.phone.twilioAuthToken || !c.phone.twilioFrom)) {
    bad('--verification-provider twilio needs --twilio-account-sid, --twilio-auth-token and --twilio-from');
  }
  if (c.phone.captchaUrl !== null && (!/^https?:\/\//.test(c.phone.captchaUrl) || !c.phone.captchaSecret)) bad('--captcha-verify-url must be an http(s) URL and needs --captcha-secret');
  for (const [name, list] of [['sms-pacing', c.phone.smsPacing], ['voice-pacing', c.phone.voicePacing], ['code-check-pacing', c.phone.checkPacing]] as const) {
    if (!list.every((x) => /^\d+$/.test(String(x)))) bad(`${name} takes whole seconds`);
  }
  if (c.phone.smsPacing.length === 0 || c.phone.checkPacing.length === 0) bad('sms-pacing and code-check-pacing need at least one entry');
  if (c.phone.maxDevices < 1) bad('max-devices must be at least 1');
  parseLimiterSpecs(c.phone.rateLimits);
  for (const [flag, list] of [['http-trust-proxy', c.http.trustProxy], ['auth-trusted-networks', c.auth.trustedNetworks]] as const) {
    for (const cidr of list) {
      const [net, bits] = cidr.split('/');
      const family = isIP(net);
      if (family === 0 || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)))) bad(`--${flag}: ${cidr} is not an address or CIDR`);
    }
  }
  if (c.auth.accountAddressFailures < 1 || c.auth.accountFailures < 1 || c.auth.addressFailures < 1) bad('auth failure limits must be at least 1');
  if (c.auth.challengeBurst < 0 || c.auth.challengeRate < 0) bad('--auth-challenge-burst and --auth-challenge-rate cannot be negative');
  if (c.storage.credentialCacheBytes < 65536) bad('--credential-cache-bytes below 65536');
  const m = c.messaging;
  if (m.ttl < 60 || m.quota < 1 || m.maxBody < 1 || m.maxBody > 16_777_216 || m.rateLimit < 0 || m.sweepInterval < 0) {
    bad('--message-ttl at least 60, --message-quota at least 1, --message-max-body 1 to 16777216, --message-rate-limit and --message-sweep-interval not negative');
  }
  parseBucketSpec(m.sipSenderRate, '--message-sip-sender-rate');
  parseBucketSpec(m.sipSourceRate, '--message-sip-source-rate');
  const p = c.push;
  if ((p.apnsKeyFile === null) !== (p.apnsKeyId === null) || (p.apnsKeyFile === null) !== (p.apnsTeamId === null)) bad('--apns-key-file, --apns-key-id and --apns-team-id go together');
  if (p.pnsreg < 0) bad('--push-pnsreg cannot be negative');
  if (p.forkLateTimeout < 0 || p.forkLateTimeout > 170) bad('--push-fork-late-timeout is 0 to 170 seconds (below Timer C)');
  if (p.forkLateMessageTimeout < 1 || p.forkLateMessageTimeout > 28) bad('--push-fork-late-message-timeout is 1 to 28 seconds (the sender gives up after 32)');
  if (m.sessionTtl < 60 || m.sessionOverlap < 0 || m.sessionOverlap > m.sessionTtl) bad('--app-session-ttl at least 60; --app-session-overlap from 0 to --app-session-ttl');
  if (c.bridge.maxLinked < 0 || c.bridge.maxLinked > 1000) bad('--bridge-max-linked from 0 to 1000');
  for (const t of c.bridge.connectors) if (!['xmpp', 'irc', 'sip'].includes(t)) bad(`--bridge-connectors: ${t} is not a link type (xmpp, irc, sip)`);
  for (const [flag, list] of [['--bridge-allow-servers', c.bridge.allowServers], ['--bridge-deny-servers', c.bridge.denyServers]] as const) {
    for (const e of list) {
      if (/^[A-Za-z0-9.-]{1,255}$/.test(e) && isIP(e) === 0) continue; // a host name
      try {
        new NetworkSet([e]);
      } catch (err) {
        bad(`${flag}: ${(err as Error).message} (nor a host name)`);
      }
    }
  }
}

/** parseArgs option table for every configuration flag (plus --config). */
export function configFlagSpec(): Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> {
  const spec: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { config: { type: 'string' } };
  for (const opt of OPTIONS) {
    spec[opt.flag] = opt.kind === 'list' ? { type: 'string', multiple: true } : opt.kind === 'bool' ? { type: 'boolean' } : { type: 'string' };
  }
  return spec;
}

/** The configuration table in Markdown, as the README shows it. */
export function configTableMarkdown(): string {
  const rows = OPTIONS.map((o) => {
    const def = Array.isArray(o.default) ? o.default.join(',') : o.default === null ? '' : String(o.default);
    return `| \`--${o.flag}\` | \`${o.env}\` | \`${o.path}\` | ${def === '' ? '—' : '`' + def + '`'} | ${o.doc} |`;
  });
  return ['| flag | environment | config file key | default | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
