// The IM bridge against a real Prosody (test/bridge/prosody.ts) with an independent @xmpp/client on the other side:
// linking, presence on the remote server, IMs both ways over the app's WebSocket, the vault across a password
// change and an administrator's reset, refused credentials, and what must never be stored or logged in the clear.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { missingPeer } from '../helpers/peers.ts';
import { addUsers, adminToken, releaseStack, sqliteOnly, storeQuery, tempDir, testConfig } from '../helpers/server.ts';
import { http, openStream } from '../messaging/helpers.ts';
import { imSend, linkedList, linkXmpp, passwordSession, waitForState } from './helpers.ts';
import { DOMAIN, online, peer, startProsody, type Peer, type Prosody } from './prosody.ts';

const skip = missingPeer('prosody', 'prosodyctl');
const ALICE_XMPP_PASSWORD = 'alice-xmpp-Secret-7f3a';

describe('IM bridge: XMPP through Prosody', { skip }, () => {
  let prosody: Prosody;
  let server: RunningServer;
  let base: string;
  let dataDir: string;
  const logLines: string[] = [];
  let bob: Peer;

  before(async () => {
    prosody = await startProsody({ alice: ALICE_XMPP_PASSWORD, bob: 'bob-xmpp-pw', dave: 'dave-xmpp-pw', erin: 'erin-xmpp-pw' });
    dataDir = tempDir();
    // Prosody listens on loopback, which the server policy refuses by default (SSRF): this deployment allows it.
    const config = testConfig(dataDir, { 'log-level': 'debug', 'bridge-allow-servers': '127.0.0.1' });
    await addUsers(config, { 'carol@example.test': 'carol-password-1', 'frank@example.test': 'frank-password-1', 'gina@example.test': 'gina-password-1' });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    server = await startServer(config, { log: createLogger('debug', 'switchboard', sink) });
    base = `http://127.0.0.1:${server.http.port}`;
    bob = await peer(prosody, 'bob', 'bob-xmpp-pw');
  });

  after(async () => {
    await bob?.stop();
    await server?.stop();
    await prosody?.stop();
    await releaseStack(dataDir);
  });

  it('links an account that shows online on Prosody within 5 s; IMs flow both ways over the WebSocket; logout takes it offline', async () => {
    const s = await passwordSession(base, 'carol@example.test', 'carol-password-1');
    assert.equal(s.vault.state, 'created');
    assert.match(s.vault.recoveryKey as string, /^[0-9A-Z]{4}(-[0-9A-Z]{1,4}){12}$/);
    const stream = await openStream(base, s);
    const t0 = Date.now();
    const linked = await linkXmpp(base, s, prosody.server, `alice@${DOMAIN}`, ALICE_XMPP_PASSWORD);
    await bob.waitFor(() => online(bob, `alice@${DOMAIN}`), 'alice online at bob (Prosody routes her presence)', 5000);
    const tookMs = Date.now() - t0;
    await waitForState(base, s, linked.id as string, 'connected');
    await stream.waitFor((f) => f.some((x) => x.type === 'link-state' && x.linkedAccount === linked.id && x.state === 'connected'), 'the link-state frame');

    await bob.say(`alice@${DOMAIN}`, 'hello from bob');
    await stream.waitFor((f) => f.some((x) => x.type === 'message' && x.remote === `bob@${DOMAIN}`), 'the IM on the app socket');
    const frame = stream.frames.find((x) => x.type === 'message' && x.remote === `bob@${DOMAIN}`)!;
    assert.equal(Buffer.from(frame.body as string, 'base64').toString(), 'hello from bob');
    assert.equal(frame.linkedAccount, linked.id);
    stream.ack(frame.id as string);

    const r = await imSend(base, s, linked.id as string, `bob@${DOMAIN}`, 'hi bob, from the app');
    assert.equal(r.status, 202, JSON.stringify(r.json));
    await bob.waitFor(() => bob.messages.some((m) => m.getChildText('body') === 'hi bob, from the app'), 'the reply at bob');
    const reply = bob.messages.find((m) => m.getChildText('body') === 'hi bob, from the app')!;
    assert.equal(reply.attrs.from?.split('/')[0], `alice@${DOMAIN}`);
    await stream.waitFor((f) => f.some((x) => x.type === 'delivery' && x.id === r.json.id && x.status === 'sent'), 'the delivery frame');

    // Another account's session cannot send through carol's link.
    const frank = await passwordSession(base, 'frank@example.test', 'frank-password-1');
    assert.equal((await imSend(base, frank, linked.id as string, `bob@${DOMAIN}`, 'forged')).status, 404);

    await stream.close();
    assert.equal((await http(base, 'DELETE', '/v1/sessions/current', { auth: s.auth })).status, 204);
    await bob.waitFor(() => !online(bob, `alice@${DOMAIN}`), 'alice offline after the last session ended');
    assert.equal((await imSend(base, s, linked.id as string, `bob@${DOMAIN}`, 'after logout')).status, 401, 'an ended session cannot send');
    const again = await passwordSession(base, 'carol@example.test', 'carol-password-1');
    assert.equal(again.vault.state, 'open');
    await bob.waitFor(() => online(bob, `alice@${DOMAIN}`), 'alice online again at the next login', 5000);
    assert.equal((await http(base, 'DELETE', `/v1/linked-accounts/${linked.id as string}`, { auth: again.auth })).status, 204);
    await bob.waitFor(() => !online(bob, `alice@${DOMAIN}`), 'alice offline once unlinked');
    assert.deepEqual(await linkedList(base, again), []);
    await http(base, 'DELETE', '/v1/sessions/current', { auth: again.auth });
    await http(base, 'DELETE', '/v1/sessions/current', { auth: frank.auth });
    console.log(`# online on Prosody ${tookMs} ms after POST /v1/linked-accounts`);
  });

  it('a password change rewraps only the Secret: linked ciphertexts byte-identical, the account still connects; a wrong password is 401', async () => {
    const s = await passwordSession(base, 'frank@example.test', 'frank-password-1');
    const linked = await linkXmpp(base, s, prosody.server, `dave@${DOMAIN}`, 'dave-xmpp-pw');
    await waitForState(base, s, linked.id as string, 'connected');
    const before = await storeQuery<{ ciphertext: string }>(dataDir, 'SELECT ciphertext FROM linked_accounts WHERE id = ?', linked.id as string);
    const wrapBefore = await storeQuery<{ wrapped: string }>(dataDir, "SELECT wrapped FROM vault_wraps WHERE slot = 'password' AND account_id = (SELECT account_id FROM linked_accounts WHERE id = ?)", linked.id as string);

    const login = await http(base, 'POST', '/auth/login', { body: { username: 'frank@example.test', password: 'frank-password-1' } });
    const id = (await server.accounts.findByName('frank', 'example.test'))!.id;
    const change = await http(base, 'PUT', `/users/${id}/password`, { auth: `Bearer ${login.json.access_token as string}`, body: { currentPassword: 'frank-password-1', password: 'frank-password-2' } });
    assert.equal(change.status, 204, JSON.stringify(change.json));

    const after = await storeQuery<{ ciphertext: string }>(dataDir, 'SELECT ciphertext FROM linked_accounts WHERE id = ?', linked.id as string);
    const wrapAfter = await storeQuery<{ wrapped: string }>(dataDir, "SELECT wrapped FROM vault_wraps WHERE slot = 'password' AND account_id = ?", id);
    assert.equal(after[0].ciphertext, before[0].ciphertext, 'the linked ciphertext is byte-identical');
    assert.notEqual(wrapAfter[0].wrapped, wrapBefore[0].wrapped, 'the Secret was rewrapped');

    await assert.rejects(passwordSession(base, 'frank@example.test', 'frank-password-1'), (e: { status?: number }) => e.status === 401, 'the old password is refused');
    const s2 = await passwordSession(base, 'frank@example.test', 'frank-password-2');
    assert.equal(s2.vault.state, 'open', 'the new password opens the same vault');
    const dave = await peer(prosody, 'erin', 'erin-xmpp-pw');
    try {
      await dave.waitFor(() => online(dave, `dave@${DOMAIN}`), 'dave online through the rewrapped vault', 10_000);
    } finally {
      await dave.stop();
    }
    await waitForState(base, s2, linked.id as string, 'connected');
  });

  it("after an administrator's reset the recovery key opens the vault; without it DELETE /v1/vault says the credentials are lost and removes them", async () => {
    const s = await passwordSession(base, 'gina@example.test', 'gina-password-1');
    const recoveryKey = s.vault.recoveryKey as string;
    const linked = await linkXmpp(base, s, prosody.server, `erin@${DOMAIN}`, 'erin-xmpp-pw');
    await waitForState(base, s, linked.id as string, 'connected');
    const gina = (await server.accounts.findByName('gina', 'example.test'))!;
    const admin = await adminToken(server);
    assert.equal((await http(base, 'PUT', `/users/${gina.id}/password`, { auth: `Bearer ${admin}`, body: { password: 'gina-password-2' } })).status, 204);

    const locked = await passwordSession(base, 'gina@example.test', 'gina-password-2');
    assert.equal(locked.vault.state, 'recovery_required');
    assert.match(locked.vault.message as string, /recovery key/);
    const wrong = await passwordSession(base, 'gina@example.test', 'gina-password-2', { recoveryKey: recoveryKey.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) });
    assert.equal(wrong.vault.state, 'recovery_required', 'a wrong recovery key opens nothing');
    const opened = await passwordSession(base, 'gina@example.test', 'gina-password-2', { recoveryKey });
    assert.equal(opened.vault.state, 'open');
    await waitForState(base, opened, linked.id as string, 'connected');
    // Rewrapped under the new password: the recovery key is not needed again.
    assert.equal((await passwordSession(base, 'gina@example.test', 'gina-password-2')).vault.state, 'open');

    // A second reset, and the user has no recovery key: the vault and the linked accounts go, said plainly.
    assert.equal((await http(base, 'PUT', `/users/${gina.id}/password`, { auth: `Bearer ${admin}`, body: { password: 'gina-password-3' } })).status, 204);
    const s3 = await passwordSession(base, 'gina@example.test', 'gina-password-3');
    assert.equal(s3.vault.state, 'recovery_required');
    const forget = await http(base, 'DELETE', '/v1/vault', { auth: s3.auth });
    assert.equal(forget.status, 200);
    assert.match(forget.json.message as string, /credentials are lost/);
    assert.deepEqual(await linkedList(base, s3), []);
    const fresh = await passwordSession(base, 'gina@example.test', 'gina-password-3');
    assert.equal(fresh.vault.state, 'created', 'a new vault with a new recovery key');
  });

  it('the remote server changing the password gives bad_credentials, and no reconnect loop', async () => {
    const s = await passwordSession(base, 'carol@example.test', 'carol-password-1');
    const linked = await linkXmpp(base, s, prosody.server, `alice@${DOMAIN}`, ALICE_XMPP_PASSWORD);
    await waitForState(base, s, linked.id as string, 'connected');
    prosody.setUser('alice', 'changed-on-the-remote');
    assert.equal((await http(base, 'DELETE', '/v1/sessions/current', { auth: s.auth })).status, 204);
    await bob.waitFor(() => !online(bob, `alice@${DOMAIN}`), 'alice offline');
    const s2 = await passwordSession(base, 'carol@example.test', 'carol-password-1');
    const stream = await openStream(base, s2);
    const state = await waitForState(base, s2, linked.id as string, 'bad_credentials');
    assert.match(String(state.reason), /not-authorized|authentication/);
    // Backoff would have tried again after 1, 2 and 4 s: nothing may come in 7 s (each attempt says `connecting`).
    const attempts = () => stream.frames.filter((f) => f.type === 'link-state' && f.linkedAccount === linked.id && f.state === 'connecting').length;
    const seen = attempts();
    await new Promise((r) => setTimeout(r, 7000));
    assert.equal(attempts(), seen, 'no reconnect attempt after bad_credentials');
    await stream.close();
    assert.equal((await linkedList(base, s2)).find((l) => l.id === linked.id)?.state, 'bad_credentials');
    prosody.setUser('alice', ALICE_XMPP_PASSWORD);
    await http(base, 'DELETE', `/v1/linked-accounts/${linked.id as string}`, { auth: s2.auth });
  });

  it('no plaintext linked password or Secret in the database or the logs', async () => {
    const s = await passwordSession(base, 'carol@example.test', 'carol-password-1');
    const linked = await linkXmpp(base, s, prosody.server, `alice@${DOMAIN}`, ALICE_XMPP_PASSWORD, { stayConnected: true });
    await waitForState(base, s, linked.id as string, 'connected');
    const held = server.bridge.bridge.keyring.get(s.kid);
    assert.ok(held, 'the session holds the Secret on this node');
    const secret = Buffer.from(held.secret);
    const forms = [ALICE_XMPP_PASSWORD, secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')];
    const rows = [
      ...(await storeQuery(dataDir, 'SELECT * FROM linked_accounts')),
      ...(await storeQuery(dataDir, 'SELECT * FROM vault_wraps')),
      ...(await storeQuery(dataDir, 'SELECT * FROM app_sessions')),
    ];
    const dump = JSON.stringify(rows);
    for (const f of forms) assert.ok(!dump.includes(f), 'not in any bridge row');
    if (!sqliteOnly('the database file')) {
      const file = readFileSync(path.join(dataDir, 'switchboard.db'));
      const wal = (() => {
        try {
          return readFileSync(path.join(dataDir, 'switchboard.db-wal'));
        } catch {
          return Buffer.alloc(0);
        }
      })();
      for (const bytes of [Buffer.from(ALICE_XMPP_PASSWORD), secret, ...forms.slice(1).map((f) => Buffer.from(f))]) {
        assert.equal(file.indexOf(bytes), -1, 'not in the SQLite file');
        assert.equal(wal.indexOf(bytes), -1, 'not in its WAL');
      }
    }
    const logs = logLines.join('');
    assert.ok(logs.includes('link state'), 'the logs were captured');
    for (const f of forms) assert.ok(!logs.includes(f), 'not in the logs');
    // Ending the session zeroes the Secret it held.
    assert.equal((await http(base, 'DELETE', '/v1/sessions/current', { auth: s.auth })).status, 204);
    assert.ok(held.secret.every((b) => b === 0), 'zeroed when the session ended');
    assert.equal(server.bridge.bridge.keyring.get(s.kid), null);
    const s2 = await passwordSession(base, 'carol@example.test', 'carol-password-1');
    await http(base, 'DELETE', `/v1/linked-accounts/${linked.id as string}`, { auth: s2.auth });
  });
});
