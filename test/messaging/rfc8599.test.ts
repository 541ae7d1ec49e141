// RFC 8599 at the registrar: a REGISTER whose contact names a push provider served here (pn-provider, pn-prid,
// pn-param) is stored with those parameters (listed back in the 200 OK and by the location service) and gets
// Feature-Caps: *;+sip.pns="<provider>";+sip.pnsreg="<s>" (Web Push adds +sip.vapid with the VAPID key); a provider
// not served here gets 555 and stores nothing; removing such a binding passes; a plain REGISTER gets no Feature-Caps.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SipTestClient } from '../helpers/sip-client.ts';

describe('RFC 8599 push parameters at the registrar', () => {
  let server: TestServer;
  let c: SipTestClient;
  const reg = { user: 'alice', password: 'alice-pw', domain: 'example.test' };
  before(async () => {
    server = await startTestServer({ users: { 'alice@example.test': 'alice-pw' }, flags: { 'push-pnsreg': '90' } });
    c = await SipTestClient.open('UDP', server.sipPort);
  });
  after(async () => {
    c.close();
    await server.close();
  });

  it('stores pn-* with the binding and advertises the push service in the 200 OK', async () => {
    const contact = `<sip:alice@127.0.0.1:${c.localPort};pn-provider=webpush;pn-prid=sub-1234;pn-param=ignored>`;
    const r = await register(c, { ...reg, contact, expires: 600 });
    assert.equal(r.status, 200);
    const vapid = ((await (await fetch(`${server.httpUrl}/v1/push/vapid`)).json()) as { publicKey: string }).publicKey;
    assert.equal(r.header('Feature-Caps'), `*;+sip.pns="webpush";+sip.vapid="${vapid}";+sip.pnsreg="90"`);
    assert.match(r.header('Contact')!, /pn-provider=webpush;pn-prid=sub-1234;pn-param=ignored/);
    const bindings = await server.location.lookup('alice@example.test');
    assert.equal(bindings.length, 1);
    assert.match(bindings[0]!.contact, /;pn-provider=webpush;pn-prid=sub-1234;pn-param=ignored/);
  });

  it('answers 555 for a provider not served here and stores nothing', async () => {
    const contact = `<sip:alice@127.0.0.1:${c.localPort + 1};pn-provider=apns;pn-prid=00fc13adff78;pn-param=ABCD1234.com.example.voip>`;
    const r = await register(c, { ...reg, contact, expires: 600 });
    assert.equal(r.status, 555);
    assert.match(r.reason, /^Push Notification Service Not Supported/);
    assert.equal((await server.location.lookup('alice@example.test')).length, 1);
    const removal = await register(c, { ...reg, contact, expires: 0 });
    assert.equal(removal.status, 200, 'a removal passes whatever it names');
  });

  it('gives a plain REGISTER no Feature-Caps', async () => {
    const r = await register(c, { ...reg, expires: 600 });
    assert.equal(r.status, 200);
    assert.equal(r.header('Feature-Caps'), undefined);
  });
});
