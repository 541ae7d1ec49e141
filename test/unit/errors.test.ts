// The error catalogue is the one source of errors, in the manner of fastify's test/internals/errors.test.js:
// every code is used somewhere in src/, every code is documented (docs/errors.md is the generated table, current),
// every error code named in src/ is in the catalogue, and no SIP rejection or HTTP error is built outside the
// two helpers (sipError in src/sip/message/response.ts, src/http/reply-error.ts). A source scan, on purpose:
// a new rejection written by hand fails here, not in review.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Errors, errorsDocument } from '../../src/errors.ts';

const root = path.resolve(import.meta.dirname, '../..');
const src = path.join(root, 'src');

function sources(dir: string): Array<{ file: string; text: string }> {
  const out: Array<{ file: string; text: string }> = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push({ file: path.relative(root, p), text: readFileSync(p, 'utf8') });
  }
  return out;
}
const files = sources(src);
const outside = (f: string) => files.filter((x) => x.file !== f);
const codes = Object.keys(Errors);

test('every catalogue code is used in src/', () => {
  const rest = outside('src/errors.ts').map((f) => f.text).join('\n');
  const unused = codes.filter((c) => !new RegExp(`\\b${c}\\b`).test(rest));
  assert.deepEqual(unused, [], 'codes never referenced: remove them or use them');
});

test('every catalogue entry is keyed by its own code, and SIP/HTTP statuses are error statuses', () => {
  for (const [key, e] of Object.entries(Errors) as Array<[string, { code: string; sip?: number; http?: number }]>) {
    assert.equal(e.code, key);
    if (e.sip !== undefined) assert.ok(e.sip >= 400 && e.sip <= 699, `${key}: SIP ${e.sip}`);
    if (e.http !== undefined) assert.ok(e.http >= 400 && e.http <= 599, `${key}: HTTP ${e.http}`);
  }
});

test('every error code named in src/ is in the catalogue', () => {
  const named = new Set<string>();
  for (const f of files) for (const m of f.text.matchAll(/'([A-Z]+_ERR_[A-Z0-9_]+)'/g)) named.add(m[1]);
  assert.deepEqual([...named].filter((c) => !(c in Errors)), []);
});

test('docs/errors.md documents every code and is current (npm run docs:errors)', () => {
  const doc = readFileSync(path.join(root, 'docs/errors.md'), 'utf8');
  for (const c of codes) assert.ok(doc.includes(`\`${c}\``), `${c} undocumented`);
  assert.equal(doc, errorsDocument(), 'docs/errors.md is stale: run npm run docs:errors');
});

test('SIP rejections go through sipError only', () => {
  const bad: string[] = [];
  for (const f of files) {
    if (f.file === 'src/sip/message/response.ts') continue;
    for (const m of f.text.matchAll(/createResponse\(\s*[^,()]+(?:\([^)]*\))?\s*,\s*([^,)]+)/g)) {
      // Only successes and provisionals may be created directly: a literal 1xx or 2xx.
      if (!/^[12]\d\d$/.test(m[1].trim())) bad.push(`${f.file}: ${m[0]}`);
    }
    if (!f.file.startsWith('src/sip/message/') && /new SipResponse\(/.test(f.text)) bad.push(`${f.file}: new SipResponse(`);
  }
  assert.deepEqual(bad, []);
});

test('HTTP errors go through src/http/reply-error.ts only', () => {
  const bad: string[] = [];
  for (const f of outside('src/http/reply-error.ts')) {
    for (const m of f.text.matchAll(/\.(?:status|code)\(\s*([^)]*)\)/g)) {
      if (/\b[45]\d\d\b/.test(m[1]) && !/\?\s*200\s*:\s*503/.test(m[1])) bad.push(`${f.file}: ${m[0]}`);
    }
    if (f.file !== 'src/errors.ts' && /code:\s*'[A-Z]+_ERR_/.test(f.text)) bad.push(`${f.file}: an error body written by hand`);
    if (/statusCode:\s*[45]\d\d/.test(f.text)) bad.push(`${f.file}: an error status written by hand`);
  }
  assert.deepEqual(bad, []);
});
