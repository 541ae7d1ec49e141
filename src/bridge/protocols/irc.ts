// The IRC link: one linked IRC account over irc-framework (the maintained IRC client library). It connects (TLS
// when asked), authenticates the way the account's options say (server PASS, SASL PLAIN, or NickServ IDENTIFY after
// registration), joins the option's channels, turns queries and channel messages into IncomingIm and sends paced,
// bounded, CR/LF-free PRIVMSG lines. It never reconnects by itself: the connector runtime owns retries and backoff,
// so a refused credential stays refused (no retry storm).

import { Client, type ClientOptions, type MessageEvent } from 'irc-framework';
import { isIP } from 'node:net';
import type { IncomingIm, LinkCredential, LinkEvents, LinkState, ProtocolFactory, ProtocolLink } from '../protocol.ts';
import { bodyToLines, CHANNEL, ircToText, NICK, parseAddress, textBudget } from './irc-text.ts';
import { SendPacer } from './send-pacer.ts';

export type IrcAuth = 'none' | 'pass' | 'sasl' | 'nickserv';

export interface IrcOptions {
  host: string;
  port: number;
  tls: boolean;
  tlsVerify: boolean;
  auth: IrcAuth;
  channels: string[];
  burst: number;
  intervalMs: number;
  registerTimeoutMs: number;
}

const MAX_CHANNELS = 20;
/** A server's longest line with IRCv3 tags is 8191 + 512 bytes; twice that without a line feed is not IRC. */
const MAX_UNTERMINATED_BYTES = 16 * 1024;
/** What may wait in the pacer: four full-size bodies. */
const MAX_QUEUED = 4 * 16 * 1024;
const HOST = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$/;
const KNOWN = new Set(['tls', 'tls_verify', 'auth', 'channels', 'send_burst', 'send_interval_ms', 'register_timeout_ms']);

function int(v: unknown, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new RangeError(`option ${name}: an integer ${min}..${max}`);
  return v;
}

function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new RangeError(`option ${name}: true or false`);
  return v;
}

/** The account's server, nick and options, checked; throws a RangeError saying what is wrong. */
export function parseIrcCredential(c: LinkCredential): IrcOptions {
  const o = c.options ?? {};
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new RangeError(`unknown IRC option ${JSON.stringify(k).slice(0, 40)}`);
  if (!NICK.test(c.username)) throw new RangeError('username: an IRC nick (RFC 2812 §2.3.1, at most 30 characters)');
  const tls = bool(o.tls, 'tls', false);
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(c.server);
  const host = m ? (m[1] ?? m[2]) : '';
  if (!m || !(HOST.test(host) || isIP(host))) throw new RangeError('server: host or host:port');
  const port = m[3] === undefined ? (tls ? 6697 : 6667) : Number(m[3]);
  if (port < 1 || port > 65535) throw new RangeError('server: port 1..65535');
  const auth = o.auth ?? (c.password ? 'pass' : 'none');
  if (auth !== 'none' && auth !== 'pass' && auth !== 'sasl' && auth !== 'nickserv') throw new RangeError('option auth: none, pass, sasl or nickserv');
  if (auth !== 'none' && !c.password) throw new RangeError(`option auth ${auth}: needs a password`);
  if (Buffer.byteLength(c.password ?? '') > 300) throw new RangeError('password: at most 300 bytes');
  if (/[\0\r\n]/.test(c.password ?? '')) throw new RangeError('password: no NUL, CR or LF');
  if (o.channels !== undefined && typeof o.channels !== 'string') throw new RangeError('option channels: "#a,#b"');
  const channels = o.channels ? String(o.channels).split(',').map((s) => s.trim()).filter(Boolean) : [];
  if (channels.length > MAX_CHANNELS) throw new RangeError(`option channels: at most ${MAX_CHANNELS}`);
  for (const ch of channels) if (!CHANNEL.test(ch)) throw new RangeError('option channels: channel names (RFC 2812 §1.3)');
  return {
    host,
    port,
    tls,
    tlsVerify: bool(o.tls_verify, 'tls_verify', true),
    auth,
    channels,
    burst: int(o.send_burst, 'send_burst', 1, 10, 5),
    intervalMs: int(o.send_interval_ms, 'send_interval_ms', 100, 10_000, 2000),
    registerTimeoutMs: int(o.register_timeout_ms, 'register_timeout_ms', 1000, 120_000, 30_000),
  };
}

