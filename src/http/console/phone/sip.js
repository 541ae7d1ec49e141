// The softphone's SIP side, on SIP.js (ES modules served from node_modules at /ui/vendor/sip.js/): a user agent
// over WSS that REGISTERs, SUBSCRIBEs to buddies' presence and PUBLISHes our own, every request carrying
// `Authorization: Bearer <access token>` (RFC 8898).
//
// SIP.js has no Bearer option, so a Transport subclass adds the header to each request it sends, with the
// session's current token: refreshes of the registration, of subscriptions (in-dialog, where SIP.js takes no
// extra headers) and of the publication all carry a valid token after the access token was renewed.

import { Publisher, PublisherState, Registerer, RegistererState, Subscriber, SubscriptionState, UserAgent, version, Web } from '/ui/vendor/sip.js/index.js';
import { buildPidf, parsePidf } from './pidf.js';

const AUTHENTICATED = /^(REGISTER|SUBSCRIBE|PUBLISH|MESSAGE|OPTIONS|INVITE|REFER) /;

/** The request with `Authorization: Bearer` after its request line (responses and ACK/CANCEL pass unchanged). */
export function withBearer(message, token) {
  if (!token || !AUTHENTICATED.test(message)) return message;
  const headEnd = message.indexOf('\r\n\r\n');
  if (/\r\n(Authorization|Proxy-Authorization)\s*:/i.test(message.slice(0, headEnd < 0 ? undefined : headEnd))) return message;
  const eol = message.indexOf('\r\n');
  return `${message.slice(0, eol + 2)}Authorization: Bearer ${token}\r\n${message.slice(eol + 2)}`;
}

function bearerTransport(getToken) {
  return class BearerTransport extends Web.Transport {
    send(message) {
      return super.send(withBearer(message, getToken()));
    }
  };
}

export class Phone {
  /**
   * @param {{ aor: string, server: string, token: () => string, onRegistration: (s: string) => void,
   *           onPresence: (buddy: string, state: object|null, phase: string) => void, onPublish: (s: string) => void }} o
   */
  constructor(o) {
    this.o = o;
    this.subscribers = new Map();
    this.tupleId = `web-${Math.random().toString(36).slice(2, 10)}`;
    this.ua = new UserAgent({
      uri: UserAgent.makeURI(`sip:${o.aor}`),
      transportConstructor: bearerTransport(o.token),
      transportOptions: { server: o.server, traceSip: false },
      // SIP.js logs whole messages at "log" level: the Authorization header must not reach the console.
      logLevel: 'warn',
      userAgentString: `Switchboard softphone (SIP.js ${version})`,
      delegate: {
        onConnect: () => this.onConnect(),
        onDisconnect: (error) => this.onDisconnect(error),
      },
    });
    this.stopping = false;
    this.retries = 0;
    this.registerer = new Registerer(this.ua, { expires: 600 });
    this.registerer.stateChange.addListener((s) => {
      o.onRegistration(s === RegistererState.Registered ? 'registered' : s === RegistererState.Unregistered ? 'unregistered' : s.toLowerCase());
    });
    this.publisher = null;
  }

  async start() {
    this.o.onRegistration('connecting');
    await this.ua.start();
  }

  /** (Re)connected: register and (re)subscribe. */
  async onConnect() {
    try {
      await this.registerer.register({
        requestDelegate: { onReject: (r) => this.o.onRegistration(`refused: ${r.message.statusCode} ${r.message.reasonPhrase}`) },
      });
    } catch (e) {
      this.o.onRegistration(`failed: ${e.message}`);
    }
    for (const buddy of [...this.subscribers.keys()]) this.watch(buddy, true);
  }

  /** The WebSocket dropped (not by us): reconnect with backoff (SIP.js leaves reconnection to the application). */
  onDisconnect(error) {
    this.o.onRegistration('disconnected');
    if (this.stopping || !error) return;
    const delay = Math.min(30, 2 ** this.retries++) * 1000;
    setTimeout(() => {
      if (!this.stopping) this.ua.reconnect().then(() => (this.retries = 0), (e) => this.onDisconnect(e));
    }, delay);
  }

  /** SUBSCRIBE to a buddy's presence; every NOTIFY reports its state (null while pending). */
  watch(buddy, again = false) {
    if (this.subscribers.has(buddy) && !again) return;
    this.subscribers.get(buddy)?.dispose().catch(() => {});
    const target = UserAgent.makeURI(`sip:${buddy}`);
    if (!target) throw new Error(`${buddy} is not a SIP address`);
    const sub = new Subscriber(this.ua, target, 'presence', { expires: 600, extraHeaders: ['Accept: application/pidf+xml'] });
    sub.delegate = {
      onNotify: (n) => {
        n.accept();
        const state = n.request.getHeader('Subscription-State') ?? '';
        const body = n.request.body;
        this.o.onPresence(buddy, body ? parsePidf(body) : null, state.split(';')[0].trim() || 'active');
      },
    };
    sub.stateChange.addListener((s) => {
      if (s !== SubscriptionState.Terminated || this.subscribers.get(buddy) !== sub) return;
      // Ended by the server (expired, rejected, restarted): try again a little later.
      this.o.onPresence(buddy, null, 'terminated');
      setTimeout(() => this.subscribers.get(buddy) === sub && this.ua.isConnected() && this.watch(buddy, true), 5000);
    });
    this.subscribers.set(buddy, sub);
    if (this.ua.isConnected()) sub.subscribe().catch((e) => this.o.onPresence(buddy, null, `failed: ${e.message}`));
  }

  unwatch(buddy) {
    const sub = this.subscribers.get(buddy);
    this.subscribers.delete(buddy);
    sub?.unsubscribe().catch(() => {});
  }

  /** PUBLISH our own state (RFC 3903): a tuple for this device with the activity and note. */
  async setStatus({ basic, activity, note }) {
    this.publisher ??= this.newPublisher();
    await this.publisher.publish(buildPidf(`sip:${this.o.aor}`, this.tupleId, { basic, activity, note }));
  }

  newPublisher() {
    const p = new Publisher(this.ua, UserAgent.makeURI(`sip:${this.o.aor}`), 'presence', { expires: 600, contentType: 'application/pidf+xml' });
    p.stateChange.addListener((s) => {
      this.o.onPublish(s === PublisherState.Published ? 'published' : s.toLowerCase());
      if (s === PublisherState.Terminated && this.publisher === p) this.publisher = null;
    });
    return p;
  }

  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    for (const b of [...this.subscribers.keys()]) this.unwatch(b);
    await this.publisher?.unpublish().catch(() => {});
    await this.registerer.unregister().catch(() => {});
    await this.ua.stop().catch(() => {});
  }
}
