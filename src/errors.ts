// The one catalogue of Switchboard's errors, in the manner of fastify's FST_ERR_*: every error a caller can
// meet has a stable code, a default message and, where it leaves the process, the status it maps to.
// Code that fails creates errors from here, so logs, SIP reason phrases and HTTP bodies agree.

export interface ErrorSpec {
  readonly code: string;
  readonly message: string;
  /** SIP status when the error answers a SIP request. */
  readonly sip?: number;
  /** HTTP status when the error answers an HTTP request. */
  readonly http?: number;
}

export class SwitchboardError extends Error {
  readonly code: string;
  readonly sip: number | undefined;
  readonly http: number | undefined;
  readonly detail: Record<string, unknown> | undefined;

  constructor(spec: ErrorSpec, message?: string, detail?: Record<string, unknown>) {
    super(message ?? spec.message);
    this.name = 'SwitchboardError';
    this.code = spec.code;
    this.sip = spec.sip;
    this.http = spec.http;
    this.detail = detail;
  }
}

// The statuses keep their types, so sipError() accepts only entries that have a SIP status.
function spec<const C extends string, const S extends { sip?: number; http?: number } = Record<never, never>>(code: C, message: string, status?: S) {
  return { code, message, ...(status as S) };
}

export const Errors = {
  // Wire format (RFC 3261 §7, §25). Parse failures answer 400 (505 for the version) or are dropped.
  SIP_ERR_START_LINE: spec('SIP_ERR_START_LINE', 'malformed start line', { sip: 400 }),
  SIP_ERR_VERSION: spec('SIP_ERR_VERSION', 'unsupported SIP version', { sip: 505 }),
  SIP_ERR_HEADER_SYNTAX: spec('SIP_ERR_HEADER_SYNTAX', 'malformed header', { sip: 400 }),
  SIP_ERR_MISSING_HEADER: spec('SIP_ERR_MISSING_HEADER', 'missing mandatory header', { sip: 400 }),
  SIP_ERR_CONTENT_LENGTH: spec('SIP_ERR_CONTENT_LENGTH', 'bad Content-Length', { sip: 400 }),
  SIP_ERR_TOO_LARGE: spec('SIP_ERR_TOO_LARGE', 'message too large', { sip: 513 }),
  SIP_ERR_URI: spec('SIP_ERR_URI', 'malformed URI', { sip: 400 }),
  SIP_ERR_URI_SCHEME: spec('SIP_ERR_URI_SCHEME', 'unsupported URI scheme', { sip: 416 }),
  SIP_ERR_CSEQ_METHOD: spec('SIP_ERR_CSEQ_METHOD', 'CSeq method does not match the request method', { sip: 400 }),
  SIP_ERR_EXTENSION: spec('SIP_ERR_EXTENSION', 'bad extension', { sip: 420 }),
  SIP_ERR_METHOD_NOT_ALLOWED: spec('SIP_ERR_METHOD_NOT_ALLOWED', 'method not allowed', { sip: 405 }),
  SIP_ERR_NOT_IMPLEMENTED: spec('SIP_ERR_NOT_IMPLEMENTED', 'method not implemented', { sip: 501 }),
  SIP_ERR_NO_TRANSACTION: spec('SIP_ERR_NO_TRANSACTION', 'no matching transaction (CANCEL with no INVITE)', { sip: 481 }),
  SIP_ERR_CONTACT: spec('SIP_ERR_CONTACT', 'malformed Contact', { sip: 400 }),
  SIP_ERR_INTERVAL_TOO_BRIEF: spec('SIP_ERR_INTERVAL_TOO_BRIEF', 'interval too brief (the answer carries Min-Expires)', { sip: 423 }),
  SIP_ERR_DIALOG_CSEQ: spec('SIP_ERR_DIALOG_CSEQ', 'CSeq lower than the dialog\u2019s last (RFC 3261 \u00a712.2.2)', { sip: 500 }),
  SIP_ERR_INTERNAL: spec('SIP_ERR_INTERNAL', 'request handler failed', { sip: 500 }),
  SIP_ERR_TRANSPORT: spec('SIP_ERR_TRANSPORT', 'transport failure', { sip: 503 }),
  SIP_ERR_TIMEOUT: spec('SIP_ERR_TIMEOUT', 'transaction timed out', { sip: 408 }),
  SIP_ERR_MAX_FORWARDS: spec('SIP_ERR_MAX_FORWARDS', 'too many hops', { sip: 483 }),
  SIP_ERR_REQUEST_TERMINATED: spec('SIP_ERR_REQUEST_TERMINATED', 'cancelled by the caller (CANCEL)', { sip: 487 }),

  // Digest and authentication (RFC 7616, RFC 8760).
  AUTH_ERR_CREDENTIALS: spec('AUTH_ERR_CREDENTIALS', 'wrong credentials', { sip: 401, http: 401 }),
  AUTH_ERR_MALFORMED: spec('AUTH_ERR_MALFORMED', 'malformed Authorization header', { sip: 400, http: 400 }),
  AUTH_ERR_LOCKED: spec('AUTH_ERR_LOCKED', 'too many failed attempts; try again later', { sip: 403, http: 429 }),
  AUTH_ERR_FORBIDDEN: spec('AUTH_ERR_FORBIDDEN', 'identity may not act for this address of record', { sip: 403, http: 403 }),
  AUTH_ERR_SCOPE: spec('AUTH_ERR_SCOPE', 'token without the scope this request needs (RFC 6750 insufficient_scope)', { sip: 403 }),

  // Registrar (RFC 3261 §10.3).
  REG_ERR_NOT_OUR_DOMAIN: spec('REG_ERR_NOT_OUR_DOMAIN', 'domain not served here', { sip: 404 }),
  REG_ERR_UNKNOWN_AOR: spec('REG_ERR_UNKNOWN_AOR', 'not an address of record served here (a SIP URI with a user part)', { sip: 404 }),
  REG_ERR_WILDCARD: spec('REG_ERR_WILDCARD', 'Contact: * needs Expires: 0', { sip: 400 }),
  REG_ERR_PUSH_PROVIDER: spec('REG_ERR_PUSH_PROVIDER', 'a push provider (pn-provider) this server cannot push through (RFC 8599 \u00a74.1.2)', { sip: 555 }),
  REG_ERR_OUT_OF_ORDER: spec('REG_ERR_OUT_OF_ORDER', 'CSeq not higher than the binding\u2019s for the same Call-ID', { sip: 400 }),
  REG_ERR_TOO_MANY_CONTACTS: spec('REG_ERR_TOO_MANY_CONTACTS', 'too many contacts for this address of record', { sip: 403 }),
  REG_ERR_NOT_REGISTERED: spec('REG_ERR_NOT_REGISTERED', 'address of record has no live bindings', { http: 404 }),

  // Presence (RFC 6665 SUBSCRIBE/NOTIFY, RFC 3903 PUBLISH).
  PRES_ERR_BAD_EVENT: spec('PRES_ERR_BAD_EVENT', 'event package not supported (the answer carries Allow-Events)', { sip: 489 }),
  PRES_ERR_NOT_ACCEPTABLE: spec('PRES_ERR_NOT_ACCEPTABLE', 'Accept excludes the package\u2019s body type', { sip: 406 }),
  PRES_ERR_MEDIA_TYPE: spec('PRES_ERR_MEDIA_TYPE', 'body type not the package\u2019s (the answer carries Accept)', { sip: 415 }),
  PRES_ERR_BODY: spec('PRES_ERR_BODY', 'malformed or missing presence document', { sip: 400 }),
  PRES_ERR_NO_PRESENTITY: spec('PRES_ERR_NO_PRESENTITY', 'no such presentity', { sip: 404 }),
  PRES_ERR_NO_SUBSCRIPTION: spec('PRES_ERR_NO_SUBSCRIPTION', 'no such subscription', { sip: 481 }),
  PRES_ERR_ETAG: spec('PRES_ERR_ETAG', 'unknown entity tag', { sip: 412 }),
  PRES_ERR_SUBSCRIBE_RATE: spec('PRES_ERR_SUBSCRIBE_RATE', 'too many subscriptions; retry later', { sip: 503 }),
  // Proxy (RFC 3261 §16): calls and in-dialog requests routed to registered devices.
  PROXY_ERR_LOOP: spec('PROXY_ERR_LOOP', 'loop detected', { sip: 482 }),
  PROXY_ERR_UNKNOWN_USER: spec('PROXY_ERR_UNKNOWN_USER', 'no such user', { sip: 404 }),
  PROXY_ERR_BUSY: spec('PROXY_ERR_BUSY', 'the user published busy or do-not-disturb', { sip: 486 }),
  PROXY_ERR_NOT_REGISTERED: spec('PROXY_ERR_NOT_REGISTERED', 'the user has no registered device', { sip: 480 }),
  GRUU_ERR_UNKNOWN: spec('GRUU_ERR_UNKNOWN', 'no such GRUU (a temp-gruu that does not verify, or a gr parameter without an instance)', { sip: 404 }),
  GRUU_ERR_UNAVAILABLE: spec('GRUU_ERR_UNAVAILABLE', 'the device this GRUU names is not registered now (or did not answer)', { sip: 480 }),
  PROXY_ERR_RELAY_DENIED: spec('PROXY_ERR_RELAY_DENIED', 'not relaying to a domain not served here', { sip: 403 }),
  PROXY_ERR_CALLER_DENIED: spec('PROXY_ERR_CALLER_DENIED', 'calls from outside the served domains are not accepted from this source', { sip: 403 }),
  PROXY_ERR_FROM_NOT_OWNED: spec('PROXY_ERR_FROM_NOT_OWNED', 'the authenticated identity may not call as this From address', { sip: 403 }),
  PROXY_ERR_NO_DIALOG: spec('PROXY_ERR_NO_DIALOG', 'no dialog routed through this proxy', { sip: 481 }),
  PROXY_ERR_ROUTE: spec('PROXY_ERR_ROUTE', 'Route or Record-Route beyond what is accepted', { sip: 400 }),
  PROXY_ERR_UNREACHABLE: spec('PROXY_ERR_UNREACHABLE', 'the target is not reachable from this node', { sip: 480 }),
  PROXY_ERR_PUSH_TIMEOUT: spec('PROXY_ERR_PUSH_TIMEOUT', 'the device was woken by push but did not register again in time (or could not be pushed)', { sip: 480 }),
  PROXY_ERR_STOPPING: spec('PROXY_ERR_STOPPING', 'shutting down: no new calls', { sip: 503 }),
  PROXY_ERR_HOOK_REJECT: spec('PROXY_ERR_HOOK_REJECT', 'rejected by the routing hook (the status is the hook\u2019s)', { sip: 603 }),

  // Storage.
  STORE_ERR_WRITE: spec('STORE_ERR_WRITE', 'could not persist the change', { sip: 500, http: 500 }),
  STORE_ERR_MIGRATION: spec('STORE_ERR_MIGRATION', 'database migration failed'),

  // Bus (AMQP, Kazoo directory messages): a message that fails validation is logged and rejected.
  BUS_ERR_MALFORMED: spec('BUS_ERR_MALFORMED', 'malformed bus message'),
  BUS_ERR_UNAUTHENTICATED: spec('BUS_ERR_UNAUTHENTICATED', 'inter-node bus message without a valid signature of this deployment'),
  BUS_ERR_OWN_AOR: spec('BUS_ERR_OWN_AOR', 'reg_success from another registrar for an address of record we are the registrar of'),

  // Cross-node delivery (sip/flow-relay.ts): a request for a flow held by another node, sent through that node.
  RELAY_ERR_FLOW_GONE: spec('RELAY_ERR_FLOW_GONE', 'the connection of that flow is closed on the node that held it', { sip: 480 }),
  RELAY_ERR_TIMEOUT: spec('RELAY_ERR_TIMEOUT', 'no answer from the node holding the connection', { sip: 408 }),
  RELAY_ERR_FAILED: spec('RELAY_ERR_FAILED', 'the node holding the connection could not send the request', { sip: 503 }),
  RELAY_ERR_CLOSED: spec('RELAY_ERR_CLOSED', 'flow relay closed', { sip: 503 }),
  RELAY_ERR_NOT_PEER: spec('RELAY_ERR_NOT_PEER', 'the relayed request names a target that is not the peer of its connection', { sip: 403 }),

  // Accounts and HTTP.
  ACCOUNT_ERR_EXISTS: spec('ACCOUNT_ERR_EXISTS', 'account already exists', { http: 409 }),
  ACCOUNT_ERR_NOT_FOUND: spec('ACCOUNT_ERR_NOT_FOUND', 'account not found', { http: 404 }),
  ACCOUNT_ERR_NAME: spec('ACCOUNT_ERR_NAME', 'invalid account name: expected user@realm', { http: 400 }),
  ACCOUNT_ERR_NAME_RESERVED: spec('ACCOUNT_ERR_NAME_RESERVED', 'user names of the form <uuid>.<n> are reserved for device credentials', { http: 400 }),
  ACCOUNT_ERR_CREDENTIAL_TAKEN: spec('ACCOUNT_ERR_CREDENTIAL_TAKEN', 'these SIP credentials belong to another account', { http: 409 }),
  HTTP_ERR_UNAUTHORIZED: spec('HTTP_ERR_UNAUTHORIZED', 'authentication required', { http: 401 }),
  HTTP_ERR_FORBIDDEN: spec('HTTP_ERR_FORBIDDEN', 'not allowed', { http: 403 }),
  HTTP_ERR_VALIDATION: spec('HTTP_ERR_VALIDATION', 'invalid request', { http: 400 }),
  HTTP_ERR_NOT_FOUND: spec('HTTP_ERR_NOT_FOUND', 'not found', { http: 404 }),
  HTTP_ERR_RATE_LIMITED: spec('HTTP_ERR_RATE_LIMITED', 'too many requests', { http: 429 }),
  /** A request the framework refused (body too large, unsupported media type, bad JSON): its own 4xx status. */
  HTTP_ERR_REQUEST: spec('HTTP_ERR_REQUEST', 'request failed', { http: 400 }),
  HTTP_ERR_INTERNAL: spec('HTTP_ERR_INTERNAL', 'internal error', { http: 500 }),

  // Phone sign-up (docs/phone-registration.md): Signal-Server's status codes.
  PHONE_ERR_INVALID: spec('PHONE_ERR_INVALID', 'invalid request body', { http: 422 }),
  PHONE_ERR_NUMBER: spec('PHONE_ERR_NUMBER', 'not a valid E.164 phone number', { http: 422 }),
  PHONE_ERR_SESSION_NOT_FOUND: spec('PHONE_ERR_SESSION_NOT_FOUND', 'verification session not found or expired', { http: 404 }),
  PHONE_ERR_CHALLENGE: spec('PHONE_ERR_CHALLENGE', 'captcha or push challenge not accepted', { http: 403 }),
  PHONE_ERR_SESSION_STATE: spec('PHONE_ERR_SESSION_STATE', 'not possible in the session\u2019s current state', { http: 409 }),
  PHONE_ERR_TRANSPORT: spec('PHONE_ERR_TRANSPORT', 'this transport is not allowed now in this session', { http: 418 }),
  PHONE_ERR_PROVIDER: spec('PHONE_ERR_PROVIDER', 'the code could not be sent', { http: 440 }),
  PHONE_ERR_PROVIDER_UNAVAILABLE: spec('PHONE_ERR_PROVIDER_UNAVAILABLE', 'verification provider unavailable', { http: 503 }),
  PHONE_ERR_RATE_LIMITED: spec('PHONE_ERR_RATE_LIMITED', 'too many requests', { http: 429 }),
  PHONE_ERR_ATTEMPTS: spec('PHONE_ERR_ATTEMPTS', 'no attempts left in this session: start a new one', { http: 429 }),
  PHONE_ERR_AUTH_HEADER: spec('PHONE_ERR_AUTH_HEADER', 'Authorization: Basic <number>:<password> required', { http: 400 }),
  PHONE_ERR_NUMBER_MISMATCH: spec('PHONE_ERR_NUMBER_MISMATCH', 'the number does not match the verification session', { http: 400 }),
  PHONE_ERR_NOT_VERIFIED: spec('PHONE_ERR_NOT_VERIFIED', 'verification session unknown or not verified', { http: 401 }),
  PHONE_ERR_DEVICE_TRANSFER: spec('PHONE_ERR_DEVICE_TRANSFER', 'device transfer available', { http: 409 }),
  PHONE_ERR_NUMBER_TAKEN: spec('PHONE_ERR_NUMBER_TAKEN', 'the number names an account that was not created by phone sign-up', { http: 409 }),
  PHONE_ERR_REGISTRATION_LOCK: spec('PHONE_ERR_REGISTRATION_LOCK', 'registration lock: the PIN is required', { http: 423 }),
  PHONE_ERR_DEVICE_AUTH: spec('PHONE_ERR_DEVICE_AUTH', 'device authentication failed', { http: 401 }),
  PHONE_ERR_DEVICE_LIMIT: spec('PHONE_ERR_DEVICE_LIMIT', 'too many devices on this account', { http: 411 }),
  PHONE_ERR_LINK_CODE: spec('PHONE_ERR_LINK_CODE', 'link code invalid, used or expired', { http: 403 }),
  PHONE_ERR_FORBIDDEN: spec('PHONE_ERR_FORBIDDEN', 'not allowed for this device', { http: 403 }),
  PHONE_ERR_DEVICE_NOT_FOUND: spec('PHONE_ERR_DEVICE_NOT_FOUND', 'no such device', { http: 404 }),

  // Messaging (issue 18): stored messages, the app inbox, app sessions, push (RFC 8599).
  MSG_ERR_SESSION: spec('MSG_ERR_SESSION', 'app session unknown, expired or ended: log in again', { http: 401 }),
  MSG_ERR_TOO_LARGE: spec('MSG_ERR_TOO_LARGE', 'message body too large', { sip: 513, http: 413 }),
  MSG_ERR_QUOTA: spec('MSG_ERR_QUOTA', 'the recipient holds too many undelivered messages', { sip: 486, http: 507 }),
  MSG_ERR_RECIPIENT: spec('MSG_ERR_RECIPIENT', 'no such recipient here', { sip: 404, http: 404 }),
  MSG_ERR_RATE: spec('MSG_ERR_RATE', 'too many messages from this sender or address; retry later', { sip: 503 }),
  MSG_ERR_BODY: spec('MSG_ERR_BODY', 'a MESSAGE needs a body and its Content-Type', { sip: 400 }),

  // The IM bridge (issue 19): vault, linked accounts, connectors.
  BRIDGE_ERR_VAULT_PASSWORD: spec('BRIDGE_ERR_VAULT_PASSWORD', 'the password does not open the vault', { http: 401 }),
  BRIDGE_ERR_VAULT_LOCKED: spec('BRIDGE_ERR_VAULT_LOCKED', 'the vault is not open in this session on this node: start a session with your password', { http: 409 }),
  BRIDGE_ERR_VAULT_RECOVERY: spec('BRIDGE_ERR_VAULT_RECOVERY', 'the password was reset by an administrator: give the recovery key to open the vault, or DELETE /v1/vault (linked credentials are lost without it)', { http: 409 }),
  BRIDGE_ERR_RECOVERY_KEY: spec('BRIDGE_ERR_RECOVERY_KEY', 'the recovery key does not open the vault', { http: 401 }),
  BRIDGE_ERR_LINKED_LIMIT: spec('BRIDGE_ERR_LINKED_LIMIT', 'too many linked accounts', { http: 409 }),
  BRIDGE_ERR_LINKED_NOT_FOUND: spec('BRIDGE_ERR_LINKED_NOT_FOUND', 'no such linked account', { http: 404 }),
  BRIDGE_ERR_NOT_CONNECTED: spec('BRIDGE_ERR_NOT_CONNECTED', 'the linked account is not connected', { http: 409 }),
  BRIDGE_ERR_SERVER_NOT_ALLOWED: spec('BRIDGE_ERR_SERVER_NOT_ALLOWED', 'the linked account\'s server is not one a connector may reach (loopback, private, link-local, multicast, this deployment, or --bridge-deny-servers; an operator may allow it with --bridge-allow-servers)', { http: 400 }),
  BRIDGE_ERR_TYPE_NOT_SERVED: spec('BRIDGE_ERR_TYPE_NOT_SERVED', 'no connector of this deployment serves this link type', { http: 400 }),
  BRIDGE_ERR_SIP_MEDIA_TYPE: spec('BRIDGE_ERR_SIP_MEDIA_TYPE', 'a SIP link takes MESSAGE bodies of text/plain in UTF-8 only (the answer carries Accept)', { sip: 415 }),
  BRIDGE_ERR_SIP_TOO_LARGE: spec('BRIDGE_ERR_SIP_TOO_LARGE', 'a MESSAGE body larger than a bridged IM may be (16 KiB)', { sip: 413 }),

  // Configuration.
  CONFIG_ERR_INVALID: spec('CONFIG_ERR_INVALID', 'invalid configuration'),
  CONFIG_ERR_MASTER_KEY: spec('CONFIG_ERR_MASTER_KEY', 'the signing keys in the database were sealed under another master key; give every node the same SWITCHBOARD_MASTER_KEY'),
  CONFIG_ERR_FILE_MODE: spec('CONFIG_ERR_FILE_MODE', 'a secret file in the data directory is readable by other users'),
} as const;

