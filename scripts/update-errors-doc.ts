// Rewrites docs/errors.md from the error catalogue in src/errors.ts.
// Run: npm run docs:errors
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { errorsDocument } from '../src/errors.ts';

writeFileSync(path.resolve(import.meta.dirname, '../docs/errors.md'), errorsDocument());
console.log('docs/errors.md updated');
