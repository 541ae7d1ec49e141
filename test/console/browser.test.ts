// The admin console and the web softphone in headless Chromium (Debian's chromium, driven by playwright-core),
// against a real server with real peers:
//
// - an admin signs into the console; a SIPp phone REGISTERs and appears in the live registrations (its
//   User-Agent, which carries HTML, shown as text), then unregisters and disappears; the live feed shows both;
// - a call between two raw SIP phones appears in the console's live calls ringing, turns answered, and goes at BYE;
// - a second page signs into the softphone as another user, which REGISTERs over WSS with its Bearer token (the
//   location service holds a WSS binding), adds the first user as a buddy, and sees that user's presence change
//   as SIPp PUBLISHes busy, then away, then removes the publication; its own status reaches the server by PUBLISH;
// - the console's Messages view shows a message queued for a user with no device (its count, never its text) and,
//   when her app acks it, the count goes, both from the live feed without a reload;
// - a non-admin is turned away by the console with a clear message;
// - no page loads anything from outside the server, puts a token in a URL, or trips its Content-Security-Policy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, missingBrowser, newPage, signIn, type PageLog } from '../helpers/browser.ts';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { explain, runSipp } from '../helpers/sipp.ts';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isRequest, isResponse, reply, waitFor } from '../helpers/sip-ua.ts';
import { appLogin, http, send } from '../messaging/helpers.ts';

const D = 'example.test';
const PW = { alice: 'alice-password', bob: 'bob-password', carol: 'carol-password', admin: 'admin-password' };
const EVIL_UA = 'SIPp <img src=x onerror="window.__xss=1"><b>desk</b> & co';

function explainPage(log: PageLog): string {
  return `--- page log ---\n${log.lines.slice(-40).join('\n')}`;
}

