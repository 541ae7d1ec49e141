// Path (RFC 3327) only from trusted edge proxies (issue 15): a phone that sends its own Path must not get it
// stored (and so exported to Kazoo as Proxy-Path / fs_path, or used to route calls and check-sync NOTIFYs). From a
// source inside --sip-trusted-proxies the Path is stored as before. Checked over SIP (UDP) and the HTTP API.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { register } from '../helpers/register.ts';
import { SipTestClient } from '../helpers/sip-client.ts';
import { adminToken, startTestServer, type Flags } from '../helpers/server.ts';

const PATH = '<sip:attacker.example.net;lr>';

async function registeredPath(flags: Flags): Promise<{ status: number; echoed: string[]; stored: string[] }> {
  const s = await startTestServer({ flags, users: { 'alice@example.test': 'a-pw' } });
  const c = await SipTestClient.open('UDP', s.sipPort);
  try {
    const r = await register(c, { user: 'alice', password: 'a-pw', domain: 'example.test', headers: [['Path', PATH], ['Supported', 'path']] });
    const token = await adminToken(s);
    const res = await fetch(`${s.httpUrl}/v1/registrations?realm=example.test&user=alice`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { registrations: Array<{ bindings: Array<{ path: string[] }> }> };
    assert.equal(body.registrations.length, 1, 'the phone is registered either way');
    return { status: r.status, echoed: r.all('Path'), stored: body.registrations[0].bindings[0].path };
  } finally {
    c.close();
    await s.close();
  }
}

describe('Path from user agents', () => {
  it('is ignored from a source outside --sip-trusted-proxies (the registration still succeeds)', async () => {
    const r = await registeredPath({ 'sip-trusted-proxies': ['10.0.0.0/8', '192.0.2.1'] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.stored, [], 'no Path stored');
    assert.deepEqual(r.echoed, [], 'no Path echoed');
  });

  it('is ignored by default (no trusted proxies)', async () => {
    const r = await registeredPath({});
    assert.equal(r.status, 200);
    assert.deepEqual(r.stored, []);
  });

  it('is stored from a trusted edge proxy', async () => {
    const r = await registeredPath({ 'sip-trusted-proxies': ['127.0.0.0/8'] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.stored, [PATH]);
    assert.deepEqual(r.echoed, [PATH]);
  });
});
