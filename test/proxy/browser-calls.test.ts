// Browser to browser through the proxy: two web softphones (/phone/, SIP.js) in headless Chromium with a fake
// microphone sign in, REGISTER over WSS with their Bearer tokens, and call each other. The INVITE carries the token
// in Proxy-Authorization; the callee's page rings, answers, and the media connects: each page's RTCPeerConnection
// reaches `connected` (ICE and DTLS over host candidates, no STUN/TURN) and plays a live remote audio track. Then
// BYE, once from the caller and once from the callee, ends the call on both pages and on the bus.
//
// And a SIP phone over UDP calling a browser: a raw UDP user agent (Digest, 407) whose media engine is an
// RTCPeerConnection in a third, blank page (its SDP offer goes into the INVITE, the browser's answer from the 200
// back into it), so the UDP leg's signalling is a phone's and the media really connects. The proxy Record-Routes
// twice (UDP on one side, WS on the other, RFC 5658), and the phone's ACK and BYE follow that route to the page.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM_MEDIA_ARGS, launchChromium, missingBrowser, newPage, signIn, type PageLog } from '../helpers/browser.ts';
import { collectEvents } from '../helpers/events.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { Call, isResponse, waitFor } from '../helpers/sip-ua.ts';

const D = 'example.test';
const PW = { alice: 'alice-password', bob: 'bob-password' };

interface Phone {
  page: Page;
  log: PageLog;
}

function explain(...phones: Phone[]): string {
  return phones.map((p, i) => `--- page ${i} log ---\n${p.log.lines.slice(-30).join('\n')}`).join('\n');
}

