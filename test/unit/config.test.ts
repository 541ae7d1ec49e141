// Configuration: defaults < file < environment < flags, validation with clear messages, and the README's
// table generated from the same declarations.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configTableMarkdown, loadConfig, OPTIONS } from '../../src/config.ts';
import { ROOT, tempDir } from '../helpers/server.ts';

describe('config', () => {
  it('has working defaults for npm start', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.sip.port, 5060);
    assert.deepEqual(c.sip.transports, ['UDP', 'TCP', 'TLS', 'WS', 'WSS']);
    assert.deepEqual([c.sip.tlsPort, c.sip.wsPort, c.sip.wssPort], [5061, 8088, 8089]);
    assert.equal(c.http.port, 8080);
    assert.equal(c.registrar.defaultExpires, 3600);
    assert.ok(path.isAbsolute(c.dataDir));
  });

  it('layers file < environment < flags', () => {
    const dir = tempDir();
    const file = path.join(dir, 'sb.json');
    writeFileSync(file, JSON.stringify({ sip: { port: 5070 }, http: { port: 9000 }, realms: ['file.test'], registrar: { minExpires: 30 } }));
    const c = loadConfig({ file, env: { SWITCHBOARD_HTTP_PORT: '9100', SWITCHBOARD_REALM: 'env.test,env2.test' }, flags: { realm: ['flag.test'] } });
    assert.equal(c.sip.port, 5070, 'from the file');
    assert.equal(c.registrar.minExpires, 30, 'from the file');
    assert.equal(c.http.port, 9100, 'environment over file');
    assert.deepEqual(c.realms, ['flag.test'], 'flags over environment');
    const e = loadConfig({ file, env: { SWITCHBOARD_REALM: 'env.test,env2.test' } });
    assert.deepEqual(e.realms, ['env.test', 'env2.test']);
  });

  it('takes repeated and comma-separated list flags, booleans and the SWITCHBOARD_CONFIG file', () => {
    const dir = tempDir();
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ sip: { forceRport: true } }));
    const c = loadConfig({ env: { SWITCHBOARD_CONFIG: file }, flags: { realm: ['a.test', 'b.test,c.test'], 'sip-host': ['0.0.0.0', '::'] } });
    assert.deepEqual(c.realms, ['a.test', 'b.test', 'c.test']);
    assert.deepEqual(c.sip.hosts, ['0.0.0.0', '::']);
    assert.equal(c.sip.forceRport, true);
  });

  it('rejects invalid values with the option named', () => {
    assert.throws(() => loadConfig({ env: {}, flags: { 'sip-port': 'abc' } }), /--sip-port: expected a non-negative integer/);
    assert.throws(() => loadConfig({ env: { SWITCHBOARD_DURABILITY: 'maybe' } }), /SWITCHBOARD_DURABILITY: expected one of os, fsync/);
    assert.throws(() => loadConfig({ env: {}, flags: { 'digest-algorithms': ['MD4'] } }), /unknown digest algorithm MD4/);
    assert.throws(() => loadConfig({ env: {}, flags: { 'min-expires': '7200', 'max-expires': '60' } }), /min-expires above max-expires/);
  });

  it('documents every option in the README configuration table', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const o of OPTIONS) assert.ok(readme.includes(`\`--${o.flag}\``), `README lacks --${o.flag}`);
    assert.ok(readme.includes(configTableMarkdown()), 'README table is out of date: paste the output of `switchboard config`');
  });
});
