// Two baresip softphones call each other through the proxy (issue 17): both register with Digest, the caller
// answers the proxy's 407, the callee auto-answers (answermode=auto), the call is up (200/ACK, RTP flows), and a
// BYE from either side ends it on both. One pair over UDP, one with the callee on TCP (the caller on UDP: two
// Record-Route entries, RFC 5658). Audio is a 440 Hz sine (ausine, 48 kHz, so Opus) played into /dev/null.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, startBaresip, type Baresip } from '../helpers/baresip.ts';
import { missingPeer } from '../helpers/peers.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const D = 'example.test';

async function until(pred: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const AUDIO = { modules: ['opus.so', 'ausine.so', 'aufile.so', 'menu.so'], config: ['audio_source\t\tausine,440', 'audio_player\t\taufile,/dev/null', 'audio_alert\t\taufile,/dev/null'] };

describe('calls between baresip softphones', { skip: missingPeer('baresip') }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw', [`carol@${D}`]: 'carol-pw', [`dave@${D}`]: 'dave-pw' } });
  });
  after(() => server.close());

  const phone = async (user: string, transport: 'udp' | 'tcp', autoAnswer: boolean): Promise<Baresip> =>
    startBaresip({ port: server.sipPort, user, password: `${user}-pw`, domain: D, transport, ...AUDIO, accountParams: autoAnswer ? ';answermode=auto' : '', ctrlPort: await freePort() });

  for (const [caller, callee, calleeTransport, hangsUp] of [
    ['alice', 'bob', 'udp', 'caller'],
    ['carol', 'dave', 'tcp', 'callee'],
  ] as const) {
    it(`${caller} (UDP) calls ${callee} (${calleeTransport.toUpperCase()}), who answers; the ${hangsUp} hangs up`, { timeout: 60_000 }, async () => {
      const b = await phone(callee, calleeTransport, true);
      const a = await phone(caller, 'udp', false);
      try {
        await a.waitFor(/200 OK \(Switchboard\)/);
        await b.waitFor(/200 OK \(Switchboard\)/);
        await a.command('dial', `sip:${callee}@${D}`);
        await a.waitFor(new RegExp(`Call established: sip:${callee}@${D}`), 15_000);
        await b.waitFor(new RegExp(`Call established: sip:${caller}@${D}`), 15_000);
        assert.match(a.output(), /SIP\/2\.0 407 Proxy Authentication Required/);
        assert.match(a.output(), /Proxy-Authorization: Digest username="/);
        const received = b.output().slice(b.output().indexOf('INVITE sip:'));
        const head = received.slice(0, received.search(/\r?\n\r?\n/));
        const rr = head.split(/\r?\n/).filter((l) => /^Record-Route:/i.test(l)).flatMap((l) => l.slice(13).split(/,(?![^<]*>)/));
        assert.equal(rr.length, calleeTransport === 'udp' ? 1 : 2, `Record-Route: ${rr.join(', ')}`);
        // Media flows both ways through the dialog the proxy set up.
        await a.waitFor(/incoming rtp for 'audio' established/, 10_000);
        await b.waitFor(/incoming rtp for 'audio' established/, 10_000);
        assert.match(await a.command('listcalls'), /Active calls \(1\)/);
        await (hangsUp === 'caller' ? a : b).command('hangup');
        // baresip's stdout is block-buffered: its own list of calls (over ctrl_tcp) says when the BYE got there.
        for (const p of [a, b]) await until(async () => /Active calls \(0\)/.test(await p.command('listcalls')), 'the call to end on both phones');
      } finally {
        await a.stop();
        await b.stop();
      }
      // The BYE travelled through the proxy (loose routing: our Route, popped before the other phone).
      const [ender, other] = hangsUp === 'caller' ? [a, b] : [b, a];
      assert.match(ender.output(), /BYE sip:[^\r\n]+\r?\n(?:[^\r\n]+\r?\n)*?Route: <sip:127\.0\.0\.1:\d+;transport=(?:udp|tcp);lr;/);
      const at = other.output().indexOf('\nBYE sip:');
      assert.ok(at >= 0, 'the other phone got the BYE');
      const bye = other.output().slice(at);
      assert.doesNotMatch(bye.slice(0, bye.search(/\r?\n\r?\n/)), /\nRoute:/, 'no Route left for the phone that gets the BYE');
    });
  }
});
