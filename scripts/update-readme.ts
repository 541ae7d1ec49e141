// Rewrites the configuration table in README.md (between the config-table markers) from src/config.ts.
// Run: npm run docs:config
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { configTableMarkdown } from '../src/config.ts';

const file = path.resolve(import.meta.dirname, '../README.md');
const text = readFileSync(file, 'utf8');
const start = '<!-- config-table:start -->';
const end = '<!-- config-table:end -->';
const a = text.indexOf(start);
const b = text.indexOf(end);
if (a < 0 || b < a) throw new Error('README.md lacks the config-table markers');
writeFileSync(file, text.slice(0, a + start.length) + '\n' + configTableMarkdown() + '\n' + text.slice(b));
console.log('README.md configuration table updated');
