// The other side of the IRC tests: an independent irc-framework client on the test's ngircd, with its own record of
// the PRIVMSGs it got, a wait for one, and WHOIS to see whether a nick is on the server.

import { Client, type MessageEvent } from 'irc-framework';

export interface IrcPeer {
  client: Client;
  inbox: MessageEvent[];
  /** The first PRIVMSG (after the ones already returned) that `pred` accepts; rejects after 15 s. */
  next(pred?: (e: MessageEvent) => boolean): Promise<MessageEvent>;
  /** WHOIS: true when `nick` is on the server. */
  online(nick: string): Promise<boolean>;
  quit(): void;
}

export async function ircPeer(port: number, nick: string, password: string): Promise<IrcPeer> {
  const client = new Client();
  const inbox: MessageEvent[] = [];
  const waiters = new Set<() => void>();
  client.on('privmsg', (e) => {
    inbox.push(e);
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${nick} not registered on ngircd`)), 10_000);
    client.on('registered', () => (clearTimeout(t), resolve()));
    client.connect({ host: '127.0.0.1', port, nick, password, auto_reconnect: false });
  });
  let seen = 0;
  return {
    client,
    inbox,
    next: (pred = () => true) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const i = inbox.findIndex((e, j) => j >= seen && pred(e));
          if (i < 0) return;
          seen = i + 1;
          waiters.delete(check);
          clearTimeout(t);
          resolve(inbox[i]);
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${nick}: no such message; got ${JSON.stringify(inbox.map((e) => [e.target, e.message]))}`));
        }, 15_000);
        waiters.add(check);
        check();
      }),
    online: (who) =>
      new Promise<boolean>((resolve) => {
        (client as unknown as { whois(n: string, cb: (e: { error?: string; ident?: string }) => void): void }).whois(who, (e) => resolve(!e.error && !!e.ident));
      }),
    quit: () => client.quit(),
  };
}