describe('browser to browser calls over WSS', { skip: missingBrowser() }, () => {
  let server: TestServer;
  let browser: Browser;
  let alice: Phone;
  let bob: Phone;

  const phone = async (user: 'alice' | 'bob'): Promise<Phone> => {
    const { page, log } = await newPage(browser, { width: 1100, height: 900 });
    await page.goto(`${server.httpUrl}/phone/`);
    await signIn(page, `${user}@${D}`, PW[user]);
    await page.getByTestId('reg-state').filter({ hasText: 'registered (WSS)' }).waitFor({ timeout: 15_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${log.lines.slice(-30).join('\n')}`);
    });
    return { page, log };
  };
  const state = (p: Phone, text: string | RegExp, ms = 15_000) =>
    p.page.getByTestId('call-state').filter({ hasText: text }).waitFor({ timeout: ms }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain(alice, bob)}`);
    });
  const media = (p: Phone, text: string, ms = 20_000) =>
    p.page.getByTestId('media-state').filter({ hasText: text }).waitFor({ timeout: ms }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain(alice, bob)}`);
    });
  /** The remote audio the page plays: a live track from the other page's fake microphone. */
  const remoteAudio = (p: Phone) =>
    p.page.locator('#remote-audio').evaluate((audio) => {
      const stream = (audio as unknown as { srcObject: { getAudioTracks(): Array<{ readyState: string }> } | null }).srcObject;
      return stream?.getAudioTracks().map((t) => t.readyState) ?? [];
    });

  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: PW.alice, [`bob@${D}`]: PW.bob } });
    browser = await launchChromium(CHROMIUM_MEDIA_ARGS);
    alice = await phone('alice');
    bob = await phone('bob');
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  const callAndConnect = async (caller: Phone, callee: Phone, calleeAor: string, callerAor: string) => {
    await caller.page.getByTestId('call-input').fill(calleeAor);
    await caller.page.getByTestId('call-start').click();
    await state(callee, /^ringing$/);
    assert.equal(await callee.page.getByTestId('call-peer').textContent(), `from ${callerAor}`);
    await callee.page.getByTestId('call-answer').click();
    await state(callee, /^in call$/);
    await state(caller, /^in call$/);
    // The media: ICE and DTLS between the pages, over the host candidates their SDP carried through the proxy.
    await media(caller, 'media connected');
    await media(callee, 'media connected');
    assert.deepEqual(await remoteAudio(caller), ['live']);
    assert.deepEqual(await remoteAudio(callee), ['live']);
  };

  it('alice calls bob: bob rings, answers, the media connects on both pages; alice hangs up', async () => {
    const events = await collectEvents(server.bus, 'call.*.example%2Etest.bob');
    const [binding] = await server.location.lookup(`bob@${D}`);
    assert.equal(binding.transport, 'WSS');
    await callAndConnect(alice, bob, `bob@${D}`, `alice@${D}`);
    await events.waitFor((e) => e.some((x) => x.topic.startsWith('call.answered.')), 'call.answered');

    await alice.page.getByTestId('call-hangup').click();
    await state(alice, /^ended$/);
    await state(bob, /^ended$/);
    await events.waitFor((e) => e.some((x) => x.topic.startsWith('call.ended.')), 'call.ended');
    const ended = events.events.find((x) => x.topic.startsWith('call.ended.'))!;
    assert.match(String(ended.payload.caller), /alice@example\.test/, JSON.stringify(ended.payload));
    events.stop();
  });

  it('bob calls alice back, and the callee ends it: BYE from the other side along the Record-Route', async () => {
    await callAndConnect(bob, alice, `alice@${D}`, `bob@${D}`);
    await alice.page.getByTestId('call-hangup').click();
    await state(alice, /^ended$/);
    await state(bob, /^ended$/);
  });

  it('a declined call is refused with 486 on the caller\u2019s page, and no page broke its CSP', async () => {
    await alice.page.getByTestId('call-input').fill(`bob@${D}`);
    await alice.page.getByTestId('call-start').click();
    await state(bob, /^ringing$/);
    await bob.page.getByTestId('call-hangup').click();
    await state(alice, /^refused: 486/);
    await state(bob, /^ended$/);
    for (const p of [alice, bob]) {
      assert.deepEqual(p.log.lines.filter((l) => /Content Security Policy|pageerror|Refused/i.test(l)), [], explain(p));
    }
  });

  it('a SIP phone over UDP calls the browser: double Record-Route (UDP, WS), the browser answers, the media connects', async () => {
    // The phone's media engine: a peer connection in a blank page, its offer complete with host candidates.
    const { page: engine } = await newPage(browser);
    const offer = await engine.evaluate(`(async () => {
      const pc = new RTCPeerConnection({ iceServers: [] });
      globalThis.pc = pc;
      pc.addTransceiver('audio', { direction: 'sendrecv' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((done) => {
        if (pc.iceGatheringState === 'complete') return done();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
        setTimeout(done, 5000);
      });
      return pc.localDescription.sdp;
    })()`) as string;
    assert.match(offer, /a=candidate:/);

    const c = await SipTestClient.open('UDP', server.sipPort);
    try {
      const k = new Call(c, { from: `<sip:alice@${D}>`, to: `<sip:bob@${D}>`, uri: `sip:bob@${D}`, user: 'alice', password: PW.alice, sdp: offer });
      await k.start();
      await state(bob, /^ringing$/);
      assert.equal(await bob.page.getByTestId('call-peer').textContent(), `from alice@${D}`);
      await bob.page.getByTestId('call-answer').click();
      const ok = await k.response((s) => s === 200, 15_000);
      const rr = ok.all('Record-Route').flatMap((v) => v.split(/,(?![^<]*>)/));
      assert.equal(rr.length, 2, `two Record-Route entries when the legs' transports differ: ${rr.join(' | ')}`);
      assert.match(rr[0], /transport=ws/i, 'the entry facing the browser first (the proxy pushed it last)');
      assert.match(rr[1], /transport=udp/i);
      k.established(ok);
      c.send(k.inDialog('ACK'));
      const answer = ok.raw.slice(ok.raw.indexOf('\r\n\r\n') + 4);
      assert.match(answer, /^v=0/);
      await engine.evaluate(`globalThis.pc.setRemoteDescription({ type: 'answer', sdp: ${JSON.stringify(answer)} })`);
      await state(bob, /^in call$/);
      await media(bob, 'media connected');
      await engine.waitForFunction(`globalThis.pc.connectionState === 'connected'`, undefined, { timeout: 20_000 });

      // The phone hangs up: its BYE along the route set reaches the page, whose 200 comes back.
      c.send(k.inDialog('BYE'));
      await waitFor(c, isResponse('BYE', 200), 10_000);
      await state(bob, /^ended$/);
    } finally {
      c.close();
      await engine.close();
    }
  });
});
