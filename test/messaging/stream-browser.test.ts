// The inbox stream from a real browser page (headless Chromium): a page's WebSocket cannot carry an Authorization
// header, so the page asks POST /v1/messages/stream-ticket with its session (fetch may set headers) and opens
// /v1/messages/stream?ticket=…: it gets its queued message and the queue-empty marker, and acks it. The same ticket
// a second time, a made-up one, or none, opens nothing; the session key never appears in a URL the page requested.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium, missingBrowser, newPage } from '../helpers/browser.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { appLogin, http, send } from './helpers.ts';

describe('the inbox stream from a browser page', { skip: missingBrowser() }, () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    server = await startTestServer({ users: { 'alice@example.test': 'alice-pw', 'bob@example.test': 'bob-pw' } });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('opens the stream with a single-use ticket and gets the queued message', async () => {
    const base = server.httpUrl;
    const alice = await appLogin(base, 'alice@example.test', 'alice-pw');
    const bob = await appLogin(base, 'bob@example.test', 'bob-pw');
    const sent = await send(base, bob, 'alice@example.test', 'hello browser');
    assert.equal(sent.status, 200);
    const { page, log } = await newPage(browser);
    await page.goto(`${base}/v1/push/vapid`); // any page of the server's origin
    const result = await page.evaluate(async (auth) => {
      const ticketOf = async () => {
        const r = await fetch('/v1/messages/stream-ticket', { method: 'POST', headers: { authorization: auth } });
        return { status: r.status, body: (await r.json()) as { ticket: string; expiresIn: number } };
      };
      const origin = (globalThis as unknown as { location: { origin: string } }).location.origin;
      const url = (q: string) => `${origin.replace(/^http/, 'ws')}/v1/messages/stream${q}`;
      /** Opens a socket; resolves with its frames once queue-empty came (then acks the messages), or with how it failed. */
      const open = (q: string) =>
        new Promise<{ opened: boolean; frames: Array<Record<string, unknown>> }>((resolve) => {
          const ws = new WebSocket(url(q));
          const frames: Array<Record<string, unknown>> = [];
          let opened = false;
          ws.onopen = () => (opened = true);
          ws.onmessage = (e) => {
            const f = JSON.parse(e.data as string) as Record<string, unknown>;
            frames.push(f);
            if (f.type === 'message') ws.send(JSON.stringify({ type: 'ack', id: f.id }));
            if (f.type === 'queue-empty') setTimeout(() => ws.close(), 200);
          };
          ws.onclose = () => resolve({ opened, frames });
        });
      const t = await ticketOf();
      const first = await open(`?ticket=${encodeURIComponent(t.body.ticket)}`);
      const replay = await open(`?ticket=${encodeURIComponent(t.body.ticket)}`);
      const forged = await open(`?ticket=${'A'.repeat(43)}`);
      const none = await open('');
      const anonymous = await fetch('/v1/messages/stream-ticket', { method: 'POST' });
      return { ticket: { status: t.status, expiresIn: t.body.expiresIn, length: t.body.ticket.length }, first, replay, forged, none, anonymous: anonymous.status };
    }, alice.auth);
    assert.deepEqual(result.ticket, { status: 200, expiresIn: 30, length: 43 });
    assert.equal(result.first.opened, true, log.lines.join('\n'));
    const msgs = result.first.frames.filter((f) => f.type === 'message');
    assert.deepEqual(msgs.map((f) => Buffer.from(f.body as string, 'base64').toString()), ['hello browser']);
    assert.equal(result.first.frames.at(-1)!.type, 'queue-empty');
    assert.equal(result.replay.opened, false, 'a ticket opens one socket only');
    assert.equal(result.forged.opened, false);
    assert.equal(result.none.opened, false);
    assert.equal(result.anonymous, 401);
    // The page's ack reached the server: nothing left queued.
    assert.deepEqual((await http(base, 'GET', '/v1/messages', { auth: alice.auth })).json.messages, []);
    assert.ok(!log.urls.some((u) => u.includes(alice.key) || u.includes(alice.kid)), 'no session credential in a URL');
  });
});
