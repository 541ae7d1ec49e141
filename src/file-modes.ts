// Modes of the files that hold secrets in the data directory: master.key (the root of every key), the SQLite
// database and its -wal/-shm (HA1s, argon2id hashes, sealed keys; the WAL holds recent writes in clear), and the
// directory itself. We create them 0700/0600 whatever the umask; on start, an existing one that other users may
// read is refused, as PostgreSQL refuses a data directory with group/other access and OpenSSH a private key
// readable by others: a file that was readable may have been read, so the operator must learn of it (and think
// about rotating the master key) rather than have us chmod it quietly. The directory only lists names: read access
// for others is warned about; write access (anyone could replace master.key) is refused.
// --file-mode-check warn turns every refusal into a warning (volumes whose modes the operator cannot set).

import { statSync } from 'node:fs';
import path from 'node:path';
import { sbError } from './errors.ts';
import type { Logger } from './log.ts';

export type FileModeCheck = 'refuse' | 'warn';

/** Files in the data directory that must be private to the server's user. */
export function secretFiles(dataDir: string, o: { masterKeyFile: boolean; sqlite: boolean }): string[] {
  const files: string[] = [];
  if (o.masterKeyFile) files.push(path.join(dataDir, 'master.key'));
  if (o.sqlite) for (const suffix of ['', '-wal', '-shm']) files.push(path.join(dataDir, 'switchboard.db' + suffix));
  return files;
}

function modeOf(file: string): number | null {
  try {
    return statSync(file).mode & 0o777;
  } catch {
    return null;
  }
}

const octal = (mode: number) => '0' + mode.toString(8).padStart(3, '0');

/**
 * Checks the data directory and the secret files that exist (those that do not are created private). Throws
 * CONFIG_ERR_FILE_MODE, or with `warn` logs, naming each file, its mode and the chmod that fixes it.
 */
export function checkFileModes(dataDir: string, files: readonly string[], check: FileModeCheck, log: Logger): void {
  if (process.platform === 'win32') return;
  const refused: string[] = [];
  const dirMode = modeOf(dataDir);
  if (dirMode !== null && dirMode & 0o077) {
    const problem = `${dataDir} has mode ${octal(dirMode)}: other users can ${dirMode & 0o022 ? 'replace files in it' : 'list it'}; chmod 700 ${dataDir}`;
    if (dirMode & 0o022) refused.push(problem);
    else log.warn({ dir: dataDir, mode: octal(dirMode) }, `data directory not private: ${problem}`);
  }
  for (const file of files) {
    const mode = modeOf(file);
    if (mode !== null && mode & 0o077) refused.push(`${file} has mode ${octal(mode)}: ${mode & 0o044 ? 'readable' : 'open'} to other users; chmod 600 ${file}${file.endsWith('master.key') ? ' and consider the master key exposed' : ''}`);
  }
  if (refused.length === 0) return;
  if (check === 'warn') {
    for (const problem of refused) log.warn({ problem }, `SECRET FILE NOT PRIVATE (--file-mode-check warn): ${problem}`);
    return;
  }
  throw sbError('CONFIG_ERR_FILE_MODE', `refusing to start: ${refused.join('; ')} (or --file-mode-check warn)`);
}