describe('console and softphone in Chromium', { skip: missingBrowser() || missingPeer('sipp') }, () => {
  let server: TestServer;
  let browser: Browser;
  let consolePage: Page;
  let consoleLog: PageLog;
  let phonePage: Page;
  let phoneLog: PageLog;

  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: PW.alice, [`bob@${D}`]: PW.bob, [`carol@${D}`]: PW.carol } });
    await server.accountService.create(`admin@${D}`, PW.admin, ['admin']);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('the console shows a SIPp phone appear and disappear, its User-Agent as text', async () => {
    ({ page: consolePage, log: consoleLog } = await newPage(browser));
    const page = consolePage;
    const res = await page.goto(`${server.httpUrl}/console/`);
    assert.equal(res?.status(), 200);
    assert.match(res!.headers()['content-security-policy'], /script-src 'self';/);
    await signIn(page, `admin@${D}`, PW.admin);
    await page.getByTestId('who').waitFor();
    assert.equal(await page.getByTestId('who').textContent(), `admin@${D}`);
    await page.getByTestId('feed-state').filter({ hasText: 'live' }).waitFor({ state: 'attached' });
    await page.getByTestId('registrations').getByText('No registrations match.').waitFor();

    const reg = await runSipp('register-ua.xml', server.sipPort, { keys: { domain: D, user: 'alice', ua: EVIL_UA, expires: '600' }, auth: { username: 'alice', password: PW.alice } });
    assert.equal(reg.code, 0, explain(reg));
    const row = page.locator(`[data-testid=registration-row][data-aor="alice@${D}"]`);
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.getByTestId('user-agent').textContent(), EVIL_UA, 'the User-Agent is shown exactly, as text');
    assert.equal(await row.locator('img, b').count(), 0, 'no markup from the User-Agent became elements');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined);
    assert.match((await row.textContent()) ?? '', /UDP/);
    assert.match((await page.getByTestId('registration-count').textContent()) ?? '', /^1 AOR, 1 binding$/);

    // Its bindings in full, and the live feed's event.
    await row.click();
    await page.getByTestId('aor-detail').getByText(`alice@${D}`).waitFor();
    // The heading comes first and the bindings after their fetch: wait for them rather than race it.
    await page.getByTestId('aor-detail').getByText(/Call-ID/).first().waitFor({ timeout: 10_000 });
    assert.match((await page.getByTestId('aor-detail').textContent()) ?? '', /Call-ID/);
    assert.equal(await page.locator('[data-testid=event-feed] li[data-topic^="binding.added."]').count(), 1);

    const unreg = await runSipp('unregister-all.xml', server.sipPort, { keys: { domain: D, user: 'alice' }, auth: { username: 'alice', password: PW.alice } });
    assert.equal(unreg.code, 0, explain(unreg));
    assert.deepEqual(await server.location.lookup(`alice@${D}`), []);
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await page.getByTestId('registrations').getByText('No registrations match.').waitFor();
    assert.equal(await page.locator('[data-testid=event-feed] li[data-topic^="binding.removed."]').count(), 1);
  });

  it('the console shows a live call ringing, then answered, and removes it after the BYE', async () => {
    const page = consolePage;
    await page.locator('#nav button[data-view="Calls"]').click();
    const calls = page.getByTestId('calls');
    await calls.getByText('No calls now.').waitFor();
    const carol = await SipTestClient.open('UDP', server.sipPort);
    const alice = await SipTestClient.open('UDP', server.sipPort);
    try {
      assert.equal((await register(carol, { user: 'carol', password: PW.carol, domain: D, expires: 300 })).status, 200);
      const k = new Call(alice, { from: `<sip:alice@${D}>`, to: `<sip:carol@${D}>`, uri: `sip:carol@${D}`, user: 'alice', password: PW.alice });
      await k.start();
      const inv = await waitFor(carol, isRequest('INVITE'));
      carol.send(reply(inv, 180, { toTag: 'c' }));
      const row = page.locator(`[data-testid=call-row][data-call-id="${k.callId}"]`);
      await row.filter({ hasText: 'ringing' }).waitFor({ timeout: 10_000 });
      assert.match((await row.textContent()) ?? '', new RegExp(`alice@${D}.*carol@${D}`));
      assert.match((await page.getByTestId('call-count').textContent()) ?? '', /^1 call$/);
      carol.send(reply(inv, 200, { toTag: 'c', headers: [['Contact', `<sip:carol@127.0.0.1:${carol.localPort}>`]] }));
      k.established(await k.response((st) => st === 200));
      alice.send(k.inDialog('ACK'));
      await row.getByTestId('call-state').filter({ hasText: 'answered' }).waitFor({ timeout: 10_000 });
      await row.getByTestId('call-since').filter({ hasText: /^talking / }).waitFor();
      alice.send(k.inDialog('BYE'));
      carol.send(reply(await waitFor(carol, isRequest('BYE')), 200));
      await waitFor(alice, isResponse('BYE'));
      await row.waitFor({ state: 'detached', timeout: 10_000 });
      await calls.getByText('No calls now.').waitFor();
      assert.ok((await page.locator('[data-testid=event-feed] li[data-topic^="call.ended."]').count()) >= 1);
      assert.equal((await register(carol, { user: 'carol', password: PW.carol, domain: D, contact: '*', expires: 0 })).status, 200);
    } finally {
      carol.close();
      alice.close();
      await page.locator('#nav button[data-view="Registrations"]').click();
    }
  });

  it('the console shows a queued message count appear, and go when the recipient’s app takes it', async () => {
    const page = consolePage;
    await page.locator('#nav button[data-view="Messages"]').click();
    const view = page.getByTestId('queued-messages');
    await view.getByText('No queued messages.').waitFor({ timeout: 10_000 });
    const bob = await appLogin(server.httpUrl, `bob@${D}`, PW.bob);
    const sent = await send(server.httpUrl, bob, `carol@${D}`, 'a secret for carol', 'console-1');
    assert.equal(sent.status, 200);
    const row = view.locator(`[data-testid=queued-row][data-aor="carol@${D}"]`);
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.getByTestId('queued-count').textContent(), '1');
    assert.doesNotMatch((await view.textContent()) ?? '', /secret/, 'counts, never content');

    const carol = await appLogin(server.httpUrl, `carol@${D}`, PW.carol);
    const inbox = await http(server.httpUrl, 'GET', '/v1/messages', { auth: carol.auth });
    const [m] = inbox.json.messages as Array<{ id: string }>;
    assert.equal((await http(server.httpUrl, 'DELETE', `/v1/messages/${m.id}`, { auth: carol.auth })).status, 204);
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await view.getByText('No queued messages.').waitFor();
    await page.locator('#nav button[data-view="Registrations"]').click();
  });

  it('the softphone registers over WSS with its token and sees alice\u2019s presence change when she PUBLISHes', async () => {
    ({ page: phonePage, log: phoneLog } = await newPage(browser, { width: 1100, height: 800 }));
    const page = phonePage;
    await page.goto(`${server.httpUrl}/phone/`);
    await signIn(page, `bob@${D}`, PW.bob);
    await page.getByTestId('reg-state').filter({ hasText: 'registered (WSS)' }).waitFor({ timeout: 15_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explainPage(phoneLog)}`);
    });
    const [binding, ...others] = await server.location.lookup(`bob@${D}`);
    assert.equal(others.length, 0);
    assert.equal(binding.transport, 'WSS');
    assert.match(binding.contact, /\.invalid;transport=ws$/);
    assert.match(binding.userAgent ?? '', /^Switchboard softphone \(SIP\.js /);
    // The console lists the browser's registration too.
    await consolePage.locator(`[data-testid=registration-row][data-aor="bob@${D}"]`).filter({ hasText: 'WSS' }).waitFor({ timeout: 10_000 });

    // alice as a buddy: SUBSCRIBE over the same WebSocket, the first NOTIFY says she is offline.
    await page.getByTestId('buddy-input').fill(`alice@${D}`);
    await page.getByTestId('buddy-add').click();
    const buddy = page.locator(`[data-testid=buddy][data-aor="alice@${D}"]`);
    await buddy.getByTestId('buddy-status').filter({ hasText: /^offline$/ }).waitFor({ timeout: 10_000 });
    const watchers = server.presence.watchers(`alice@${D}`);
    assert.deepEqual(watchers.map((w) => [w.watcher, w.state, w.transport]), [[`bob@${D}`, 'active', 'WSS']]);

    // SIPp publishes busy, refreshes, modifies to away, removes: the softphone sees each state.
    const pub = await runSipp('presence-publish.xml', server.sipPort, { keys: { domain: D, user: 'alice' }, auth: { username: 'alice', password: PW.alice } });
    assert.equal(pub.code, 0, explain(pub));
    const log = page.getByTestId('presence-log');
    await log.getByText(`alice@${D} is busy`).waitFor({ timeout: 10_000 });
    await log.getByText(`alice@${D} is away`).waitFor({ timeout: 10_000 });
    await buddy.getByTestId('buddy-status').filter({ hasText: /^offline$/ }).waitFor({ timeout: 10_000 });
    const changes = (await log.locator('li').allTextContents()).reverse();
    const order = changes.filter((t) => t.includes(`alice@${D}`)).map((t) => t.slice(t.lastIndexOf(' ') + 1));
    assert.deepEqual(order, ['offline', 'busy', 'away', 'offline'], changes.join('\n'));

    // bob's own status goes out as a PUBLISH over the WebSocket.
    await page.getByTestId('status-select').selectOption('away');
    await page.getByTestId('status-note').fill('back at <3> & lunch');
    await page.getByTestId('status-set').click();
    await page.getByTestId('pub-state').filter({ hasText: 'published' }).waitFor({ timeout: 10_000 });
    const state = server.presence.state(`bob@${D}`);
    assert.equal(state.basic, 'open');
    assert.deepEqual(state.activities, ['away']);
    assert.deepEqual(state.notes, ['back at <3> & lunch']);
    assert.deepEqual(state.publications.map((p) => p.transport), ['WSS']);
  });

  it('turns away a non-admin from the console with a clear message', async () => {
    const { page, context } = await newPage(browser);
    try {
      await page.goto(`${server.httpUrl}/console/`);
      await signIn(page, `carol@${D}`, PW.carol);
      await page.getByTestId('login-error').filter({ hasText: 'admin role' }).waitFor();
      assert.match((await page.getByTestId('login-error').textContent()) ?? '', /carol@example\.test is not an administrator/);
      assert.equal(await page.locator('#app').isHidden(), true);
      await signIn(page, `carol@${D}`, 'wrong-password');
      await page.getByTestId('login-error').filter({ hasText: /password|credentials/i }).waitFor();
    } finally {
      await context.close();
    }
  });

  it('loads nothing from elsewhere, puts no token in a URL, and breaks no CSP rule', async () => {
    const origin = new URL(server.httpUrl).origin;
    const wss = `wss://127.0.0.1:${server.portOf('WSS')}`;
    for (const log of [consoleLog, phoneLog]) {
      for (const url of log.urls) {
        assert.ok(url.startsWith(origin + '/') || url.startsWith(wss), `request to ${url}`);
        assert.doesNotMatch(url, /eyJ|token|sbk_/i, `a token in ${url}`);
      }
      assert.deepEqual(log.lines.filter((l) => /Content Security Policy|pageerror|Refused/i.test(l)), [], explainPage(log));
    }
    assert.ok(phoneLog.urls.some((u) => u.startsWith(`${origin}/ui/vendor/sip.js/`)), 'SIP.js came from this server');
    await phonePage.close();
    await consolePage.close();
  });
});
