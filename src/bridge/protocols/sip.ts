// The SIP link: one SIP account at another provider, held the way Kamailio's uac module holds a remote registration
// (uac_reg) or a softphone its second account. It registers a Contact of its own flow (sip-flow.ts) for
// sip:<username>@<domain> (RFC 3261 §10), answers the registrar's Digest challenge (sip-digest.ts), refreshes at half
// the lifetime granted, takes the MESSAGEs (RFC 3428) the provider routes to that Contact and sends MESSAGEs through
// the provider as that account. It never reconnects by itself: the connector runtime owns retries and backoff, so a
// refused credential stays refused (bad_credentials) and a provider that does not answer is `unreachable`.

import { randomBytes } from 'node:crypto';
import { Errors } from '../../errors.ts';
import { isSipUri, parseContactValues, SipRequest, createResponse, sipError, type SipResponse } from '../../sip/message/index.ts';
import { MAX_IM_BODY, type LinkCredential, type LinkEvents, type LinkState, type ProtocolFactory, type ProtocolLink } from '../protocol.ts';
import { parseSipAddress, parseSipCredential, type SipAccount } from './sip-account.ts';
import { DigestClient } from './sip-digest.ts';
import { SipFlow } from './sip-flow.ts';

/** Unregistering on close is best effort: a provider that does not answer soon is not waited for. */
const UNREGISTER_TIMEOUT_MS = 2000;
/** RFC 3428 §8: a MESSAGE over UDP without congestion control stays within 1300 bytes. */
const MAX_UDP_MESSAGE = 1300;
/** Never refresh more often than this, whatever lifetime a provider grants. */
const MIN_REFRESH_MS = 1000;
/** Requests the link answers 405 (RFC 3261 §8.2.1: known, not allowed here, Allow says what is); others get 501. */
const KNOWN_METHODS = new Set(['INVITE', 'BYE', 'CANCEL', 'INFO', 'NOTIFY', 'PRACK', 'PUBLISH', 'REFER', 'REGISTER', 'SUBSCRIBE', 'UPDATE']);
const ALLOW = 'MESSAGE, OPTIONS';
/** From bounds what the connector keeps of a remote address (300 characters) with room to spare. */
const MAX_FROM = 256;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

type Failure = { state: 'bad_credentials' | 'unreachable'; reason: string };
type Outcome = { ok: true; granted: number } | ({ ok: false } & Failure);

/** A reason phrase or other text of the provider's, fit for a state's reason. */
const text = (s: string) => s.replace(/[\0-\x1f\x7f]/g, ' ').slice(0, 120);
const token = () => randomBytes(12).toString('base64url');

class SipLink implements ProtocolLink {
  readonly #events: LinkEvents;
  readonly #account: SipAccount | null;
  readonly #invalid: string | null; // why the account cannot be used, when its server, user or options are wrong
  readonly #credential: LinkCredential;
  readonly #digest: DigestClient | null;
  /** RFC 3261 §10.2.4: every REGISTER of this link (refreshes, the removal) has the same Call-ID, CSeq counting up. */
  readonly #callId = token();
  readonly #fromTag = token();
  /** The user part of our Contact: random, so a request for it names this link's registration and nothing else. */
  readonly #contactUser = `sb-${randomBytes(8).toString('hex')}`;
  #cseq = 0;
  /** The realm the registrar challenged in (else our domain): the only one a MESSAGE's challenge is answered for. */
  #realm: string | null = null;
  #flow: SipFlow | null = null;
  #contact = '';
  #started = false;
  #registered = false;
  #ended = false; // a terminal state (bad_credentials, unreachable) was emitted
  #disconnected = false;
  #closedReason: string | null = null;
  #refresh: NodeJS.Timeout | null = null;

  constructor(credential: LinkCredential, events: LinkEvents) {
    this.#credential = credential;
    this.#events = events;
    let account: SipAccount | null = null;
    let invalid: string | null = null;
    try {
      account = parseSipCredential(credential);
    } catch (err) {
      invalid = (err as Error).message;
    }
    this.#account = account;
    this.#invalid = invalid;
    this.#digest = account ? new DigestClient(account.authUsername, credential.password) : null;
  }

