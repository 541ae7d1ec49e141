// Server secrets. One master key is the root: from SWITCHBOARD_MASTER_KEY (64 hex chars) or generated once into
// <data-dir>/master.key (mode 0600). Purpose-bound keys are derived from it with HKDF, so no other secret needs
// storing and every node given the same master key agrees on nonces and tokens.

import { hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sbError } from './errors.ts';

export function loadMasterKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = env.SWITCHBOARD_MASTER_KEY;
  if (fromEnv) {
    if (!/^[0-9a-fA-F]{64}$/.test(fromEnv)) throw sbError('CONFIG_ERR_INVALID', 'SWITCHBOARD_MASTER_KEY must be 64 hex characters');
    return Buffer.from(fromEnv, 'hex');
  }
  const file = path.join(dataDir, 'master.key');
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-fA-F]{64}$/.test(text)) throw sbError('CONFIG_ERR_INVALID', `${file} is not a 64-hex-character key`);
    return Buffer.from(text, 'hex');
  }
  // 0700 whatever the umask: the directory holds the key and the database (file-modes.ts).
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // 'wx': never overwrite a key another process created a moment ago.
  try {
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch {
    return loadMasterKey(dataDir, env);
  }
  return key;
}

/** A 32-byte key for one purpose ("digest-nonce", "jwt-keys", …). */
export function deriveKey(master: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `switchboard ${purpose}`, 32));
}