/** An ERROR before registration that names the password: ngircd says "Access denied: Bad password?" without a 464,
 *  UnrealIRCd "Password mismatch", others "Not authorized"; everything else (K-lines, throttles) is retryable. */
const REFUSED_CREDENTIAL = /password|not authori[sz]ed/i;

class IrcLink implements ProtocolLink {
  readonly #cred: LinkCredential;
  readonly #opts: IrcOptions | null;
  readonly #invalid: string | null; // why the account cannot be used, when its server, nick or options are wrong
  readonly #events: LinkEvents;
  #client: Client | null = null;
  #pacer: SendPacer | null = null;
  #registered = false;
  #ended = false; // a terminal state was emitted for the current connection
  #closing = false;
  #closedReason: string | null = null;
  #rejectConnect: ((err: Error) => void) | null = null; // while connect() is pending

  constructor(cred: LinkCredential, events: LinkEvents) {
    this.#cred = cred;
    this.#events = events;
    let opts: IrcOptions | null = null;
    let invalid: string | null = null;
    try {
      opts = parseIrcCredential(cred);
    } catch (err) {
      invalid = (err as Error).message;
    }
    this.#opts = opts;
    this.#invalid = invalid;
  }

  connect(): Promise<void> {
    if (this.#closedReason !== null) return Promise.reject(new Error(`closed: ${this.#closedReason}`));
    if (this.#client) return Promise.reject(new Error('already connected or connecting'));
    if (this.#invalid !== null || this.#opts === null) {
      // A wrong server, nick or option does not fix itself: like a refused credential, it is not retried.
      const reason = `invalid IRC account: ${this.#invalid}`;
      this.#emit({ state: 'bad_credentials', reason });
      return Promise.reject(new Error(`bad_credentials: ${reason}`));
    }
    const o = this.#opts;
    const client = new Client();
    this.#client = client;
    this.#registered = false;
    this.#ended = false;
    this.#closing = false;
    this.#emit({ state: 'connecting' });

    return new Promise<void>((resolve, reject) => {
      this.#rejectConnect = reject;
      let serverError: string | null = null;
      const fail = (s: LinkState & { reason: string }) => {
        if (this.#ended) return;
        this.#ended = true;
        clearTimeout(timer);
        this.#pacer?.close(new Error(s.reason));
        client.connection.end(undefined, true); // destroys the socket, if there is one still
        this.#teardown(client);
        this.#emit(s);
        if (!this.#registered) reject(new Error(`${s.state}: ${s.reason}`));
        this.#rejectConnect = null;
      };
      const timer = setTimeout(() => fail({ state: 'unreachable', reason: `not registered within ${o.registerTimeoutMs} ms` }), o.registerTimeoutMs);

      // irc-framework buffers a line until its LF without a bound; a server that never sends one is cut off.
      client.on('raw socket connected', (socket) => {
        let unterminated = 0;
        socket.on('data', (chunk: Buffer) => {
          const lf = chunk.lastIndexOf(0x0a);
          unterminated = lf < 0 ? unterminated + chunk.length : chunk.length - lf - 1;
          if (unterminated > MAX_UNTERMINATED_BYTES) {
            socket.destroy();
            fail({ state: 'unreachable', reason: `server sent ${unterminated} bytes without a line end` });
          }
        });
      });
      client.on('irc error', (e) => {
        if (e.error === 'password_mismatch') fail({ state: 'bad_credentials', reason: '464 password incorrect' });
        else if (e.error === 'irc') serverError = e.reason ?? 'ERROR';
      });
      client.on('sasl failed', (e) => {
        fail({ state: 'bad_credentials', reason: `SASL ${e.reason}${e.message ? `: ${e.message}` : ''}`.slice(0, 200) });
      });
      client.on('nick in use', () => fail({ state: 'unreachable', reason: `433 nick ${this.#cred.username} in use` }));
      client.on('nick invalid', () => fail({ state: 'bad_credentials', reason: `432 nick ${this.#cred.username} refused` }));
      client.on('registered', () => {
        if (this.#ended) return;
        if (o.auth === 'sasl' && !client.network.cap.isEnabled('sasl')) {
          fail({ state: 'bad_credentials', reason: 'the server offers no SASL' });
          return;
        }
        clearTimeout(timer);
        this.#registered = true;
        if (o.auth === 'nickserv') client.raw(`PRIVMSG NickServ :IDENTIFY ${this.#cred.username} ${this.#cred.password}`);
        for (const ch of o.channels) client.join(ch);
        this.#pacer = new SendPacer((line, done) => {
          if (!client.connected) return done(new Error('not connected'));
          client.connection.write(line, () => done());
        }, { burst: o.burst, intervalMs: o.intervalMs, maxQueuedBytes: MAX_QUEUED });
        this.#rejectConnect = null;
        this.#emit({ state: 'connected' });
        resolve();
      });
      client.on('privmsg', (e) => this.#incoming(client, e, false));
      client.on('action', (e) => this.#incoming(client, e, true));
      client.on('close', () => {
        if (this.#closing) return;
        const reason = serverError ?? 'connection closed';
        if (!this.#registered && serverError && REFUSED_CREDENTIAL.test(serverError)) {
          fail({ state: 'bad_credentials', reason: serverError.slice(0, 200) });
        } else {
          fail({ state: 'unreachable', reason: reason.slice(0, 200) });
        }
      });

      // Plain TCP goes to the address the connector's server policy checked (a second lookup could give another).
      // Over TLS irc-framework takes the certificate's name and SNI from `host` and offers no way to name a server
      // apart from the address dialled, so TLS dials the name again: the policy check and this lookup can differ
      // (DNS rebinding) for TLS IRC servers only (README, "IM bridge").
      const options: ClientOptions = {
        host: o.tls || !this.#cred.address ? o.host : this.#cred.address,
        port: o.port,
        nick: this.#cred.username,
        username: this.#cred.username.slice(0, 10),
        gecos: this.#cred.username,
        tls: o.tls,
        rejectUnauthorized: o.tlsVerify,
        auto_reconnect: false, // the runtime's backoff, not the library's
        version: '', // no CTCP VERSION answer: nothing about the bridge to strangers
        encoding: 'utf8',
        // An account object without credentials keeps irc-framework from offering the server password over SASL.
        account: o.auth === 'sasl' ? { account: this.#cred.username, password: this.#cred.password } : {},
        sasl_disconnect_on_fail: true,
      };
      if (o.auth === 'pass') options.password = this.#cred.password;
      client.connect(options);
    });
  }

  #incoming(client: Client, e: MessageEvent, action: boolean): void {
    if (e.from_server || !e.nick || !NICK.test(e.nick)) return;
    const text = ircToText(e.message);
    if (text === '') return;
    const body = action ? `/me ${text}` : text;
    const channel = client.network.isChannelName(e.target) && CHANNEL.test(e.target);
    const m: IncomingIm = { from: channel ? `${e.target}/${e.nick}` : e.nick, body };
    this.#events.message(m);
  }

  async send(to: string, body: string): Promise<void> {
    const client = this.#client;
    if (!client || !this.#registered || this.#ended || !this.#pacer) throw new Error('not connected');
    const address = parseAddress(to);
    if (!address) throw new RangeError('to: an IRC nick, #channel or #channel/nick');
    const text = address.addressee ? `${address.addressee}: ${body}` : body;
    const lines = bodyToLines(text, textBudget(client.user.nick, address.target));
    await this.#pacer.send(lines.map((l) => `PRIVMSG ${address.target} :${l}`));
  }

  async close(reason: string): Promise<void> {
    if (this.#closedReason === null) this.#closedReason = reason;
    const client = this.#client;
    if (!client || this.#ended) {
      this.#client = null;
      if (!this.#ended) {
        this.#ended = true;
        this.#emit({ state: 'disconnected', reason });
      }
      return;
    }
    this.#closing = true;
    this.#ended = true;
    this.#pacer?.close(new Error(`closed: ${reason}`));
    this.#rejectConnect?.(new Error(`disconnected: ${reason}`));
    this.#rejectConnect = null;
    await new Promise<void>((resolve) => {
      const done = setTimeout(resolve, 2000); // a server that does not close after QUIT is not waited for
      client.on('close', () => {
        clearTimeout(done);
        resolve();
      });
      client.quit(reason.replace(/[\0-\x1f]/g, ' ').slice(0, 100));
    });
    this.#teardown(client);
    this.#emit({ state: 'disconnected', reason });
  }

  #teardown(client: Client): void {
    client.removeAllListeners();
    if (this.#client === client) this.#client = null;
    this.#pacer = null;
  }

  #emit(s: LinkState): void {
    this.#events.state(s);
  }
}

/** The IRC ProtocolFactory. An account whose server, nick or options are not valid (parseIrcCredential, which the
 *  linked-accounts route can call to refuse it up front) reports bad_credentials on connect and is not retried. */
export const ircLink: ProtocolFactory = (credential, events) => new IrcLink(credential, events);
