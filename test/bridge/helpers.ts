// The bridge tests' app side: a password session (which opens the vault), linking an account, reading the list.

import { http, sessionOf, type Json, type Session } from '../messaging/helpers.ts';

export interface VaultSession extends Session {
  vault: Json;
}

export async function passwordSession(base: string, username: string, password: string, extra: Json = {}): Promise<VaultSession> {
  const r = await http(base, 'POST', '/v1/sessions', { body: { username, password, ...extra } });
  if (r.status !== 200) throw Object.assign(new Error(`session ${username}: ${r.status} ${JSON.stringify(r.json)}`), { status: r.status });
  return { ...sessionOf(r.json), vault: (r.json.vault ?? {}) as Json };
}

export async function linkXmpp(base: string, s: Session, server: string, jid: string, password: string, extra: Json = {}): Promise<Json> {
  const r = await http(base, 'POST', '/v1/linked-accounts', { auth: s.auth, body: { type: 'xmpp', server, username: jid, password, ...extra } });
  if (r.status !== 201) throw new Error(`link ${jid}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

export async function linkedList(base: string, s: Session): Promise<Json[]> {
  const r = await http(base, 'GET', '/v1/linked-accounts', { auth: s.auth });
  if (r.status !== 200) throw new Error(`list: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.linkedAccounts as Json[];
}

/** Polls until the linked account's state is `state` (or the time is up). */
export async function waitForState(base: string, s: Session, id: string, state: string, ms = 15_000): Promise<Json> {
  const until = Date.now() + ms;
  let last: Json | undefined;
  while (Date.now() < until) {
    last = (await linkedList(base, s)).find((l) => l.id === id);
    if (last?.state === state) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`linked account ${id} not ${state} within ${ms} ms: ${JSON.stringify(last)}`);
}

export function imSend(base: string, s: Session, linkedAccount: string, to: string, text: string) {
  return http(base, 'POST', '/v1/messages', { auth: s.auth, body: { linkedAccount, to, body: Buffer.from(text).toString('base64') } });
}
