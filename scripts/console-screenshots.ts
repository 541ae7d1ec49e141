// Regenerates the screenshots of the admin console and the web softphone in docs/images/ (README, "Web console
// and softphone"): npm run docs:screenshots [-- --out <dir>] [--all] [--seconds <n>]
//
// It starts a Switchboard in this process (fresh data directory, free ports on 127.0.0.1, two realms), creates an
// admin and a few users plus one phone sign-up account, signs the admin into the console in headless Chromium
// (Debian's /usr/bin/chromium through playwright-core, as the browser tests do), then drives real SIP at it: desk
// phones and mobiles REGISTER over UDP and TCP with their own User-Agents, some PUBLISH presence and others
// SUBSCRIBE to it, and a second page signs into the softphone, which REGISTERs over WSS and watches its buddies.
// Re-registrations (and a few wrong passwords) keep going for --seconds so the metrics charts have a history.
// Then each view is saved as a PNG: console-registrations, console-aor, console-presence, console-metrics and
// softphone; with --all also console-accounts, console-events and console-apikeys (for review; not in the README).

import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { launchChromium, missingBrowser, newPage, signIn } from '../test/helpers/browser.ts';
import { PresencePeer, pidf } from '../test/helpers/presence.ts';
import { register } from '../test/helpers/register.ts';
import { startTestServer, type TestServer } from '../test/helpers/server.ts';
import { SipTestClient } from '../test/helpers/sip-client.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(ROOT, 'docs/images') },
    all: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '60' },
  },
});
const OUT = path.resolve(args.out);
const TRAFFIC_SECONDS = Number(args.seconds);

const D = 'example.com';
const BRANCH = 'branch.example.com';
const PASSWORD: Record<string, string> = {
  [`admin@${D}`]: 'console-admin-password',
  [`alice@${D}`]: 'alice-password',
  [`bob@${D}`]: 'bob-password',
  [`carol@${D}`]: 'carol-password',
  [`dave@${D}`]: 'dave-password',
  [`erin@${D}`]: 'erin-password',
  [`frank@${BRANCH}`]: 'frank-password',
};

/** Extensions a SIP scanner tries. */
const SCANNED = ['100', '1001', 'test', 'sales', 'office'];

