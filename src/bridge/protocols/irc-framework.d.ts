// The part of irc-framework (4.x, CommonJS, no types of its own) that the IRC link uses.
declare module 'irc-framework' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';

  export interface ClientOptions {
    host: string;
    port: number;
    nick: string;
    username?: string;
    gecos?: string;
    password?: string;
    account?: { account?: string; password?: string };
    sasl_mechanism?: string;
    sasl_disconnect_on_fail?: boolean;
    tls?: boolean;
    rejectUnauthorized?: boolean;
    auto_reconnect?: boolean;
    ping_interval?: number;
    ping_timeout?: number;
    version?: string;
    encoding?: string;
  }

  export interface MessageEvent {
    nick: string;
    ident: string;
    hostname: string;
    target: string;
    message: string;
    from_server: boolean;
  }

  export interface IrcErrorEvent {
    error: string;
    reason?: string;
    nick?: string;
    channel?: string;
  }

  export class Client extends EventEmitter {
    constructor(options?: Partial<ClientOptions>);
    connect(options?: ClientOptions): void;
    quit(message?: string): void;
    join(channel: string, key?: string): void;
    say(target: string, message: string): void;
    raw(...args: (string | number)[]): void;
    readonly connected: boolean;
    readonly user: { nick: string };
    readonly network: { isChannelName(name: string): boolean; cap: { isEnabled(cap: string): boolean } };
    readonly connection: {
      write(line: string, callback?: () => void): boolean;
      end(data?: string, hadError?: boolean): void;
    };
    caseCompare(a: string, b: string): boolean;
    on(event: 'privmsg' | 'action', listener: (e: MessageEvent) => void): this;
    on(event: 'irc error', listener: (e: IrcErrorEvent) => void): this;
    on(event: 'sasl failed', listener: (e: { reason: string; message?: string }) => void): this;
    on(event: 'nick in use' | 'nick invalid', listener: (e: { nick: string; reason: string }) => void): this;
    on(event: 'raw socket connected', listener: (socket: Socket) => void): this;
    on(event: 'registered' | 'close' | 'socket close', listener: (arg?: unknown) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
    removeAllListeners(): this;
  }
}
