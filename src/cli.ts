#!/usr/bin/env node
// switchboard: start the server, manage users, inspect registrations.
//
//   switchboard start [options]
//   switchboard user add <user>@<realm> --password <pw>|- [--role admin] [--reversible-sip-password]
//                                                              ("-" reads the password from stdin)
//   switchboard user import <file.csv>                         (user,realm,password lines)
//   switchboard reg list [aor] [--json]
//   switchboard keys rotate                                     (new JWT signing key; the old one stays published)
//   switchboard config                                          (every option, as a Markdown table)
//   switchboard connector --type xmpp [--type irc]              (an IM bridge connector on its own, on the AMQP bus)

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { configFlagSpec, configTableMarkdown, loadConfig, type Config } from './config.ts';
import { isSwitchboardError } from './errors.ts';
import { newAccount, parseLoginName } from './identity/accounts.ts';
import { KeyRing } from './identity/keys.ts';
import { PasswordHasher } from './identity/passwords.ts';
import { Sealer } from './identity/seal.ts';
import { ReversibleSipPasswords, REVERSIBLE_SIP_PASSWORD_KEY } from './identity/reversible-passwords.ts';
import { deriveKey, loadMasterKey } from './secrets.ts';
import { createLogger } from './log.ts';
import { startServer } from './server.ts';
import { openBus, openDurable } from './adapters.ts';
import { Connector } from './bridge/connector.ts';
import { serverPolicy } from './bridge/server-policy.ts';
import { PROTOCOLS } from './bridge/registry.ts';
import type { LinkType } from './storage/ports/bridge.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { superviseWorkers, workerCount, workerNumber } from './workers.ts';
import type { NewAccount } from './storage/ports.ts';

