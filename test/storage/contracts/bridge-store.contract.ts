// The VaultStore and LinkedAccountStore contracts (src/storage/ports/bridge.ts), run against every adapter: one
// vault per account however many nodes create it at once, wraps replaced one slot at a time, linked accounts
// bounded per account and removable only by their owner, the connector compare-and-set with one winner, and
// everything gone with the account.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NewLinkedAccount, VaultWrap } from '../../../src/storage/ports/bridge.ts';
import { useStores, type OpenStores } from './stores.ts';

const T0 = 1_800_000_000_000;

export function bridgeStoreContract(open: OpenStores): void {
  describe('VaultStore and LinkedAccountStore contract', () => {
    const env = useStores(open);
    const account = (username: string) => env().accounts.create({ username, realm: 'example.test', passwordHash: null, credentials: [] });
    const wrap = (slot: VaultWrap['slot'], wrapped: string): VaultWrap => ({ slot, salt: 'c2FsdA', kdf: 'argon2id m=19456 t=2 p=1', wrapped });
    const linked = (accountId: string, id: string, o: Partial<NewLinkedAccount> = {}): NewLinkedAccount => ({
      id,
      accountId,
      type: 'xmpp',
      server: 'example.org',
      username: 'alice',
      options: '{}',
      ciphertext: `ct-${id}`,
      staySealed: null,
      createdAt: T0,
      ...o,
    });

    it('creates one vault per account even when two nodes race, and replaces a wrap by slot', async () => {
      const s = env();
      const peer = await s.node();
      const a = await account('alice');
      const [x, y] = await Promise.all([s.bridge.createVault(a.id, [wrap('password', 'p1'), wrap('recovery', 'r1')]), peer.bridge.createVault(a.id, [wrap('password', 'p2')])]);
      assert.equal(Number(x) + Number(y), 1, 'exactly one creation wins');
      assert.deepEqual(
        (await s.bridge.getWraps(a.id)).map((w) => w.slot),
        x ? ['password', 'recovery'] : ['password'],
      );
      await s.bridge.putWrap(a.id, wrap('password', 'p3'));
      await s.bridge.putWrap(a.id, wrap('device:7', 'd1'));
      const wraps = await peer.bridge.getWraps(a.id);
      assert.equal(wraps.find((w) => w.slot === 'password')?.wrapped, 'p3');
      assert.equal(wraps.find((w) => w.slot === 'device:7')?.wrapped, 'd1');
      assert.equal(await s.bridge.deleteWrap(a.id, 'device:7'), true);
      assert.equal(await s.bridge.deleteWrap(a.id, 'device:7'), false);
      assert.deepEqual(await s.bridge.getWraps((await account('bob')).id), []);
    });

    it('bounds linked accounts per account, lists them oldest first, and lets only the owner delete one', async () => {
      const s = env();
      const a = await account('alice');
      const b = await account('bob');
      assert.equal(await s.bridge.createLinked(linked(a.id, 'l1'), 2), true);
      assert.equal(await s.bridge.createLinked(linked(a.id, 'l2', { createdAt: T0 + 1, type: 'irc', staySealed: 'sealed' }), 2), true);
      assert.equal(await s.bridge.createLinked(linked(a.id, 'l3'), 2), false, 'over the limit');
      const list = await s.bridge.listLinked(a.id);
      assert.deepEqual(list.map((l) => l.id), ['l1', 'l2']);
      assert.equal(list[0]!.state, 'disconnected');
      assert.equal(list[0]!.connector, null);
      assert.equal(list[0]!.ciphertext, 'ct-l1');
      assert.equal(list[1]!.staySealed, 'sealed');
      assert.equal(await s.bridge.deleteLinked(b.id, 'l1'), false, "another account's");
      assert.equal(await s.bridge.deleteLinked(a.id, 'l1'), true);
      assert.equal(await s.bridge.getLinked('l1'), null);
    });

    it('keeps state, the stay-connected copy and the connector; the connector changes hands once', async () => {
      const s = env();
      const peer = await s.node();
      const a = await account('alice');
      await s.bridge.createLinked(linked(a.id, 'l1'), 10);
      assert.equal(await s.bridge.setLinkState('l1', 'bad_credentials', 'not-authorized', T0 + 5), true);
      assert.equal(await peer.bridge.setLinkState('l1', 'connecting', null, T0 + 4), false, 'a late report does not overwrite a newer state');
      assert.equal(await s.bridge.setLinkState('nope', 'connecting', null, T0 + 5), false, 'no such link');
      await s.bridge.setStaySealed('l1', 'sealed-to-connectors', T0 + 6);
      const got = await peer.bridge.getLinked('l1');
      assert.equal(got?.state, 'bad_credentials');
      assert.equal(got?.reason, 'not-authorized');
      assert.equal(got?.staySealed, 'sealed-to-connectors');
      assert.equal(got?.updatedAt, T0 + 6);
      assert.deepEqual((await s.bridge.listStayConnected('xmpp', 10)).map((l) => l.id), ['l1']);
      assert.deepEqual(await s.bridge.listStayConnected('irc', 10), []);
      const [x, y] = await Promise.all([s.bridge.assignConnector('l1', null, 'c1'), peer.bridge.assignConnector('l1', null, 'c2')]);
      assert.equal(Number(x) + Number(y), 1, 'one winner');
      const holder = x ? 'c1' : 'c2';
      assert.deepEqual((await s.bridge.listByConnector(holder)).map((l) => l.id), ['l1']);
      assert.equal(await s.bridge.assignConnector('l1', null, 'c3'), false, 'not free any more');
      assert.equal(await s.bridge.assignConnector('l1', holder, null), true);
      assert.equal((await s.bridge.getLinked('l1'))?.connector, null);
    });

    it('forgets the vault with its linked accounts, and both go with the account', async () => {
      const s = env();
      const a = await account('alice');
      await s.bridge.createVault(a.id, [wrap('password', 'p')]);
      await s.bridge.createLinked(linked(a.id, 'l1'), 10);
      await s.bridge.deleteVault(a.id);
      assert.deepEqual(await s.bridge.getWraps(a.id), []);
      assert.deepEqual(await s.bridge.listLinked(a.id), []);
      const b = await account('bob');
      await s.bridge.createVault(b.id, [wrap('password', 'p')]);
      await s.bridge.createLinked(linked(b.id, 'l2'), 10);
      await s.accounts.delete(b.id);
      assert.deepEqual(await s.bridge.getWraps(b.id), []);
      assert.equal(await s.bridge.getLinked('l2'), null);
    });
  });
}
