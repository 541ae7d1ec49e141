// The library entry (`import { createServer } from 'switchboard'`, package.json `exports`): the whole server in a
// program, with call routing in code. `server.onRoute(fn)` takes the same function as `--routing-module` exports
// (proxy/routing-hook.ts: 'default', { reject, reason } or { targets }); hooks added before `listen()` are in place
// before the first SIP message can arrive, those added later apply to the calls after.
//
//   const server = createServer({ config: { realms: ['example.com'] } });
//   server.onRoute(async (call) => (call.callee === 'sales@example.com' ? { targets: ['sip:10.0.0.5'] } : 'default'));
//   await server.listen();
//
// Settings are the config file's keys (README, Configuration: the third column), nested as there; a config file
// (`configFile`) comes first, then these, then SWITCHBOARD_* variables of `env` (process.env unless given), as for
// `switchboard start`. It only composes what server.ts composes: nothing here runs on a request's path.

import { loadConfig, type Config } from './config.ts';
import type { Logger } from './log.ts';
import type { RouteHook } from './proxy/routing-hook.ts';
import { startServer, type RunningServer } from './server.ts';

export type { Config } from './config.ts';
export type { RouteCall, RouteDecision, RouteHook } from './proxy/routing-hook.ts';
export type { RunningServer } from './server.ts';

/** Config values nested as in the config file; arrays and scalars as they are. */
export type ConfigValues<T = Config> = { [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object | null ? ConfigValues<NonNullable<T[K]>> | T[K] : T[K] };

export interface ServerOptions {
  /** Settings by config-file key, e.g. { realms: ['example.com'], sip: { port: 5060 }, storage: { database: 'postgres://…' } }. */
  config?: ConfigValues;
  /** A JSON config file read before `config`. */
  configFile?: string;
  /** Where SWITCHBOARD_* variables are read from (they override `config`); default process.env, {} for none. */
  env?: NodeJS.ProcessEnv;
  /** A pino logger of the program's (default: one at the configured log level). */
  log?: Logger;
}

export interface Server {
  /** Adds a call routing hook; several run in order, the first answer other than 'default' wins. */
  onRoute(hook: RouteHook): void;
  /** Opens the stores and the SIP and HTTP listeners; resolves once they serve. */
  listen(): Promise<RunningServer>;
  /** The running server (addresses, services) after listen(), else null. */
  readonly running: RunningServer | null;
  /** Stops serving (calls in setup fail, registrations persist); a server that never listened just resolves. */
  close(): Promise<void>;
}

/** A Switchboard server as a library: configured now, listening on `listen()`. Invalid settings throw here. */
export function createServer(options: ServerOptions = {}): Server {
  const config = loadConfig({ file: options.configFile ?? null, values: options.config as Record<string, unknown> | undefined, env: options.env, flags: {} });
  // Hooks added before listen() go in with the start; those added while it starts, once it has.
  const hooks: RouteHook[] = [];
  let running: RunningServer | null = null;
  let starting: Promise<RunningServer> | null = null;
  return {
    onRoute(hook) {
      if (typeof hook !== 'function') throw new TypeError('onRoute takes a function (call) => decision');
      if (running) running.onRoute(hook);
      else hooks.push(hook);
    },
    listen() {
      starting ??= startServer(config, { log: options.log, routeHooks: hooks.splice(0) }).then((s) => {
        running = s;
        for (const h of hooks.splice(0)) s.onRoute(h);
        return s;
      });
      return starting;
    },
    get running() {
      return running;
    },
    async close() {
      const s = running ?? (starting ? await starting.catch(() => null) : null);
      running = null;
      starting = null;
      await s?.stop();
    },
  };
}