const USAGE = `Usage:
  switchboard start [options]                 run the server (see: switchboard config)
  switchboard user add <user>@<realm> --password <pw>|- [--role admin] [--reversible-sip-password]
                                              (also keep the SIP password sealed, for switches that need it: Kazoo)
  switchboard user import <file.csv>          lines of user,realm,password
  switchboard reg list [<user>@<domain>] [--json]
  switchboard keys rotate                     new JWT signing key; tokens signed by the old one stay valid
  switchboard config                          list every option with its flag and environment variable
  switchboard connector --type xmpp           an IM bridge connector on its own (needs --bus amqp://…)
Options common to all commands: --data-dir <dir>, --realm <realm>, --config <file.json>`;

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...configFlagSpec(),
      password: { type: 'string' },
      role: { type: 'string', multiple: true },
      'reversible-sip-password': { type: 'boolean' },
      json: { type: 'boolean' },
      type: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function configFrom(values: Record<string, unknown>): Config {
  return loadConfig({ flags: values as Record<string, string | string[] | boolean | undefined>, file: (values.config as string | undefined) ?? null });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * A connector process (bridge/connector.ts): only the AMQP bus and the master key (to check the bus's MACs and open
 * stay-connected credentials); never the database. Stops on SIGTERM/SIGINT, its links closed and a bye said.
 */
async function cmdConnector(config: Config, types: string[]): Promise<void> {
  if (types.length === 0 || !types.every((t) => PROTOCOLS.has(t as LinkType))) throw usage(`connector: --type one of ${[...PROTOCOLS.keys()].join(', ')}`);
  if (config.bus.url === 'memory') throw usage('connector: a connector on its own needs the AMQP bus (--bus amqp://…)');
  const log = createLogger(config.logLevel);
  const master = loadMasterKey(config.dataDir);
  const node = `${config.cluster.nodeId ?? hostname()}-connector-${randomBytes(4).toString('hex')}`;
  const bus = openBus(config, { master, nodeQueue: node, log: log.child({ component: 'bus' }) });
  await bus.start?.();
  const connector = new Connector({ bus: bus.bus, master, types: types as LinkType[], protocols: PROTOCOLS, policy: serverPolicy(config), node, log: log.child({ component: 'connector' }) });
  await connector.start();
  process.send?.({ ready: { connector: connector.id } });
  const stop = async (signal: string) => {
    log.info({ signal }, 'connector stopping');
    await connector.stop();
    await bus.stop?.();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

async function cmdStart(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const worker = workerNumber();
  const count = workerCount(config.cluster.workers);
  if (worker === null && count > 1) {
    // The supervising process: forks the workers (this same command, each told its number) and waits.
    const code = await superviseWorkers(config, count, process.argv.slice(1), log);
    process.exit(code);
  }
  const server = await startServer(config, { log, worker });
  // Tell a supervising process (--workers) that this worker serves.
  process.send?.({ ready: { sip: server.sip.map((l) => `${l.transport} ${l.address}:${l.port}`), http: `${server.http.address}:${server.http.port}` } });
  let signals = 0;
  const onSignal = (sig: string) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal: sig }, 'shutting down');
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

async function cmdUserAdd(config: Config, name: string | undefined, password: string | undefined, roles: string[], reversible = false): Promise<void> {
  if (!name) throw usage('user add needs <user>@<realm>');
  if (password === undefined) throw usage('user add needs --password <pw> (or --password - to read it from stdin)');
  for (const r of roles) if (r !== 'admin') throw usage(`unknown role ${r} (roles: admin)`);
  const pw = password === '-' ? await readStdin() : password;
  if (!pw) throw usage('empty password');
  const { username, realm } = parseLoginName(name, config.realms[0]);
  const hasher = new PasswordHasher({ memoryKiB: config.passwords.argon2MemoryKiB, passes: config.passwords.argon2Passes });
  const passwordHash = await hasher.hash(pw);
  const db = await openDurable(config);
  try {
    const account = await db.accounts.create({ ...newAccount(username, realm, pw, roles), passwordHash });
    if (reversible) {
      const sealed = new ReversibleSipPasswords({ store: db.sealedPasswords, key: deriveKey(loadMasterKey(config.dataDir), REVERSIBLE_SIP_PASSWORD_KEY) });
      await sealed.enable(account.id, pw);
    }
    process.stdout.write(`created ${account.username}@${account.realm} (id ${account.id}${roles.length ? ', roles ' + roles.join(',') : ''}${reversible ? ', SIP password kept sealed (reversible)' : ''})\n`);
  } finally {
    await db.close();
  }
}

async function cmdKeysRotate(config: Config): Promise<void> {
  const db = await openDurable(config);
  try {
    const keys = new KeyRing({
      store: db.tokens,
      sealer: new Sealer(deriveKey(loadMasterKey(config.dataDir), 'jwt-signing-keys'), 'jwt-private-key'),
      alg: config.tokens.algorithm,
      tokenTtlSeconds: config.tokens.accessTtl,
    });
    await keys.load();
    const kid = await keys.rotate();
    process.stdout.write(`new signing key ${kid}; ${keys.jwks().keys.length} key(s) published; running servers pick it up within 30 s\n`);
  } finally {
    await db.close();
  }
}

/** Splits one CSV line (RFC 4180 quoting). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') {
          v += '"';
          i += 2;
        } else if (line[i] === '"') {
          i++;
          break;
        } else v += line[i++];
      }
      out.push(v);
      i++; // skip comma
    } else {
      const c = line.indexOf(',', i);
      const end = c < 0 ? line.length : c;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

async function cmdUserImport(config: Config, file: string | undefined): Promise<void> {
  if (!file) throw usage('user import needs <file.csv>');
  const db = await openDurable(config);
  const store = db.accounts;
  const started = Date.now();
  let lineNo = 0;
  let created = 0;
  let skipped = 0;
  const errors: string[] = [];
  let batch: NewAccount[] = [];
  const tty = process.stderr.isTTY;
  let lastDraw = 0;
  const draw = (final: boolean) => {
    const now = Date.now();
    if (!final && now - lastDraw < (tty ? 100 : 2000)) return;
    lastDraw = now;
    const done = created + skipped;
    const rate = Math.round(done / Math.max(0.001, (now - started) / 1000));
    const width = 30;
    const filled = Math.min(width, Math.round((done % 100000) / 100000 * width));
    const bar = final ? '#'.repeat(width) : '#'.repeat(filled) + '.'.repeat(width - filled);
    const text = `[${bar}] ${done} imported (${created} new, ${skipped} existing, ${errors.length} bad) ${rate}/s`;
    process.stderr.write(tty ? `\r${text}` : `${text}\n`);
  };
  const flush = async () => {
    if (!batch.length) return;
    const r = await store.createMany(batch);
    created += r.created;
    skipped += r.skipped;
    batch = [];
    draw(false);
  };
  try {
    const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    for await (const raw of rl) {
      lineNo++;
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const [user, realm, password] = csvFields(line);
      if (lineNo === 1 && user === 'user' && realm === 'realm') continue; // header
      try {
        if (!user || realm === undefined || password === undefined) throw new Error('expected user,realm,password');
        const name = parseLoginName(`${user}@${realm || config.realms[0]}`, config.realms[0]);
        batch.push(newAccount(name.username, name.realm, password));
      } catch (e) {
        errors.push(`line ${lineNo}: ${(e as Error).message}`);
        continue;
      }
      // Short transactions keep the write lock brief for a server running on the same database.
      if (batch.length >= 2000) await flush();
    }
    await flush();
  } finally {
    await db.close();
  }
  draw(true);
  if (tty) process.stderr.write('\n');
  for (const e of errors.slice(0, 20)) process.stderr.write(`${e}\n`);
  if (errors.length > 20) process.stderr.write(`… and ${errors.length - 20} more bad lines\n`);
  process.stdout.write(`imported ${created} new accounts, ${skipped} already existed, ${errors.length} bad lines, in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  if (errors.length) process.exitCode = 1;
}

async function cmdRegList(config: Config, aor: string | undefined, json: boolean): Promise<void> {
  const db = await openDurable(config);
  try {
    const now = Date.now();
    const key = aor?.replace(/^sips?:/, '');
    const rows = (await db.location.list(key)).filter((b) => b.expiresAt > now);
    if (json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    if (!rows.length) {
      process.stdout.write(aor ? `no bindings for ${aor}\n` : 'no bindings\n');
      return;
    }
    for (const b of rows) {
      const expires = Math.round((b.expiresAt - now) / 1000);
      process.stdout.write(`${b.aor}\t<${b.contact}>${b.params}\texpires=${expires}\t${b.transport} ${b.sourceAddress}:${b.sourcePort}\t${b.userAgent ?? ''}\n`);
    }
    process.stdout.write(`${rows.length} binding(s)\n`);
  } finally {
    await db.close();
  }
}

class UsageError extends Error {}
function usage(msg: string): UsageError {
  return new UsageError(msg);
}

async function main(argv: string[]): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    throw usage((e as Error).message);
  }
  const { values, positionals } = parsed;
  const [cmd, sub, arg] = positionals;
  if (values.help || cmd === undefined || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (cmd === 'config') {
    process.stdout.write(configTableMarkdown() + '\n');
    return;
  }
  const config = configFrom(values);
  if (cmd === 'start') return cmdStart(config);
  if (cmd === 'user' && sub === 'add') return cmdUserAdd(config, arg, values.password as string | undefined, (values.role as string[] | undefined) ?? [], values['reversible-sip-password'] === true);
  if (cmd === 'keys' && sub === 'rotate') return cmdKeysRotate(config);
  if (cmd === 'user' && sub === 'import') return cmdUserImport(config, arg);
  if (cmd === 'reg' && sub === 'list') return cmdRegList(config, arg, values.json === true);
  if (cmd === 'connector') return cmdConnector(config, (values.type as string[] | undefined) ?? []);
  throw usage(`unknown command: ${positionals.join(' ')}`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    process.stderr.write(`switchboard: ${e.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (isSwitchboardError(e)) {
    process.stderr.write(`switchboard: ${e.message} (${e.code})\n`);
    process.exit(1);
  }
  process.stderr.write(`switchboard: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
