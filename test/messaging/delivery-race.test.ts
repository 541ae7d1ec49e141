// A stored message is sent to SIP devices by one path at a time (issue 18: no duplicated offline message). An app's
// message goes at once to the account's devices (deliverStored) and a REGISTER dumps what is stored (msilo's m_dump):
// a raw UA device holds its 200 to the first path's MESSAGE while it re-REGISTERs, so the dump runs while that
// delivery is in flight. The device receives the message once (one transaction with Call-ID <id>@inbox), and the
// dump, skipping the leased message, still delivers the next one it was not holding (which shows the dump ran).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { appLogin, send } from './helpers.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';
import { buildRequest, digestAuthorization, parseChallenge, SipTestClient } from '../helpers/sip-client.ts';
import { parseMsg, reply, type Msg } from '../helpers/sip-ua.ts';

const D = 'example.test';

/** A device on one UDP socket: REGISTERs, and records every MESSAGE transaction it receives (by Via branch). */
class Device {
  readonly messages: Msg[] = [];
  private readonly branches = new Set<string>();
  private readonly responses: Array<(m: Msg) => void> = [];
  private readonly arrivals: Array<() => void> = [];
  private cseq = 1;
  private readonly callId = `reg-${Math.random().toString(36).slice(2)}@test`;
  readonly c: SipTestClient;
  private constructor(c: SipTestClient) {
    this.c = c;
  }

  static async open(port: number): Promise<Device> {
    const d = new Device(await SipTestClient.open('UDP', port));
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
    const spec = { method: 'REGISTER', uri: `sip:${D}`, from: `<sip:${user}@${D}>`, to: `<sip:${user}@${D}>`, callId: this.callId, contact: `<sip:${user}@127.0.0.1:${this.c.localPort}>` };
    const first = await this.request(buildRequest(this.c, { ...spec, cseq: this.cseq++, headers: [['Expires', '600']] }));
    if (first.status !== 401) return first.status;
    const auth = digestAuthorization(parseChallenge(first.header('WWW-Authenticate')!), { username: user, password, method: 'REGISTER', uri: `sip:${D}` });
    return (await this.request(buildRequest(this.c, { ...spec, cseq: this.cseq++, headers: [['Expires', '600'], ['Authorization', auth]] }))).status;
  }
}

describe('a stored message sent to SIP devices by two paths at once', () => {
  let server: TestServer;
  let device: Device;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
    device = await Device.open(server.sipPort);
  });
  after(async () => {
    device.c.close();
    await server.close();
  });

  const undelivered = async (id: string) => (await storeQuery<{ n: number }>(server.dataDir, 'SELECT COUNT(*) AS n FROM messages WHERE id = ? AND delivered_at IS NULL', id))[0]!.n;

  it('reaches a device that re-REGISTERs while the app message is on its way once', async () => {
    assert.equal(await device.register('alice', 'alice-pw'), 200);
    const bob = await appLogin(server.httpUrl, `bob@${D}`, 'bob-pw');

    // 1: forked to the device at once (deliverStored); the device holds its answer.
    const one = await send(server.httpUrl, bob, `alice@${D}`, 'one');
    assert.equal(one.status, 200);
    const oneCall = `${one.json.id as string}@inbox`;
    await device.until(() => device.count(oneCall) === 1, 'the first MESSAGE');
    const held = device.messages.find((m) => m.header('Call-ID') === oneCall)!;

    // 2: refused (480), so it stays stored for the dump.
    const two = await send(server.httpUrl, bob, `alice@${D}`, 'two');
    const twoCall = `${two.json.id as string}@inbox`;
    await device.until(() => device.count(twoCall) === 1, 'the second MESSAGE');
    device.c.send(reply(device.messages.find((m) => m.header('Call-ID') === twoCall)!, 480));

    // Re-REGISTER while 1 is held: the dump runs. It must skip 1 (on its way) and send 2. Each REGISTER dumps; the
    // lease of 2's refused attempt is released just after the 480, so a REGISTER may come before it: then try again.
    // Without the lease the dump sends 1 again first: stop there.
    const dumpDone = () => device.count(twoCall) >= 2 || device.count(oneCall) >= 2;
    for (let i = 0; !dumpDone(); i++) {
      assert.ok(i < 10, 'the dump delivers the stored message behind the held one');
      assert.equal(await device.register('alice', 'alice-pw'), 200);
      await device.until(dumpDone, 'the dump', 2000).catch(() => {});
    }
    assert.equal(device.count(oneCall), 1, 'the message in flight is not sent again by the dump');
    device.c.send(reply(device.messages.filter((m) => m.header('Call-ID') === twoCall)[1], 200));
    device.c.send(reply(held, 200));
    const deadline = Date.now() + 10_000;
    while (Number(await undelivered(one.json.id as string)) + Number(await undelivered(two.json.id as string)) > 0) {
      assert.ok(Date.now() < deadline, 'both are acked after their 2xx');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(device.count(oneCall), 1);
  });
});