const step = (msg: string) => console.log(`- ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hardware or soft phone: one SIP client (UDP or TCP) holding one binding, refreshed in the same Call-ID. */
class Phone {
  private cseq = 1;
  private readonly callId = `${Math.random().toString(36).slice(2, 12)}@screenshots`;
  private readonly instance = `urn:uuid:${crypto.randomUUID()}`;
  readonly c: SipTestClient;
  readonly aor: string;
  readonly userAgent: string;
  readonly expires: number;
  private readonly o: { authUser?: string; password: string; instance?: boolean };

  private constructor(c: SipTestClient, aor: string, userAgent: string, expires: number, o: { authUser?: string; password: string; instance?: boolean }) {
    this.c = c;
    this.aor = aor;
    this.userAgent = userAgent;
    this.expires = expires;
    this.o = o;
  }

  static async open(transport: 'UDP' | 'TCP', server: TestServer, aor: string, userAgent: string, expires: number, o: { authUser?: string; password?: string; instance?: boolean } = {}) {
    const c = await SipTestClient.open(transport, server.sipPort);
    return new Phone(c, aor, userAgent, expires, { password: o.password ?? PASSWORD[aor], ...o });
  }

  async register(expires = this.expires): Promise<void> {
    const at = this.aor.lastIndexOf('@');
    const user = this.aor.slice(0, at);
    const uri = `<sip:${user}@127.0.0.1:${this.c.localPort};transport=${this.c.transport.toLowerCase()}>`;
    const contact = this.o.instance ? `${uri};+sip.instance="<${this.instance}>";reg-id=1` : uri;
    const r = await register(this.c, {
      user,
      domain: this.aor.slice(at + 1),
      password: this.o.password,
      authUser: this.o.authUser,
      contact,
      expires,
      callId: this.callId,
      cseq: this.cseq,
      headers: [['User-Agent', this.userAgent]],
    });
    this.cseq += 2;
    if (r.status !== 200) throw new Error(`REGISTER ${this.aor} (${this.userAgent}): ${r.status} ${r.reason}`);
  }

  close(): void {
    this.c.close();
  }
}

/** A presence client that answers every NOTIFY it gets (so its subscriptions stay active) until closed. */
async function presenceClient(server: TestServer, aor: string, transport: 'UDP' | 'TCP' = 'UDP') {
  const at = aor.lastIndexOf('@');
  const peer = await PresencePeer.open(transport, server.sipPort, { user: aor.slice(0, at), domain: aor.slice(at + 1), password: PASSWORD[aor] });
  let answering = false;
  return {
    peer,
    /** Starts answering NOTIFYs; call after its last request (requests and the NOTIFY loop share the socket). */
    answer() {
      if (answering) return;
      answering = true;
      void (async () => {
        for (;;) {
          try {
            await peer.notify(3_600_000);
          } catch {
            return; // closed
          }
        }
      })();
    },
    close: () => peer.close(),
  };
}

/** The phone sign-up flow over HTTP with the local code provider: an account named after the number, with its primary device. */
async function phoneSignUp(server: TestServer, number: string, password: string, deviceName: string): Promise<{ uuid: string }> {
  const call = async (method: string, url: string, body: unknown, authorization?: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (authorization) headers.authorization = authorization;
    const r = await fetch(server.httpUrl + url, { method, headers, body: JSON.stringify(body) });
    const data = (await r.json().catch(() => ({}))) as Record<string, unknown>;
    if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${JSON.stringify(data)}`);
    return data;
  };
  const { id } = (await call('POST', '/v1/verification/session', { number })) as { id: string };
  await call('PATCH', `/v1/verification/session/${id}`, { captcha: 'screenshots' });
  await call('POST', `/v1/verification/session/${id}/code`, { transport: 'sms', client: 'android-2021-03' });
  const codes = readFileSync(path.join(server.dataDir, 'verification-codes.log'), 'utf8').split('\n').filter(Boolean);
  const code = codes.map((l) => JSON.parse(l) as { number?: string; code?: string }).filter((e) => e.number === number && e.code).at(-1)?.code;
  if (!code) throw new Error(`no verification code for ${number}`);
  await call('PUT', `/v1/verification/session/${id}/code`, { code });
  const basic = 'Basic ' + Buffer.from(`${number}:${password}`).toString('base64');
  const reg = await call('POST', '/v1/registration', { sessionId: id, accountAttributes: { fetchesMessages: true, registrationId: 4242, name: deviceName }, skipDeviceTransfer: true }, basic);
  return { uuid: reg.uuid as string };
}

async function shot(page: Page, name: string): Promise<void> {
  // Let the "fresh row" highlight and any pending reload settle.
  await sleep(2500);
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  step(`saved ${path.relative(process.cwd(), file)}`);
}

async function view(page: Page, name: string): Promise<void> {
  await page.click(`#nav button[data-view="${name}"]`);
}

