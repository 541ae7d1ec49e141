// The import rules of the README's "Architecture" section, read from the source as text: which room may import
// which, services never import an adapter, and only the composition root (server.ts, adapters.ts) picks adapters.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Every .ts file under src/, as a path relative to src/ with '/' separators. */
function sourceFiles(dir = SRC): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts')) out.push(path.relative(SRC, p).split(path.sep).join('/'));
  }
  return out;
}

/** The src/ files a file imports (static, re-exports and dynamic imports; packages and node: modules left out). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(SRC, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'(\.{1,2}\/[^']+)'/gm)) {
    out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1])));
  }
  return out;
}

const files = sourceFiles();
const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** The room of a file: its first directory under src/, or the file itself at the top (server.ts, config.ts, …). */
function room(file: string): string {
  const i = file.indexOf('/');
  return i < 0 ? file : file.slice(0, i);
}

/** Adapters: the implementations of ports that reach outside the process (or stand in for what does). */
const ADAPTER = /^(storage\/(sqlite|postgres|redis|memory)\/|bus\/(amqp|in-process)\.ts$|identity\/phone\/providers\/(local|twilio|siteverify)\.ts$)/;
/** The composition root: picks adapters, composes the subsystems; cli.ts, workers.ts and index.ts (the library) are its entry points. */
const COMPOSITION = new Set(['server.ts', 'adapters.ts', 'cli.ts', 'workers.ts', 'index.ts']);
/** Shared by every room: the error catalogue, logging, configuration, metrics, lifecycle, secrets, certificates, file modes, sync-or-async values. */
const KERNEL = new Set(['errors.ts', 'log.ts', 'config.ts', 'metrics.ts', 'lifecycle.ts', 'secrets.ts', 'certificates.ts', 'file-modes.ts', 'maybe-promise.ts']);
const SERVICES = ['registrar', 'proxy', 'presence', 'identity', 'messaging', 'bridge', 'kazoo'];

/** What each room may import besides itself and the kernel (the README's table). `bus` means its port only. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  sip: ['bus'],
  bus: [],
  // presence: its domain model (presence/model.ts), which the presence store's port speaks.
  storage: ['sip', 'presence'],
  identity: ['sip', 'bus', 'storage'],
  registrar: ['identity', 'sip', 'bus', 'storage'],
  proxy: ['registrar', 'presence', 'identity', 'sip', 'bus', 'storage'],
  presence: ['registrar', 'identity', 'sip', 'bus', 'storage'],
  messaging: ['registrar', 'identity', 'sip', 'bus', 'storage'],
  // sip: the SIP link (bridge/protocols/sip.ts) is a user agent built on the SIP message layer, Digest and framer.
  bridge: ['messaging', 'identity', 'sip', 'bus', 'storage'],
  kazoo: ['registrar', 'identity', 'bus', 'storage'],
  http: ['registrar', 'proxy', 'presence', 'identity', 'messaging', 'bridge', 'sip', 'bus', 'storage'],
};

function violations(check: (from: string, to: string) => string | null): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const why = check(from, to);
      if (why) out.push(`${from} imports ${to}: ${why}`);
    }
  }
  return out;
}

describe('architecture: the import rules', () => {
  it('reads imports (the rules are not vacuous)', () => {
    assert.ok(files.length > 100, `${files.length} files`);
    assert.ok(graph.get('server.ts')!.includes('adapters.ts'));
    assert.ok(graph.get('registrar/subsystem.ts')!.includes('registrar/registrar.ts'));
  });

  it('every room of src/ has an import rule, and every top-level file is the composition root or the kernel', () => {
    const rooms = new Set(files.filter((f) => f.includes('/')).map(room));
    for (const r of rooms) assert.ok(r in MAY_IMPORT, `src/${r}/ has no import rule`);
    for (const f of files.filter((f) => !f.includes('/'))) assert.ok(COMPOSITION.has(f) || KERNEL.has(f), `src/${f}: neither composition root nor kernel`);
  });

  it('each room imports only the rooms it may (and the kernel)', () => {
    const bad = violations((from, to) => {
      const a = room(from);
      const b = room(to);
      if (a === b || COMPOSITION.has(a) || KERNEL.has(a) || KERNEL.has(b)) return null;
      if (COMPOSITION.has(b)) return 'only the entry points import the composition root';
      return MAY_IMPORT[a]?.includes(b) ? null : `src/${a}/ may not import src/${b}/`;
    });
    assert.deepEqual(bad, []);
  });

  it('sip/ knows nothing of the services, storage or HTTP, and of the bus only its port', () => {
    const bad = violations((from, to) => {
      if (room(from) !== 'sip' || room(to) === 'sip' || KERNEL.has(to)) return null;
      return to === 'bus/event-bus.ts' ? null : 'sip/ imports its own modules, the kernel and the bus port only';
    });
    assert.deepEqual(bad, []);
  });

  it('services (and HTTP) never import an adapter, of storage, the bus or the phone providers', () => {
    const bad = violations((from, to) => {
      if (!(SERVICES.includes(room(from)) || room(from) === 'http') || ADAPTER.test(from)) return null;
      return ADAPTER.test(to) ? 'services depend on ports' : null;
    });
    assert.deepEqual(bad, []);
  });

  it('only adapters.ts picks an adapter (adapters import their own family only)', () => {
    const family = (f: string) => f.slice(0, f.lastIndexOf('/'));
    const bad = violations((from, to) => {
      if (!ADAPTER.test(to) || from === 'adapters.ts') return null;
      return ADAPTER.test(from) && family(from) === family(to) ? null : 'adapters are picked in adapters.ts';
    });
    assert.deepEqual(bad, []);
  });

  it('the bus imports neither the services nor SIP (Kazoo is a room of its own, the flow relay is SIP code)', () => {
    const bad = violations((from, to) => (room(from) === 'bus' && room(to) !== 'bus' && !KERNEL.has(to) ? 'bus/ is the port and its adapters' : null));
    assert.deepEqual(bad, []);
  });

  it('the registrar keeps RFC 3261 §10 and the location service: nothing of Kazoo', () => {
    const bad = violations((from, to) => (room(from) === 'registrar' && room(to) === 'kazoo' ? 'Kazoo lives in src/kazoo/' : null));
    assert.deepEqual(bad, []);
  });
});