  async connect(): Promise<void> {
    if (this.#closedReason !== null) throw new Error(`closed: ${this.#closedReason}`);
    if (this.#started) throw new Error('already connected or connecting');
    this.#started = true;
    const a = this.#account;
    if (a === null) {
      // A wrong server, user or option does not fix itself: like a refused credential, it is not retried.
      return this.#failConnect({ state: 'bad_credentials', reason: `invalid SIP account: ${this.#invalid}` });
    }
    this.#emit({ state: 'connecting' });
    let flow: SipFlow;
    try {
      flow = await SipFlow.open({ transport: a.transport, address: this.#credential.address, port: a.port, host: a.host, tlsVerify: a.tlsVerify });
    } catch (err) {
      return this.#failConnect({ state: 'unreachable', reason: `cannot reach ${a.host}:${a.port} over ${a.transport}: ${text((err as Error).message)}` });
    }
    if (this.#closedReason !== null) {
      flow.close();
      throw new Error(`closed: ${this.#closedReason}`);
    }
    this.#flow = flow;
    flow.onRequest = (req) => this.#incoming(flow, req);
    flow.onDown = (reason) => this.#fail({ state: 'unreachable', reason });
    const transport = a.transport === 'udp' ? '' : `;transport=${a.transport}`;
    this.#contact = `<sip:${this.#contactUser}@${flow.localHost}:${flow.localPort}${transport}>`;
    const outcome = await this.#register(a.expires);
    if (this.#closedReason !== null) throw new Error(`closed: ${this.#closedReason}`);
    if (!outcome.ok) return this.#failConnect(outcome);
    if (this.#ended) throw new Error('the flow to the provider went down');
    this.#registered = true;
    this.#realm = this.#digest!.registrarRealm() ?? a.domain;
    this.#emit({ state: 'connected' });
    this.#schedule(outcome.granted);
  }

  /**
   * One registration exchange (RFC 3261 §10.2): REGISTER with our credentials if we have a challenge, a 401/407
   * answered once (again only when the server says the nonce was stale), 423 raised to its Min-Expires once.
   * `expires` 0 removes our binding (§10.2.2).
   */
  async #register(expires: number, timeoutMs?: number): Promise<Outcome> {
    const a = this.#account!;
    let answered = false;
    let raised = false;
    for (let round = 0; round < 4; round++) {
      const flow = this.#flow;
      if (!flow || (expires > 0 && this.#closedReason !== null)) return { ok: false, state: 'unreachable', reason: 'closed' };
      const req = this.#request('REGISTER', `sip:${a.domain}`, `<${a.aor}>`, this.#callId, ++this.#cseq, this.#fromTag);
      req.append('Contact', this.#contact);
      req.append('Expires', String(expires));
      this.#digest!.authorize(req);
      let res: SipResponse;
      try {
        res = await flow.request(req, { timeoutMs });
      } catch (err) {
        return { ok: false, state: 'unreachable', reason: text((err as Error).message) };
      }
      const status = `REGISTER: ${res.status} ${text(res.reason)}`;
      if (res.status >= 200 && res.status < 300) return { ok: true, granted: this.#granted(res, expires) };
      if (res.status === 401 || res.status === 407) {
        const learned = this.#digest!.learn(res);
        if (!learned.ok) return { ok: false, state: 'bad_credentials', reason: `${status}: ${learned.reason}` };
        // A second challenge for an answer to the first is a refusal of the password (RFC 3261 §22.2), unless the
        // server says only the nonce was too old (RFC 7616 §3.3 stale=true).
        if (answered && !learned.stale) return { ok: false, state: 'bad_credentials', reason: `${status}: the provider refused the credentials` };
        answered = true;
        continue;
      }
      if (res.status === 423 && !raised) {
        // §10.3 step 7: too brief; Min-Expires says what the registrar takes (within our own bound).
        const min = Number(res.get('Min-Expires'));
        if (Number.isInteger(min) && min > expires && min <= 3600) {
          raised = true;
          expires = min;
          continue;
        }
      }
      // 403: this user may not register here; 404: no such user at the provider. Neither changes by retrying.
      if (res.status === 403 || res.status === 404) return { ok: false, state: 'bad_credentials', reason: status };
      return { ok: false, state: 'unreachable', reason: status };
    }
    return { ok: false, state: 'unreachable', reason: 'REGISTER: challenged again and again' };
  }

  /** The lifetime the registrar granted our Contact (§10.2.4: its expires parameter, else Expires), in seconds. */
  #granted(res: SipResponse, requested: number): number {
    const contacts = parseContactValues(res);
    const ours = Array.isArray(contacts) ? contacts.find((c) => isSipUri(c.uri) && c.uri.user === this.#contactUser) : undefined;
    const value = Number(ours?.params.get('expires') ?? res.get('Expires'));
    return Number.isInteger(value) && value > 0 ? Math.min(value, requested) : requested;
  }

  /** Re-registers at half the lifetime granted, as softphones and uac_reg do: the binding never lapses in between. */
  #schedule(granted: number): void {
    this.#refresh = setTimeout(() => {
      this.#refresh = null;
      void this.#register(this.#account!.expires).then((outcome) => {
        if (this.#closedReason !== null || this.#ended) return;
        if (outcome.ok) this.#schedule(outcome.granted);
        else this.#fail(outcome);
      });
    }, Math.max(MIN_REFRESH_MS, (granted * 1000) / 2));
    this.#refresh.unref();
  }

  /** A request of ours, headers in RFC 3261 §8.1.1's order; the flow fills in the Via. */
  #request(method: string, uri: string, to: string, callId: string, cseq: number, fromTag: string): SipRequest {
    const req = new SipRequest(method, uri);
    req.append('Via', '');
    req.append('Max-Forwards', '70');
    req.append('From', `<${this.#account!.aor}>;tag=${fromTag}`);
    req.append('To', to);
    req.append('Call-ID', callId);
    req.append('CSeq', `${cseq} ${method}`);
    return req;
  }

  /** A request the provider sent us: MESSAGE and OPTIONS are served, the rest refused as §8.2.1 says. */
  #incoming(flow: SipFlow, req: SipRequest): void {
    if (req.method === 'MESSAGE') return this.#message(flow, req);
    if (req.method === 'OPTIONS') {
      const res = createResponse(req, 200);
      res.append('Allow', ALLOW);
      res.append('Accept', 'text/plain');
      return flow.respond(req, res);
    }
    if (!KNOWN_METHODS.has(req.method)) return flow.respond(req, sipError(req, Errors.SIP_ERR_NOT_IMPLEMENTED, `${req.method.slice(0, 20)} not implemented`));
    const res = sipError(req, Errors.SIP_ERR_METHOD_NOT_ALLOWED);
    res.append('Allow', ALLOW);
    flow.respond(req, res);
  }

  /** RFC 3428 §7: a MESSAGE for our Contact, text/plain in UTF-8, answered 200 and handed on as an IncomingIm. */
  #message(flow: SipFlow, req: SipRequest): void {
    const ruri = req.requestUri();
    const a = this.#account!;
    const forUs = ruri !== null && isSipUri(ruri) && (ruri.user === this.#contactUser || `sip:${ruri.user}@${ruri.host.toLowerCase()}` === a.aor);
    if (!forUs) return flow.respond(req, sipError(req, Errors.REG_ERR_UNKNOWN_AOR, 'not this link\u2019s contact'));
    const from = req.from()!.uri;
    const sender = isSipUri(from) && from.user ? `${from.user}@${from.host.toLowerCase()}` : null;
    if (sender === null || sender.length > MAX_FROM) return flow.respond(req, sipError(req, Errors.SIP_ERR_HEADER_SYNTAX, 'From: a SIP URI with a user'));
    const type = mediaType(req.get('Content-Type'));
    if (req.body.length === 0 || type === null) return flow.respond(req, sipError(req, Errors.MSG_ERR_BODY));
    if (type.type !== 'text/plain' || !['utf-8', 'us-ascii'].includes(type.charset) || req.has('Content-Encoding')) {
      const res = sipError(req, Errors.BRIDGE_ERR_SIP_MEDIA_TYPE);
      res.append('Accept', 'text/plain');
      return flow.respond(req, res);
    }
    if (req.body.length > MAX_IM_BODY) return flow.respond(req, sipError(req, Errors.BRIDGE_ERR_SIP_TOO_LARGE, `at most ${MAX_IM_BODY} bytes`));
    let body: string;
    try {
      body = UTF8.decode(req.body);
    } catch {
      // Not replaced with U+FFFD: three bytes for each bad one could take the text past what the runtime keeps.
      return flow.respond(req, sipError(req, Errors.BRIDGE_ERR_SIP_MEDIA_TYPE, 'the body is not UTF-8'));
    }
    flow.respond(req, createResponse(req, 200));
    this.#events.message({ from: sender, body, remoteId: req.callId()!.slice(0, 128) });
  }

  async send(to: string, body: string): Promise<void> {
    if (!this.#flow || !this.#registered || this.#ended || this.#closedReason !== null) throw new Error('not connected');
    const uri = parseSipAddress(to);
    if (uri === null) throw new RangeError('to: user@host or sip:user@host');
    const bytes = Buffer.from(body, 'utf8');
    if (bytes.length === 0 || bytes.length > MAX_IM_BODY) throw new RangeError(`body: 1..${MAX_IM_BODY} bytes`);
    const callId = token();
    const fromTag = token();
    let answered = false;
    for (let cseq = 1; cseq <= 4; cseq++) {
      const flow = this.#flow;
      if (!flow) throw new Error('not connected');
      // RFC 3428 §4: no Contact (a MESSAGE makes no dialog); the provider routes it on from its Request-URI.
      const req = this.#request('MESSAGE', uri, `<${uri}>`, callId, cseq, fromTag);
      req.append('Content-Type', 'text/plain;charset=utf-8');
      req.body = bytes;
      this.#digest!.authorize(req);
      const res = await flow.request(req, { maxUdpBytes: MAX_UDP_MESSAGE });
      if (res.status >= 200 && res.status < 300) return;
      const status = `${res.status} ${text(res.reason)}`;
      if (res.status !== 401 && res.status !== 407) throw new Error(status);
      const learned = this.#digest!.learn(res, this.#realm);
      if (!learned.ok) throw new Error(`${status}: ${learned.reason}`);
      if (answered && !learned.stale) throw new Error(`${status}: the provider refused the credentials`);
      answered = true;
    }
    throw new Error('MESSAGE: challenged again and again');
  }

  async close(reason: string): Promise<void> {
    if (this.#closedReason !== null) return;
    this.#closedReason = reason;
    if (this.#refresh) clearTimeout(this.#refresh);
    this.#refresh = null;
    const flow = this.#flow;
    // §10.2.2: Expires 0 for our Contact removes the binding now, rather than at its expiry.
    if (flow && this.#registered && !this.#ended) await this.#register(0, UNREGISTER_TIMEOUT_MS);
    this.#teardown();
    this.#emitDisconnected(reason);
  }

  #failConnect(f: Failure): never {
    this.#fail(f);
    throw new Error(`${f.state}: ${f.reason}`);
  }

  /** The link cannot go on (refused, or the provider unreachable): reported once; the runtime decides what next. */
  #fail(f: Failure): void {
    if (this.#ended || this.#closedReason !== null) return;
    this.#ended = true;
    if (this.#refresh) clearTimeout(this.#refresh);
    this.#refresh = null;
    this.#teardown();
    this.#emit(f);
  }

  #teardown(): void {
    this.#registered = false;
    this.#flow?.close();
    this.#flow = null;
  }

  #emitDisconnected(reason: string): void {
    if (this.#disconnected) return;
    this.#disconnected = true;
    this.#emit({ state: 'disconnected', reason });
  }

  #emit(s: LinkState): void {
    this.#events.state(s);
  }
}

/** `type/subtype` lower-case and the charset (default utf-8, RFC 3428 §9 leans on RFC 3261's UTF-8 default). */
function mediaType(v: string | undefined): { type: string; charset: string } | null {
  if (v === undefined || v.length > 256) return null;
  const [type, ...params] = v.split(';').map((p) => p.trim().toLowerCase());
  if (!/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type)) return null;
  const charset = params.find((p) => p.startsWith('charset='))?.slice(8).replace(/^"(.*)"$/, '$1') ?? 'utf-8';
  return { type, charset };
}

/** The SIP ProtocolFactory. An account whose server, user or options are not valid (parseSipCredential) reports
 *  bad_credentials on connect and is not retried. */
export const sipLink: ProtocolFactory = (credential, events) => new SipLink(credential, events);