async function main(): Promise<void> {
  const missing = missingBrowser();
  if (missing) throw new Error(`cannot take screenshots: ${missing}`);
  mkdirSync(OUT, { recursive: true });

  const users = Object.fromEntries(Object.entries(PASSWORD).filter(([aor]) => !aor.startsWith('admin@')));
  const server = await startTestServer({ users, flags: { realm: [D, BRANCH], 'argon2-memory': '4096', 'argon2-passes': '1' } });
  await server.accountService.create(`admin@${D}`, PASSWORD[`admin@${D}`], ['admin']);
  const phones: Phone[] = [];
  const presence: Array<{ close(): void }> = [];
  const browser = await launchChromium();
  let trafficStopped = false;
  try {
    step(`server at ${server.httpUrl}, SIP on 127.0.0.1:${server.sipPort}`);
    const number = '+14155550123';
    const mobile = await phoneSignUp(server, number, 'mobile-device-password', 'Pixel 8');

    // The console first, so that the live feed and the metrics history see everything that follows.
    const { page: console_ } = await newPage(browser, { width: 1400, height: 900 });
    await console_.goto(`${server.httpUrl}/console/`);
    await signIn(console_, `admin@${D}`, PASSWORD[`admin@${D}`]);
    await console_.getByTestId('who').waitFor();
    await console_.getByTestId('feed-state').filter({ hasText: 'live' }).waitFor({ state: 'attached' });

    step('registering phones over UDP and TCP');
    const fleet: Array<['UDP' | 'TCP', string, string, number, { authUser?: string; password?: string; instance?: boolean }?]> = [
      ['UDP', `alice@${D}`, 'Yealink SIP-T46U 108.86.0.20', 3600, { instance: true }],
      ['TCP', `alice@${D}`, 'Linphone-Android/5.2.5 (Pixel 7) LinphoneSDK/5.3.72', 600, { instance: true }],
      ['UDP', `carol@${D}`, 'PolycomVVX-VVX_450-UA/6.4.3.5018', 1800],
      ['TCP', `dave@${D}`, 'Grandstream GXP2170 1.0.11.79', 900],
      ['UDP', `dave@${D}`, 'Zoiper rv2.10.20.3', 300],
      ['TCP', `frank@${BRANCH}`, 'Cisco/SPA504G-7.6.2f', 3600],
      ['UDP', `${number}@${D}`, 'Signal-Android/7.25.2 (SIP)', 1200, { authUser: `${mobile.uuid}.1`, password: 'mobile-device-password', instance: true }],
    ];
    for (const [transport, aor, ua, expires, o] of fleet) {
      const p = await Phone.open(transport, server, aor, ua, expires, o);
      await p.register();
      phones.push(p);
    }

    step('publishing presence and subscribing watchers');
    const alice = await presenceClient(server, `alice@${D}`);
    const carol = await presenceClient(server, `carol@${D}`, 'TCP');
    presence.push(alice, carol);
    const alicePub = await alice.peer.publish({ body: pidf(`sip:alice@${D}`, 'open', { id: 'desk', activities: ['on-the-phone'], note: 'On a call with a customer' }), expires: 3600 });
    const carolPub = await carol.peer.publish({ body: pidf(`sip:carol@${D}`, 'open', { id: 'vvx', activities: ['away'], note: 'Lunch, back at 2' }), expires: 3600 });
    if (alicePub.status !== 200 || carolPub.status !== 200) throw new Error(`PUBLISH: ${alicePub.status}, ${carolPub.status}`);
    for (const [watcher, presentity, transport] of [
      [`dave@${D}`, `alice@${D}`, 'UDP'],
      [`erin@${D}`, `alice@${D}`, 'TCP'],
      [`frank@${BRANCH}`, `alice@${D}`, 'UDP'],
      [`dave@${D}`, `carol@${D}`, 'UDP'],
    ] as const) {
      const w = await presenceClient(server, watcher, transport);
      const { res } = await w.peer.subscribe(presentity, { expires: 3600 });
      if (res.status !== 200 && res.status !== 202) throw new Error(`SUBSCRIBE ${watcher} → ${presentity}: ${res.status}`);
      w.answer();
      presence.push(w);
    }

    step('signing bob into the softphone (WSS)');
    const { page: phone } = await newPage(browser, { width: 1100, height: 800 });
    await phone.goto(`${server.httpUrl}/phone/`);
    await signIn(phone, `bob@${D}`, PASSWORD[`bob@${D}`]);
    await phone.getByTestId('reg-state').filter({ hasText: 'registered (WSS)' }).waitFor({ timeout: 15_000 });
    for (const buddy of [`alice@${D}`, `carol@${D}`, `dave@${D}`, `frank@${BRANCH}`]) {
      await phone.getByTestId('buddy-input').fill(buddy);
      await phone.getByTestId('buddy-add').click();
      await phone.locator(`[data-testid=buddy][data-aor="${buddy}"] [data-testid=buddy-status]`).filter({ hasNotText: 'subscribing' }).waitFor({ timeout: 10_000 });
    }
    await phone.getByTestId('status-select').selectOption('meeting');
    await phone.getByTestId('status-note').fill('Weekly planning until 11:30');
    await phone.getByTestId('status-set').click();
    await phone.getByTestId('pub-state').filter({ hasText: 'published' }).waitFor({ timeout: 10_000 });

    step(`keeping traffic going for ${TRAFFIC_SECONDS} s (the metrics charts sample every 5 s)`);
    // Until the screenshots are taken: a few phones refresh every round, all of them now and then, and a
    // scanner tries a password every third round (unknown users: a real account would be locked out).
    const intruder = await SipTestClient.open('UDP', server.sipPort);
    const fleetSize = phones.length;
    const traffic = (async () => {
      for (let round = 0; !trafficStopped; round++) {
        const batch = phones.slice(0, fleetSize).filter((_, i) => (i + round) % (round % 4 === 0 ? 1 : 3) === 0);
        for (const p of batch) await p.register();
        if (round % 3 === 0) await register(intruder, { user: SCANNED[round % SCANNED.length], domain: D, password: 'guess-123', headers: [['User-Agent', 'friendly-scanner']] });
        await sleep(1500);
      }
    })();
    traffic.catch(() => {}); // awaited (and its failure thrown) after the screenshots
    await sleep(TRAFFIC_SECONDS * 1000);
    // alice's state changes while the softphone watches her.
    await alice.peer.publish({ body: pidf(`sip:alice@${D}`, 'open', { id: 'desk', activities: ['busy'], note: 'Do not disturb: quarterly review' }), etag: alicePub.header('SIP-ETag'), expires: 3600 });
    alice.answer();
    carol.answer();

    // One phone about to expire, for the "expires" column and the "expiring soon" filter.
    const erin = await Phone.open('UDP', server, `erin@${D}`, 'MicroSIP/3.21.3', 60);
    await erin.register();
    phones.push(erin);

    step('screenshots');
    await view(console_, 'Registrations');
    await console_.locator(`[data-testid=registration-row][data-aor="erin@${D}"]`).waitFor();
    await shot(console_, 'console-registrations');

    await console_.locator(`[data-testid=registration-row][data-aor="alice@${D}"]`).first().click();
    await console_.getByTestId('aor-detail').getByText('Call-ID').first().waitFor();
    // Scrolled past the charts, so that both of alice's bindings are in view.
    const box = await console_.locator('[data-view="Registrations"] .split').boundingBox();
    await console_.evaluate(`window.scrollTo(0, ${Math.max(0, (box?.y ?? 16) - 16)})`);
    await shot(console_, 'console-aor');
    await console_.evaluate('window.scrollTo(0, 0)');

    await view(console_, 'Presence');
    await console_.getByTestId('presence-lookup').fill(`alice@${D}`);
    await console_.getByTestId('presence-lookup').press('Enter');
    await console_.getByTestId('watchers').locator('tr').nth(2).waitFor();
    await shot(console_, 'console-presence');

    await view(console_, 'Metrics');
    await shot(console_, 'console-metrics');

    await phone.getByTestId('presence-log').getByText('is busy').waitFor({ timeout: 10_000 });
    await shot(phone, 'softphone');
    trafficStopped = true;
    await traffic;
    intruder.close();

    if (args.all) {
      await view(console_, 'Registrations');
      await console_.locator('[data-view="Registrations"] [data-testid=aor-detail] button').click();
      await console_.selectOption('select[name=expiringWithin]', '60');
      await console_.getByTestId('registration-count').filter({ hasText: /^1 AOR, 1 binding$/ }).waitFor();
      await shot(console_, 'console-expiring');
      await console_.selectOption('select[name=expiringWithin]', '');

      await view(console_, 'My API keys');
      const keys = console_.locator('[data-view="My API keys"]');
      await keys.getByTestId('api-key-name').fill('monitoring');
      await keys.getByLabel('registrations.read').check();
      await keys.getByLabel('events.read').check();
      await keys.locator('select').selectOption('90');
      await keys.getByRole('button', { name: 'Create key' }).click();
      await keys.getByTestId('new-api-key').waitFor();
      await shot(console_, 'console-apikeys');

      await view(console_, 'Accounts');
      await console_.getByTestId('account-row').filter({ hasText: number }).click();
      await console_.locator('[data-view="Accounts"] [data-testid=presence-basic]').waitFor();
      await shot(console_, 'console-accounts');
      await view(console_, 'Events');
      await console_.getByTestId('feed-filter').fill('alice');
      await shot(console_, 'console-events');
    }
  } finally {
    trafficStopped = true;
    await browser.close();
    for (const p of [...phones, ...presence]) p.close();
    await server.close();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
