// Digest credential lookups in PostgreSQL, grouped: the lookups asked for while one query runs go together into the
// next one (an unnest of the keys joined to the credentials, a named prepared statement), as binding writes are
// group-committed. A node with a cold credential cache — every REGISTER of a new phone, and every node of a
// deployment after a restart — otherwise sends PostgreSQL one query per REGISTER; measured under the scale-out
// benchmark with cold caches, PostgreSQL then spent more CPU on those queries than on the binding writes. Under load
// a query also waits 2 ms for company (gathering.ts; misses are rare in a warm node, so the wait is too).

import type { DigestAlgorithm } from '../../sip/digest.ts';
import type { FoundCredential, SipCredential } from '../ports.ts';
import type { Db } from './database.ts';
import { Gathering } from './gathering.ts';

const FIND = {
  name: 'switchboard_find_sip_credentials',
  text: `SELECT q.i, c.account_id, c.ha1, a.username, a.realm, a.disabled
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(auth_user, realm, algorithm, i)
    JOIN sip_credentials c ON c.auth_user = q.auth_user AND c.realm = q.realm AND c.algorithm = q.algorithm
    JOIN accounts a ON a.id = c.account_id`,
};

interface Row {
  i: string;
  account_id: string;
  ha1: string;
  username: string;
  realm: string;
  disabled: boolean;
}

interface Ask {
  authUser: string;
  realm: string;
  algorithm: DigestAlgorithm;
  waiters: Array<{ resolve: (v: FoundCredential | null) => void; reject: (e: Error) => void }>;
}

/** Most keys in one query. */
const MAX_BATCH = 500;

export class CredentialLookup {
  private readonly db: Db;
  private next = new Map<string, Ask>();
  private running = false;
  private scheduled = false;
  private readonly gathering = new Gathering(2, 2, MAX_BATCH);
  queries = 0;

  constructor(db: Db) {
    this.db = db;
  }

  find(authUser: string, realm: string, algorithm: DigestAlgorithm): Promise<FoundCredential | null> {
    const key = authUser + '\u0000' + realm + '\u0000' + algorithm;
    return new Promise((resolve, reject) => {
      let ask = this.next.get(key);
      if (!ask) this.next.set(key, (ask = { authUser, realm, algorithm, waiters: [] }));
      ask.waiters.push({ resolve, reject });
      if (!this.running && !this.scheduled) {
        this.scheduled = true;
        setImmediate(this.run);
      }
    });
  }

  private readonly run = (): void => {
    this.scheduled = false;
    if (this.running || this.next.size === 0) return;
    if (this.gathering.wait(this.next.size)) {
      this.scheduled = true;
      setTimeout(this.run, this.gathering.ms);
      return;
    }
    const asks: Ask[] = [];
    for (const [key, ask] of this.next) {
      asks.push(ask);
      this.next.delete(key);
      if (asks.length === MAX_BATCH) break;
    }
    this.running = true;
    this.queries++;
    this.gathering.sent(asks.length);
    this.query(asks).then(
      (found) => asks.forEach((a, i) => a.waiters.forEach((w) => w.resolve(found[i]))),
      (e: unknown) => asks.forEach((a) => a.waiters.forEach((w) => w.reject(e as Error))),
    ).finally(() => {
      this.running = false;
      this.run();
    });
  };

  private async query(asks: Ask[]): Promise<Array<FoundCredential | null>> {
    const r = await this.db.query<Row>({ ...FIND, values: [asks.map((a) => a.authUser), asks.map((a) => a.realm), asks.map((a) => a.algorithm)] });
    const found: Array<FoundCredential | null> = asks.map(() => null);
    for (const row of r.rows) {
      const i = Number(row.i) - 1;
      if (row.disabled) continue;
      const a = asks[i];
      const credential: SipCredential = { accountId: row.account_id, authUser: a.authUser, realm: a.realm, algorithm: a.algorithm, ha1: row.ha1 };
      found[i] = { credential, aors: [`${row.username}@${row.realm}`] };
    }
    return found;
  }
}
