// The softphone's conversations in headless Chromium against a real server:
//
// - bob's page sends alice a text as a SIP MESSAGE over its WSS flow; alice's page (registered too) shows the
//   conversation with bob, the text as text; her reply reaches bob's page; bob's message shows "delivered";
// - carol is an app (no SIP device): her POST /v1/messages to bob is read from bob's inbox by his page, shown, and
//   acked (the server's queue for bob is empty after); bob's reply to carol is stored (202, "stored" on the page)
//   and carol reads it from her inbox with bob as the sender.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, missingBrowser, newPage, signIn, type PageLog } from '../helpers/browser.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { appLogin, http, send, type Session } from '../messaging/helpers.ts';
import { inboxMode } from '../helpers/phone-inbox.ts';

const D = 'example.test';
const PW = { alice: 'alice-password', bob: 'bob-password', carol: 'carol-password' };

async function openPhone(browser: Browser, server: TestServer, user: keyof typeof PW): Promise<{ page: Page; log: PageLog }> {
  const { page, log } = await newPage(browser, { width: 1100, height: 900 });
  await page.goto(`${server.httpUrl}/phone/`);
  await signIn(page, `${user}@${D}`, PW[user]);
  await page.getByTestId('reg-state').filter({ hasText: 'registered (WSS)' }).waitFor({ timeout: 15_000 }).catch((e: Error) => {
    throw new Error(`${e.message}\n${log.lines.slice(-30).join('\n')}`);
  });
  await page.getByTestId('inbox-state').filter({ hasText: await inboxMode(server) }).waitFor({ timeout: 10_000 });
  return { page, log };
}

function conversation(page: Page, peer: string) {
  return page.locator(`[data-testid=conversation][data-peer="${peer}"]`);
}

async function sendFromPage(page: Page, to: string | null, text: string): Promise<void> {
  if (to !== null) await page.getByTestId('message-to').fill(to);
  await page.getByTestId('message-text').fill(text);
  await page.getByTestId('message-send').click();
}

describe('softphone conversations in Chromium', { skip: missingBrowser() }, () => {
  let server: TestServer;
  let browser: Browser;
  let alice: { page: Page; log: PageLog };
  let bob: { page: Page; log: PageLog };
  let carol: Session;

  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: PW.alice, [`bob@${D}`]: PW.bob, [`carol@${D}`]: PW.carol } });
    browser = await launchChromium();
    alice = await openPhone(browser, server, 'alice');
    bob = await openPhone(browser, server, 'bob');
    carol = await appLogin(server.httpUrl, `carol@${D}`, PW.carol);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('SIP MESSAGE both ways between two pages: the conversation, the text as text, delivered', async () => {
    const evil = 'hello alice <img src=x onerror="window.__xss=1">';
    await sendFromPage(bob.page, `alice@${D}`, evil);
    await conversation(alice.page, `bob@${D}`).waitFor({ timeout: 10_000 });
    const thread = alice.page.getByTestId('thread');
    await thread.getByTestId('message-body').filter({ hasText: evil }).waitFor({ timeout: 10_000 });
    assert.equal(await thread.locator('img').count(), 0, 'no markup from a message became elements');
    assert.equal(await alice.page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined);
    assert.equal(await alice.page.getByTestId('thread-title').textContent(), `bob@${D}`);
    await bob.page.getByTestId('thread').locator('[data-dir=out]').getByTestId('message-state').filter({ hasText: 'delivered' }).waitFor({ timeout: 10_000 });

    // alice replies in the open conversation (its address is already in the composer).
    await sendFromPage(alice.page, null, 'hi bob ✓');
    await bob.page.getByTestId('thread').locator('[data-dir=in]').getByTestId('message-body').filter({ hasText: 'hi bob ✓' }).waitFor({ timeout: 10_000 });
    assert.match((await conversation(bob.page, `alice@${D}`).textContent()) ?? '', /hi bob ✓/);
  });

  it('an app message reaches the page once (as a SIP MESSAGE to its registration, or from the inbox) and leaves the queue; the reply to the app is stored for it', async () => {
    const sent = await send(server.httpUrl, carol, `bob@${D}`, 'from the app');
    assert.equal(sent.status, 200, JSON.stringify(sent.json));
    await conversation(bob.page, `carol@${D}`).waitFor({ timeout: 15_000 });
    await conversation(bob.page, `carol@${D}`).click();
    const thread = bob.page.getByTestId('thread');
    await thread.getByTestId('message-body').filter({ hasText: 'from the app' }).waitFor();
    assert.match((await thread.locator('[data-dir=in]').first().textContent()) ?? '', /SIP|inbox/);

    // Taken (the page's 200 to the MESSAGE, or its ack): bob's queue on the server is empty (read with an app session
    // of his own). Both copies had reached the page by then; it shows one (the MESSAGE's Call-ID names the inbox id).
    const bobApp = await appLogin(server.httpUrl, `bob@${D}`, PW.bob);
    for (let i = 0; ; i++) {
      const q = await http(server.httpUrl, 'GET', '/v1/messages', { auth: bobApp.auth });
      if ((q.json.messages as unknown[]).length === 0) break;
      assert.ok(i < 50, `still queued: ${JSON.stringify(q.json)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await thread.getByTestId('message-body').filter({ hasText: 'from the app' }).count(), 1);

    // bob answers; carol has no SIP device, so the server stores it (202) and her inbox has it.
    await sendFromPage(bob.page, null, 'got it, carol');
    await thread.locator('[data-dir=out]').getByTestId('message-state').filter({ hasText: 'stored' }).waitFor({ timeout: 10_000 });
    const q = await http(server.httpUrl, 'GET', '/v1/messages', { auth: carol.auth });
    const got = (q.json.messages as { sender: string; body: string }[]).map((m) => [m.sender, Buffer.from(m.body, 'base64').toString()]);
    assert.deepEqual(got, [[`sip:bob@${D}`, 'got it, carol']]);
  });
});
