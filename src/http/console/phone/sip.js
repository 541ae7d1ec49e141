// The softphone's SIP side, on SIP.js (ES modules served from node_modules at /ui/vendor/sip.js/): a user agent
// over WSS that REGISTERs, SUBSCRIBEs to buddies' presence and PUBLISHes our own, sends and takes text MESSAGEs,
// and makes and answers one audio call at a time through the proxy, every request carrying the access token as a Bearer credential (RFC 8898).
//
// SIP.js has no Bearer option, so a Transport subclass adds the header to each request it sends, with the
// session's current token: refreshes of the registration, of subscriptions (in-dialog, where SIP.js takes no
// extra headers) and of the publication all carry a valid token after the access token was renewed.

import {
  Invitation, Inviter, Messager, Publisher, PublisherState, Registerer, RegistererState, SessionState, Subscriber, SubscriptionState, UserAgent, version, Web,
} from '/ui/vendor/sip.js/index.js';
import { buildPidf, parsePidf } from './pidf.js';

const AUTHENTICATED = /^(REGISTER|SUBSCRIBE|PUBLISH|MESSAGE|OPTIONS|INVITE|REFER) /;
/** Requests the server handles as a proxy: it reads their credential from Proxy-Authorization (RFC 3261 §22.3). */
const PROXIED = /^(INVITE|MESSAGE) /;
/** No STUN or TURN: the pages and their peers share a network here, and SIP.js's default STUN server is elsewhere. */
const PEER_CONNECTION = { iceServers: [] };

/**
 * The request with `Authorization: Bearer` (`Proxy-Authorization` for an INVITE or MESSAGE) after its request line;
 * responses, ACK, CANCEL and in-dialog BYE pass unchanged (the proxy follows its own Record-Route for those).
 */
export function withBearer(message, token) {
  if (!token || !AUTHENTICATED.test(message)) return message;
  const headEnd = message.indexOf('\r\n\r\n');
  if (/\r\n(Authorization|Proxy-Authorization)\s*:/i.test(message.slice(0, headEnd < 0 ? undefined : headEnd))) return message;
  const eol = message.indexOf('\r\n');
  const header = PROXIED.test(message) ? 'Proxy-Authorization' : 'Authorization';
  return `${message.slice(0, eol + 2)}${header}: Bearer ${token}\r\n${message.slice(eol + 2)}`;
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
   *           onPresence: (buddy: string, state: object|null, phase: string) => void, onPublish: (s: string) => void,
   *           onCall: (c: { state: string, peer: string|null, direction: string|null, media: string|null, stream: MediaStream|null }) => void,
   *           onMessage?: (m: { from: string, body: string, contentType: string, inboxId?: string }) => void }} o
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
      sessionDescriptionHandlerFactoryOptions: { peerConnectionConfiguration: PEER_CONNECTION, iceGatheringTimeout: 2000 },
      delegate: {
        onConnect: () => this.onConnect(),
        onDisconnect: (error) => this.onDisconnect(error),
        onInvite: (invitation) => this.onInvite(invitation),
        onMessage: (message) => this.onMessage(message),
      },
    });
    /** The one call (an Inviter or an Invitation), and what the page is shown of it. */
    this.session = null;
    this.call = { state: 'idle', peer: null, direction: null, media: null, stream: null };
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

  /** Calls `target` (user@domain): audio only, answered or refused as the callee decides. */
  async dial(target) {
    if (this.session) throw new Error('already in a call');
    const uri = UserAgent.makeURI(`sip:${target}`);
    if (!uri) throw new Error(`${target} is not a SIP address`);
    const inviter = new Inviter(this.ua, uri, { sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } });
    this.track(inviter, target, 'outgoing');
    await inviter.invite({
      requestDelegate: { onReject: (r) => this.report({ state: `refused: ${r.message.statusCode} ${r.message.reasonPhrase}` }) },
    });
  }

  /** An INVITE for us: it rings, unless a call is already up (486, one call at a time). */
  onInvite(invitation) {
    if (this.session) {
      invitation.reject({ statusCode: 486 }).catch(() => {});
      return;
    }
    const from = invitation.remoteIdentity.uri;
    this.track(invitation, `${from.user}@${from.host}`, 'incoming');
    this.report({ state: 'ringing' });
  }

  /** A SIP MESSAGE for us (RFC 3428): text is shown, anything else is refused with 415. */
  onMessage(message) {
    const r = message.request;
    const type = (r.getHeader('Content-Type') ?? 'text/plain').split(';')[0].trim().toLowerCase();
    if (type !== 'text/plain' || !this.o.onMessage) {
      message.reject({ statusCode: 415, extraHeaders: ['Accept: text/plain'] }).catch(() => {});
      return;
    }
    message.accept().catch(() => {});
    // A stored message's Call-ID names its inbox id (`<id>@inbox`): the same message read from the inbox is not shown twice.
    const inboxId = /^([A-Za-z0-9_-]{1,64})@inbox$/.exec(r.callId)?.[1];
    this.o.onMessage({ from: `${r.from.uri.user}@${r.from.uri.host}`, body: r.body ?? '', contentType: type, inboxId });
  }

  /** Sends text as a SIP MESSAGE through the proxy; resolves with 'delivered' (2xx from a device) or 'stored' (202). */
  async message(target, text) {
    const uri = UserAgent.makeURI(`sip:${target}`);
    if (!uri) throw new Error(`${target} is not a SIP address`);
    return new Promise((resolve, reject) => {
      const m = new Messager(this.ua, uri, text, 'text/plain;charset=utf-8');
      m.message({
        requestDelegate: {
          onAccept: (r) => resolve(r.message.statusCode === 202 ? 'stored' : 'delivered'),
          onReject: (r) => reject(new Error(`${r.message.statusCode} ${r.message.reasonPhrase}`)),
        },
      }).catch(reject);
    });
  }

  async answer() {
    if (!(this.session instanceof Invitation) || this.session.state !== SessionState.Initial) return;
    await this.session.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } });
  }

  /** Ends the call whatever its phase: CANCEL before an answer, 486 to a ringing call, BYE once up. */
  async hangUp() {
    const s = this.session;
    if (!s) return;
    if (s.state === SessionState.Established) await s.bye();
    else if (s instanceof Inviter) await s.cancel();
    else if (s.state === SessionState.Initial) await s.reject({ statusCode: 486 });
  }

  track(session, peer, direction) {
    this.session = session;
    this.report({ state: direction === 'outgoing' ? 'calling' : 'ringing', peer, direction, media: null, stream: null });
    session.delegate = {
      // The peer connection exists from here on: its state is the media's (ICE and DTLS) as the page shows it.
      onSessionDescriptionHandler: (sdh) => {
        const pc = sdh.peerConnection;
        const update = () => this.report({ media: pc.connectionState, stream: sdh.remoteMediaStream });
        pc.addEventListener('connectionstatechange', update);
        update();
      },
    };
    session.stateChange.addListener((s) => {
      if (this.session !== session) return;
      if (s === SessionState.Established) this.report({ state: 'in call' });
      if (s === SessionState.Terminated) {
        this.session = null;
        const refused = this.call.state.startsWith('refused');
        this.report({ state: refused ? this.call.state : 'ended', stream: null });
      }
    });
  }

  report(change) {
    this.call = { ...this.call, ...change };
    this.o.onCall?.(this.call);
  }

  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    await this.hangUp().catch(() => {});
    for (const b of [...this.subscribers.keys()]) this.unwatch(b);
    await this.publisher?.unpublish().catch(() => {});
    await this.registerer.unregister().catch(() => {});
    await this.ua.stop().catch(() => {});
  }
}
