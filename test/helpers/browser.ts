// Headless Chromium for the console and softphone tests: Debian's `chromium` (apt-get install chromium, which
// .ci/run does) driven by playwright-core (a devDependency; it never downloads a browser of its own). Locally a
// missing Chromium or playwright-core skips the tests with the reason; under SWITCHBOARD_REQUIRE_PEERS=1 (CI) it
// fails them, like the SIP peers (peers.ts).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';

export const CHROMIUM = process.env.SWITCHBOARD_CHROMIUM ?? '/usr/bin/chromium';

/**
 * The flags the machine notes give for Chromium on a closed network, plus the self-signed certificate of the
 * test server's WSS listener (the README tells operators to use a real one). Playwright gives each launch a new,
 * empty profile directory (its --user-data-dir) and removes it on close.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--ignore-certificate-errors',
];

function hasPlaywright(): boolean {
  try {
    createRequire(import.meta.url).resolve('playwright-core');
    return true;
  } catch {
    return false;
  }
}

/** For node:test's `skip` option: false when Chromium and playwright-core are there, else the reason (or a throw under CI). */
export function missingBrowser(): string | false {
  const missing: string[] = [];
  if (!existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install -y chromium)`);
  if (!hasPlaywright()) missing.push('playwright-core (npm ci)');
  if (missing.length === 0) return false;
  const reason = `${missing.join(' and ')} not installed`;
  if (process.env.SWITCHBOARD_REQUIRE_PEERS === '1') throw new Error(`required browser missing: ${reason}`);
  return reason;
}

/**
 * For WebRTC calls between pages: a fake microphone that needs no prompt, and host ICE candidates that work on
 * this machine's closed network: loopback allowed, and real addresses rather than mDNS `.local` names (nothing
 * here answers mDNS, so two pages could not resolve each other's candidates).
 */
export const CHROMIUM_MEDIA_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 60_000 });
}

export interface PageLog {
  /** Console messages and page errors, for assertion messages. */
  lines: string[];
  /** Every URL the page requested. */
  urls: string[];
}

/** A page in a fresh context (its own storage) that records what it logged and requested. */
export async function newPage(browser: Browser, viewport = { width: 1400, height: 900 }): Promise<{ page: Page; context: BrowserContext; log: PageLog }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const page = await context.newPage();
  const log: PageLog = { lines: [], urls: [] };
  page.on('console', (m) => log.lines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.lines.push(`[pageerror] ${e.message}`));
  page.on('request', (r) => log.urls.push(r.url()));
  return { page, context, log };
}

/** Signs in on the console's or the softphone's login form. */
export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.fill('#login-form input[name=username]', username);
  await page.fill('#login-form input[name=password]', password);
  await page.click('#login-form button[type=submit]');
}
