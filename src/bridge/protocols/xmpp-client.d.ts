// The part of @xmpp/client (0.14, untyped JavaScript) that protocols/xmpp.ts uses.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';

  export interface Element {
    name: string;
    attrs: Record<string, string | undefined>;
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildText(name: string, xmlns?: string): string | null;
    toString(): string;
  }

  export interface Jid {
    toString(): string;
    bare(): Jid;
  }

  export interface XmppClient extends EventEmitter {
    status: string;
    reconnect: { stop(): void };
    start(): Promise<Jid>;
    stop(): Promise<void>;
    send(el: Element): Promise<void>;
    /** The transport's socket options for a service URL ({host, port} for xmpp://). */
    socketParameters(service: string): unknown;
  }

  export function client(options: { service: string; domain?: string; resource?: string; username?: string; password?: string; timeout?: number }): XmppClient;
  export function xml(name: string, attrs?: Record<string, string>, ...children: Array<Element | string>): Element;
  export function jid(s: string): Jid;
}
