// The softphone's linked accounts in headless Chromium, against a real server whose in-process connector serves IRC
// and a real ngircd, with an independent irc-framework client on the other side:
//
// - signing in with the password opens (creates) the vault: the page shows the recovery key once;
// - the user links an IRC account on the page; the list shows it connected (the live state);
// - a query from the IRC client appears as a conversation on the page; the reply typed on the page reaches the client;
// - a wrong password shows "bad credentials"; Delete removes an account from the list and from ngircd;
// - a SIP account at another provider (a second Switchboard), linked with its domain and transport, shows connected,
//   and Delete unregisters it there.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, missingBrowser, newPage, signIn, type PageLog } from '../helpers/browser.ts';
import { ircPeer, type IrcPeer } from '../helpers/irc-peer.ts';
import { ngircdMissing, startNgircd, type Ngircd } from '../helpers/ngircd.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { inboxMode } from '../helpers/phone-inbox.ts';

const D = 'example.test';

describe('softphone linked accounts in Chromium', { skip: missingBrowser() || ngircdMissing(), timeout: 180_000 }, () => {
  let irc: Ngircd;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let log: PageLog;
  let bob: IrcPeer;
  let remote: TestServer;

  const explain = () => `--- page log ---\n${log.lines.slice(-30).join('\n')}`;
  const account = (username: string) => page.locator('[data-testid=linked-account]').filter({ hasText: `IRC ${username} @` });

  async function link(username: string, password: string): Promise<void> {
    await page.getByTestId('link-type').selectOption('irc');
    await page.getByTestId('link-server').fill(`127.0.0.1:${irc.port}`);
    await page.getByTestId('link-username').fill(username);
    await page.getByTestId('link-password').fill(password);
    await page.getByTestId('link-add').click();
  }

  before(async () => {
    irc = await startNgircd();
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-password' }, flags: { 'bridge-connectors': ['irc', 'sip'], 'bridge-allow-servers': ['127.0.0.1'] } });
    remote = await startTestServer({ users: { 'alice@remote.test': 'remote-pw' }, flags: { realm: ['remote.test'] } });
    browser = await launchChromium();
    ({ page, log } = await newPage(browser, { width: 1100, height: 1000 }));
    bob = await ircPeer(irc.port, 'bob', irc.password);
  });
  after(async () => {
    bob?.quit();
    await browser?.close();
    await server?.close();
    await remote?.close();
    await irc?.stop();
  });

  it('signs in (the vault is created: its recovery key shown once), links IRC, sees it connected', async () => {
    await page.goto(`${server.httpUrl}/phone/`);
    await signIn(page, `alice@${D}`, 'alice-password');
    await page.getByTestId('inbox-state').filter({ hasText: await inboxMode(server) }).waitFor({ timeout: 15_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });
    const key = await page.getByTestId('recovery-key').textContent({ timeout: 10_000 });
    assert.ok(key && key.length >= 40, `recovery key ${key}`);

    await link('alicebridge', irc.password);
    await account('alicebridge').getByTestId('link-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: 15_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });
    assert.equal(await page.getByTestId('link-password').inputValue(), '', 'the password field is cleared');
  });

  it('a query from IRC becomes a conversation; the reply typed on the page reaches the IRC user', async () => {
    bob.client.say('alicebridge', 'hello from IRC <b>bold</b>');
    const conv = page.locator('[data-testid=conversation]').filter({ hasText: 'bob (IRC alicebridge)' });
    await conv.waitFor({ timeout: 15_000 }).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await page.getByTestId('conversations').innerText()}\n${await page.locator('#app').innerText()}\n${explain()}`);
    });
    await conv.click();
    const thread = page.getByTestId('thread');
    await thread.getByTestId('message-body').filter({ hasText: 'hello from IRC <b>bold</b>' }).waitFor();
    assert.equal(await thread.locator('b').count(), 0, 'the text stays text');
    assert.equal(await page.getByTestId('message-to').inputValue(), 'bob');

    await page.getByTestId('message-text').fill('hi bob, from the web phone');
    await page.getByTestId('message-send').click();
    const heard = await bob.next((e) => e.message === 'hi bob, from the web phone').catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });
    assert.equal(heard.nick, 'alicebridge');
    // On the stream the bridge's delivery frame turns "queued" into "sent"; polling the inbox has no such frame.
    const live = (await inboxMode(server)) === 'inbox: live';
    await thread.locator('[data-dir=out]').getByTestId('message-state').filter({ hasText: live ? '· sent' : '· queued' }).waitFor({ timeout: 10_000 });
  });

  it('a wrong password shows bad credentials; Delete removes the accounts, and the IRC one leaves ngircd', async () => {
    await link('mallory', 'wrong-password');
    await account('mallory').getByTestId('link-state').filter({ hasText: /^bad credentials$/ }).waitFor({ timeout: 15_000 });

    for (const name of ['mallory', 'alicebridge']) {
      await account(name).getByTestId('link-delete').click();
      await account(name).waitFor({ state: 'detached', timeout: 10_000 });
    }
    const online = () => bob.online('alicebridge');
    for (let i = 0; (await online()) && i < 30; i++) await new Promise((r) => setTimeout(r, 300));
    assert.equal(await online(), false);
    assert.equal(await page.locator('[data-testid=linked-account]').count(), 0);
  });

  it('links a SIP account with its domain and transport; it shows connected, is registered there, and Delete unregisters it', async () => {
    await page.getByTestId('link-type').selectOption('sip');
    assert.equal(await page.getByTestId('link-channels').isVisible(), false);
    await page.getByTestId('link-server').fill(`127.0.0.1:${remote.sipPort}`);
    await page.getByTestId('link-username').fill('alice');
    await page.getByTestId('link-password').fill('remote-pw');
    await page.getByTestId('link-sip-domain').fill('remote.test');
    await page.getByTestId('link-sip-transport').selectOption('tcp');
    await page.getByTestId('link-add').click();
    const sip = page.locator('[data-testid=linked-account]').filter({ hasText: 'SIP alice @' });
    await sip.getByTestId('link-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: 15_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });
    const [b] = await remote.location.lookup('alice@remote.test');
    assert.equal(b?.transport, 'TCP');
    await sip.getByTestId('link-delete').click();
    await sip.waitFor({ state: 'detached', timeout: 10_000 });
    for (let i = 0; (await remote.location.lookup('alice@remote.test')).length > 0 && i < 50; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await remote.location.lookup('alice@remote.test'), []);
  });
});
