// A raw SIP device for messaging tests over one UDP socket: it REGISTERs with Digest and records every MESSAGE
// transaction it receives (once each, retransmissions dropped) without answering, so a test decides when and how
// each is answered, e.g. holding a 200 while it re-REGISTERs (test/messaging/delivery-race.test.ts).
import assert from 'node:assert/strict';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from './sip-client.ts';
import { parseMsg, reply, type Msg } from './sip-ua.ts';

/** A device on one UDP socket: REGISTERs, and records every MESSAGE transaction it receives (by Via branch). */
export class MessageDevice {
  readonly messages: Msg[] = [];
  private readonly branches = new Set<string>();
  private readonly responses: Array<(m: Msg) => void> = [];
  private readonly arrivals: Array<() => void> = [];
  private cseq = 1;
  private readonly callId = `reg-${Math.random().toString(36).slice(2)}@test`;
  private readonly c: SipTestClient;
  private readonly domain: string;
  private constructor(c: SipTestClient, domain: string) {
    this.c = c;
    this.domain = domain;
  }

  /** `domain`: the realm it registers in. */
  static async open(port: number, domain: string): Promise<MessageDevice> {
    const d = new MessageDevice(await SipTestClient.open('UDP', port), domain);
    void d.pump();
    return d;
  }

  private async pump(): Promise<void> {
    for (;;) {
      let m: Msg;
      try {
        m = parseMsg(await this.c.next(600_000));
      } catch {
        return; // closed
      }
      if (!m.isRequest) this.responses.shift()?.(m);
      else if (m.method === 'MESSAGE') {
        const branch = /;branch=([^;\s,]+)/.exec(m.header('Via')!)![1];
        if (this.branches.has(branch)) continue; // a retransmission (Timer E) of one we have
        this.branches.add(branch);
        this.messages.push(m);
        for (const w of this.arrivals.splice(0)) w();
      }
    }
  }

  /** Transactions with this Call-ID received so far. */
  count(callId: string): number {
    return this.messages.filter((m) => m.header('Call-ID') === callId).length;
  }

  /** Resolves when `pred` holds of the MESSAGEs received; rejects after `ms`. */
  async until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.arrivals.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Answers a received MESSAGE to where it came from (the top Via: over UDP each node sends from its own port). */
  answer(m: Msg, status: number): void {
    const port = /^SIP\/2\.0\/UDP [^:;\s]+:(\d+)/i.exec(m.header('Via')!)![1];
    this.c.sendTo(reply(m, status), Number(port));
  }

  close(): void {
    this.c.close();
  }

  private request(raw: string): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no response to REGISTER')), 10_000);
      this.responses.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
      this.c.send(raw);
    });
  }

  /** REGISTER (or refresh) with Digest; the final status. */
  async register(user: string, password: string): Promise<number> {
    const spec = { method: 'REGISTER', uri: `sip:${this.domain}`, from: `<sip:${user}@${this.domain}>`, to: `<sip:${user}@${this.domain}>`, callId: this.callId, contact: `<sip:${user}@127.0.0.1:${this.c.localPort}>` };
    const first = await this.request(buildRequest(this.c, { ...spec, cseq: this.cseq++, headers: [['Expires', '600']] }));
    if (first.status !== 401) return first.status;
    const auth = digestAuthorization(parseChallenge(first.header('WWW-Authenticate')!), { username: user, password, method: 'REGISTER', uri: `sip:${this.domain}` });
    return (await this.request(buildRequest(this.c, { ...spec, cseq: this.cseq++, headers: [['Expires', '600'], ['Authorization', auth]] }))).status;
  }
}

/**
 * The race of issue 18: an app message (`post` stores it, returns its id) forked to `device` at once, held unanswered
 * while the device re-REGISTERs, so the dump runs while that delivery is in flight. A second one, refused (480) and
 * so still stored, shows the dump ran: it must skip the held one and send the second. Asserts the held one came once;
 * answers everything 200 and returns both ids (the caller checks the store).
 */
export async function holdWhileRegistering(device: MessageDevice, o: { user: string; password: string; post: (text: string) => Promise<string> }): Promise<string[]> {
  const ids = [await o.post('one')];
  const oneCall = `${ids[0]}@inbox`;
  await device.until(() => device.count(oneCall) === 1, 'the first MESSAGE');
  const held = device.messages.find((m) => m.header('Call-ID') === oneCall)!;

  ids.push(await o.post('two'));
  const twoCall = `${ids[1]}@inbox`;
  await device.until(() => device.count(twoCall) === 1, 'the second MESSAGE');
  device.answer(device.messages.find((m) => m.header('Call-ID') === twoCall)!, 480);

  // Each REGISTER dumps; the lease of the refused attempt is released just after the 480, so a REGISTER may come
  // before that: then again. Without a lease the dump sends the held one again first: stop there.
  const dumped = () => device.count(twoCall) >= 2 || device.count(oneCall) >= 2;
  for (let i = 0; !dumped(); i++) {
    assert.ok(i < 10, 'the dump delivers the stored message behind the held one');
    assert.equal(await device.register(o.user, o.password), 200);
    await device.until(dumped, 'the dump', 2000).catch(() => {});
  }
  assert.equal(device.count(oneCall), 1, 'the message in flight is not sent again by the dump');
  device.answer(device.messages.filter((m) => m.header('Call-ID') === twoCall)[1], 200);
  device.answer(held, 200);
  return ids;
}
