// Header names (RFC 3261 §20, §7.3.3 compact forms, and the extensions Switchboard speaks).
// Every header is looked up by its *key*: the lower-case full name. Keys are constants from this table, so
// comparisons on the hot path are comparisons of interned strings.

/** Canonical spelling for serialization, by key. */
const CANONICAL: Record<string, string> = {};
/** Key by lower-case name as written (full or compact). */
const KEY_BY_LOWER = new Map<string, string>();
/**
 * Key by exact spelling: the canonical name, the key itself and the compact form. The names code passes
 * (append('WWW-Authenticate', …), set('To', …)) find their key without a toLowerCase, a new string to hash: five
 * appends to a registration's two responses.
 */
const KEY_BY_SPELLING = new Map<string, string>();

function define(canonical: string, compact?: string): string {
  const key = canonical.toLowerCase();
  CANONICAL[key] = canonical;
  KEY_BY_LOWER.set(key, key);
  KEY_BY_SPELLING.set(canonical, key);
  KEY_BY_SPELLING.set(key, key);
  if (compact) {
    KEY_BY_LOWER.set(compact, key);
    KEY_BY_SPELLING.set(compact, key);
  }
  return key;
}

export const H = {
  accept: define('Accept'),
  acceptContact: define('Accept-Contact', 'a'),
  acceptEncoding: define('Accept-Encoding'),
  acceptLanguage: define('Accept-Language'),
  alertInfo: define('Alert-Info'),
  allow: define('Allow'),
  allowEvents: define('Allow-Events', 'u'),
  authenticationInfo: define('Authentication-Info'),
  authorization: define('Authorization'),
  callId: define('Call-ID', 'i'),
  callInfo: define('Call-Info'),
  contact: define('Contact', 'm'),
  contentDisposition: define('Content-Disposition'),
  contentEncoding: define('Content-Encoding', 'e'),
  contentLanguage: define('Content-Language'),
  contentLength: define('Content-Length', 'l'),
  contentType: define('Content-Type', 'c'),
  cseq: define('CSeq'),
  date: define('Date'),
  errorInfo: define('Error-Info'),
  event: define('Event', 'o'),
  expires: define('Expires'),
  flowTimer: define('Flow-Timer'),
  from: define('From', 'f'),
  identity: define('Identity', 'y'),
  identityInfo: define('Identity-Info', 'n'),
  inReplyTo: define('In-Reply-To'),
  maxForwards: define('Max-Forwards'),
  mimeVersion: define('MIME-Version'),
  minExpires: define('Min-Expires'),
  organization: define('Organization'),
  path: define('Path'),
  priority: define('Priority'),
  proxyAuthenticate: define('Proxy-Authenticate'),
  proxyAuthorization: define('Proxy-Authorization'),
  proxyRequire: define('Proxy-Require'),
  recordRoute: define('Record-Route'),
  referTo: define('Refer-To', 'r'),
  referredBy: define('Referred-By', 'b'),
  rejectContact: define('Reject-Contact', 'j'),
  replyTo: define('Reply-To'),
  requestDisposition: define('Request-Disposition', 'd'),
  require: define('Require'),
  retryAfter: define('Retry-After'),
  route: define('Route'),
  server: define('Server'),
  serviceRoute: define('Service-Route'),
  sessionExpires: define('Session-Expires', 'x'),
  sipETag: define('SIP-ETag'),
  sipIfMatch: define('SIP-If-Match'),
  subject: define('Subject', 's'),
  subscriptionState: define('Subscription-State'),
  supported: define('Supported', 'k'),
  timestamp: define('Timestamp'),
  to: define('To', 't'),
  unsupported: define('Unsupported'),
  userAgent: define('User-Agent'),
  via: define('Via', 'v'),
  warning: define('Warning'),
  wwwAuthenticate: define('WWW-Authenticate'),
} as const;

/** The key for a header name as it appeared on the wire. Unknown names key by their lower-case form. */
export function headerKey(name: string): string {
  const exact = KEY_BY_SPELLING.get(name);
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  return KEY_BY_LOWER.get(lower) ?? lower;
}

/**
 * The key for a key or a name: keys (the H.* constants) come back as they are, without lower-casing, so code that
 * passes keys pays one set lookup.
 */
export function keyOf(nameOrKey: string): string {
  return KEYS.has(nameOrKey) ? nameOrKey : headerKey(nameOrKey);
}

const KEYS = new Set<string>(Object.values(H));

/** The spelling to put on the wire for a key (unknown headers keep the spelling they were given). */
export function canonicalName(key: string): string | undefined {
  return CANONICAL[key];
}

/**
 * Headers whose values are comma-separated lists (RFC 3261 §7.3.1), so one line may carry several values and
 * several lines may be combined. Authorization-type headers are not lists even though they contain commas.
 */
const LIST_HEADERS = new Set<string>([
  H.accept, H.acceptEncoding, H.acceptLanguage, H.alertInfo, H.allow, H.allowEvents, H.callInfo, H.contact,
  H.contentEncoding, H.contentLanguage, H.errorInfo, H.inReplyTo, H.path, H.proxyRequire, H.recordRoute,
  H.require, H.route, H.serviceRoute, H.supported, H.unsupported, H.via, H.warning,
]);

export function isListHeader(key: string): boolean {
  return LIST_HEADERS.has(key);
}
