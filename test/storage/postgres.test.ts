// The PostgreSQL adapters against the machine's server: migrations (once, under concurrency), the location
// store's group commit and last-write-wins folding, accounts with credentials, tokens.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openPostgres, type Db } from '../../src/storage/postgres/database.ts';
import { PostgresAccountStore } from '../../src/storage/postgres/account-store.ts';
import { PostgresLocationStore } from '../../src/storage/postgres/location-store.ts';
import { PostgresTokenStore } from '../../src/storage/postgres/token-store.ts';
import { digestCredentialsFor } from '../../src/identity/accounts.ts';
import { binding } from '../helpers/bindings.ts';
import { dropSchema, freshSchema, PG_URL, postgresMissing } from '../helpers/postgres.ts';

describe('PostgreSQL adapters', { skip: await postgresMissing() }, () => {
  const schema = freshSchema();
  let db: Db;
  before(async () => {
    // Several nodes starting at once migrate once: the advisory lock serialises them.
    const pools = await Promise.all([1, 2, 3].map(() => openPostgres({ url: PG_URL, schema })));
    db = pools[0];
    await Promise.all(pools.slice(1).map((p) => p.end()));
  });
  after(async () => {
    await db.end();
    await dropSchema(schema);
  });

  it('applied every migration once', async () => {
    const r = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(r.rows.map((x) => x.version), [...new Set(r.rows.map((x) => x.version))]);
    assert.ok(r.rows.length >= 3);
  });

  it('location store: one transaction per turn, the last write of each binding wins, removals delete', async () => {
    const store = new PostgresLocationStore(db);
    await Promise.all([
      store.write([{ op: 'put', binding: binding('a@d', 'k1', { cseq: 1 }) }]),
      store.write([{ op: 'put', binding: binding('a@d', 'k1', { cseq: 2 }) }, { op: 'put', binding: binding('a@d', 'k2', { path: ['<sip:edge;lr>'] }) }]),
      store.write([{ op: 'put', binding: binding('b@d', 'k1') }, { op: 'delete', aor: 'b@d', key: 'k1' }]),
    ]);
    assert.equal(store.commits, 1);
    const rows = await store.loadAll();
    assert.deepEqual(rows.map((b) => `${b.aor}|${b.key}|${b.cseq}`).sort(), ['a@d|k1|2', 'a@d|k2|1']);
    assert.deepEqual((await store.list('a@d')).find((b) => b.key === 'k2')!.path, ['<sip:edge;lr>']);
    await store.write([{ op: 'delete', aor: 'a@d', key: 'k1' }]);
    assert.deepEqual((await store.list('a@d')).map((b) => b.key), ['k2']);
  });

  it('accounts: create, duplicate refused, credentials found with the AOR, password change replaces HA1s', async () => {
    const store = new PostgresAccountStore(db);
    const a = await store.create({ username: 'alice', realm: 'example.test', passwordHash: null, credentials: digestCredentialsFor('alice', 'example.test', 'pw1') });
    await assert.rejects(store.create({ username: 'alice', realm: 'example.test', passwordHash: null, credentials: [] }), /already exists/);
    const found = await store.findSipCredential('alice', 'example.test', 'MD5');
    assert.deepEqual(found!.aors, ['alice@example.test']);
    await store.setPassword(a.id, '$argon2id$x', digestCredentialsFor('alice', 'example.test', 'pw2'));
    const after2 = await store.findSipCredential('alice', 'example.test', 'MD5');
    assert.notEqual(after2!.credential.ha1, found!.credential.ha1);
    assert.equal((await store.createMany([{ username: 'bob', realm: 'example.test', passwordHash: null, credentials: [] }, { username: 'alice', realm: 'example.test', passwordHash: null, credentials: [] }])).created, 1);
    const list = await store.list({ search: 'ALI', limit: 10, offset: 0 });
    assert.deepEqual(list.accounts.map((x) => x.username), ['alice']);
    const updated = await store.update(a.id, { roles: ['admin'], disabled: true });
    assert.deepEqual([updated.roles, updated.disabled], [['admin'], true]);
    assert.equal(await store.findSipCredential('alice', 'example.test', 'MD5'), null, 'disabled accounts have no credentials');
    assert.equal(await store.delete(a.id), true);
    assert.equal(await store.count(), 1);
  });

  it('tokens: keys rotate with the old one retired, refresh rotation is compare-and-set, API keys revoke', async () => {
    const accounts = new PostgresAccountStore(db);
    const acc = await accounts.create({ username: 'tok', realm: 'example.test', passwordHash: null, credentials: [] });
    const t = new PostgresTokenStore(db);
    await t.addKey({ kid: 'k1', alg: 'EdDSA', publicJwk: { kty: 'OKP' }, privateSealed: 'x', createdAt: 1, retiredAt: null });
    await t.addKey({ kid: 'k2', alg: 'EdDSA', publicJwk: { kty: 'OKP' }, privateSealed: 'y', createdAt: 2, retiredAt: null });
    assert.deepEqual((await t.listKeys()).map((k) => [k.kid, k.retiredAt]), [['k1', 2], ['k2', null]]);
    const r1 = { id: 'r1', familyId: 'f', accountId: acc.id, secretHash: 'h', createdAt: 1, expiresAt: 10, revokedAt: null, replacedBy: null };
    await t.insertRefresh(r1);
    assert.equal(await t.rotateRefresh('r1', { ...r1, id: 'r2' }, 5), true);
    assert.equal(await t.rotateRefresh('r1', { ...r1, id: 'r3' }, 6), false, 'a spent token cannot rotate twice');
    assert.equal(await t.revokeFamily('f', 7), 1);
    await t.insertApiKey({ id: 'a1', accountId: acc.id, name: 'n', secretHash: 's', permissions: ['users.read'], createdAt: 1, expiresAt: null, revokedAt: null, lastUsedAt: null });
    assert.deepEqual((await t.findApiKey('a1'))!.permissions, ['users.read']);
    assert.equal(await t.revokeApiKey(acc.id, 'a1', 3), true);
    assert.equal((await t.listApiKeys(acc.id))[0].revokedAt, 3);
  });
});
