// Publications held by the event state compositor (RFC 3903 §6): by entity tag and by presentity. A refresh or
// modification gives a publication a new entity tag; the record object keeps its identity, so the expiry wheel and
// the per-presentity set never hold a stale copy.

import { randomBytes } from 'node:crypto';
import type { PublicationRecord } from '../storage/ports.ts';

/** A fresh entity tag: unguessable, so one publisher cannot address another's state (RFC 3903 §13). */
export function newEntityTag(): string {
  return randomBytes(12).toString('base64url');
}

export class PublicationTable {
  private readonly byTag = new Map<string, PublicationRecord>();
  private readonly byAor = new Map<string, Set<PublicationRecord>>();

  get size(): number {
    return this.byTag.size;
  }

  add(p: PublicationRecord): void {
    this.byTag.set(p.etag, p);
    let set = this.byAor.get(p.aor);
    if (!set) this.byAor.set(p.aor, (set = new Set()));
    set.add(p);
  }

  /** Gives a held publication a new entity tag. */
  retag(p: PublicationRecord, etag: string): void {
    if (this.byTag.get(p.etag) === p) this.byTag.delete(p.etag);
    p.etag = etag;
    this.byTag.set(etag, p);
  }

  remove(p: PublicationRecord): void {
    if (this.byTag.get(p.etag) !== p) return;
    this.byTag.delete(p.etag);
    const set = this.byAor.get(p.aor);
    if (set) {
      set.delete(p);
      if (set.size === 0) this.byAor.delete(p.aor);
    }
  }

  get(etag: string): PublicationRecord | undefined {
    return this.byTag.get(etag);
  }

  has(p: PublicationRecord): boolean {
    return this.byTag.get(p.etag) === p;
  }

  of(aor: string): PublicationRecord[] {
    const set = this.byAor.get(aor);
    return set ? [...set] : [];
  }
}
