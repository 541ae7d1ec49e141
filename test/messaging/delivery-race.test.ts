// A stored message is sent to SIP devices by one path at a time (issue 18: no duplicated offline message). An app's
// message goes at once to the account's devices (deliverStored) and a REGISTER dumps what is stored (msilo's m_dump):
// a raw UA device holds its 200 to the first path's MESSAGE while it re-REGISTERs, so the dump runs while that
// delivery is in flight. The device receives the message once (one transaction with Call-ID <id>@inbox), and the
// dump, skipping the leased message, still delivers the next one it was not holding (which shows the dump ran).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { appLogin, send } from './helpers.ts';
import { startTestServer, storeQuery, type TestServer } from '../helpers/server.ts';
import { holdWhileRegistering, MessageDevice } from '../helpers/message-device.ts';

const D = 'example.test';

describe('a stored message sent to SIP devices by two paths at once', () => {
  let server: TestServer;
  let device: MessageDevice;
  before(async () => {
    server = await startTestServer({ users: { [`alice@${D}`]: 'alice-pw', [`bob@${D}`]: 'bob-pw' } });
    device = await MessageDevice.open(server.sipPort, D);
  });
  after(async () => {
    device.close();
    await server.close();
  });

  const undelivered = async (id: string) => (await storeQuery<{ n: number }>(server.dataDir, 'SELECT COUNT(*) AS n FROM messages WHERE id = ? AND delivered_at IS NULL', id))[0]!.n;

  it('reaches a device that re-REGISTERs while the app message is on its way once', async () => {
    assert.equal(await device.register('alice', 'alice-pw'), 200);
    const bob = await appLogin(server.httpUrl, `bob@${D}`, 'bob-pw');

    const ids = await holdWhileRegistering(device, {
      user: 'alice',
      password: 'alice-pw',
      post: async (text) => {
        const r = await send(server.httpUrl, bob, `alice@${D}`, text);
        assert.equal(r.status, 200);
        return r.json.id as string;
      },
    });
    const deadline = Date.now() + 10_000;
    while (Number(await undelivered(ids[0])) + Number(await undelivered(ids[1])) > 0) {
      assert.ok(Date.now() < deadline, 'both are acked after their 2xx');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(device.count(`${ids[0]}@inbox`), 1, 'and not after it either');
  });
});
