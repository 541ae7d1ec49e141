// The SealedSipPasswordStore contract (src/storage/ports.ts), run against every adapter: at most one sealed password
// per existing account, replaced by a put, gone with a delete or with the account.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { useStores, type KnownDrift, type OpenStores } from './stores.ts';

export function sealedPasswordStoreContract(open: OpenStores, drift: KnownDrift = {}): void {
  describe('SealedSipPasswordStore contract', () => {
    const env = useStores(open);
    const todo = (id: string) => ({ todo: drift[id] });
    const account = (username: string) => env().accounts.create({ username, realm: 'example.test', passwordHash: null, credentials: [] });

    it('keeps one sealed value per account: put, replace, delete', async () => {
      const s = env();
      const a = await account('alice');
      const b = await account('bob');
      assert.equal(await s.sealed.getSealedSipPassword(a.id), null);
      await s.sealed.putSealedSipPassword(a.id, 'v1.sealed-a');
      await s.sealed.putSealedSipPassword(b.id, 'v1.sealed-b');
      assert.equal(await s.sealed.getSealedSipPassword(a.id), 'v1.sealed-a');
      await s.sealed.putSealedSipPassword(a.id, 'v1.sealed-a2');
      assert.equal(await (await s.node()).sealed.getSealedSipPassword(a.id), 'v1.sealed-a2');
      assert.equal(await s.sealed.deleteSealedSipPassword(a.id), true);
      assert.equal(await s.sealed.deleteSealedSipPassword(a.id), false);
      assert.equal(await s.sealed.getSealedSipPassword(a.id), null);
      assert.equal(await s.sealed.getSealedSipPassword(b.id), 'v1.sealed-b', 'other accounts keep theirs');
      assert.equal(await s.sealed.deleteSealedSipPassword('no-such-account'), false);
    });

    it('belongs to an existing account and goes with it', todo('cascade'), async () => {
      const s = env();
      await assert.rejects(s.sealed.putSealedSipPassword('no-such-account', 'x'));
      assert.equal(await s.sealed.getSealedSipPassword('no-such-account'), null);
      const a = await account('carol');
      await s.sealed.putSealedSipPassword(a.id, 'sealed');
      assert.equal(await s.accounts.delete(a.id), true);
      assert.equal(await s.sealed.getSealedSipPassword(a.id), null);
    });

    it('two nodes writing the same account at once leave one of the values', async () => {
      const s = env();
      const peer = await s.node();
      const a = await account('dave');
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? s : peer).sealed.putSealedSipPassword(a.id, `sealed-${i}`)));
      assert.match((await s.sealed.getSealedSipPassword(a.id))!, /^sealed-\d$/);
    });
  });
}