export type ErrorCode = keyof typeof Errors;

export function sbError(code: ErrorCode, message?: string, detail?: Record<string, unknown>): SwitchboardError {
  return new SwitchboardError(Errors[code], message, detail);
}

export function isSwitchboardError(e: unknown, code?: ErrorCode): e is SwitchboardError {
  return e instanceof SwitchboardError && (code === undefined || e.code === code);
}

/** docs/errors.md: the catalogue as a table (npm run docs:errors writes it; test/unit/errors.test.ts keeps it current). */
export function errorsDocument(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = Object.values(Errors).map((e: ErrorSpec) => `| \`${e.code}\` | ${e.sip ?? ''} | ${e.http ?? ''} | ${cell(e.message)} |`);
  return [
    '# Errors',
    '',
    '<!-- Generated from src/errors.ts by `npm run docs:errors`; do not edit by hand. -->',
    '',
    'Every error Switchboard answers with comes from one catalogue, `src/errors.ts`. A SIP rejection carries the',
    'SIP status with its standard reason phrase, followed by a detail in parentheses (`404 Not Found (domain not',
    'served here)`); an HTTP error carries the HTTP status and the body `{"error":{"code":"…","message":"…"}}`.',
    'Codes without a status are logged only (bus, configuration, storage at startup). `HTTP_ERR_REQUEST` keeps the',
    'status the HTTP framework found (400 bad JSON, 413 body too large, 415 media type).',
    '',
    '| code | SIP | HTTP | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
