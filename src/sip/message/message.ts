// SIP requests and responses (RFC 3261 §7). Header values are kept raw (unfolded, trimmed wire strings) in
// arrival order; structured views (Via, From, To, CSeq, Contact…) are parsed on first use and memoised, so a
// header a request never asks for costs only its name lookup.

import { canonicalName, H, headerKey, isListHeader, keyOf } from './header-names.ts';
import { isLws, isTokenChar, METHODS, splitComma } from './grammar.ts';
import { parseNameAddr, type NameAddr } from './name-addr.ts';
import { parseVia, type Via } from './via.ts';
import { parseUri, type Uri } from './uri.ts';

export interface HeaderField {
  /** Lower-case full name (see header-names.ts). */
  readonly key: string;
  /** Name as written on the wire, or the canonical spelling for headers we add. */
  readonly name: string;
  value: string;
}

export interface CSeq {
  seq: number;
  method: string;
}

export const EMPTY_BODY: Buffer = Buffer.alloc(0);

export abstract class SipMessage {
  readonly headers: HeaderField[] = [];
  body: Buffer = EMPTY_BODY;
  private viaCache: Via[] | undefined = undefined;
  private topViaCache: Via | null | undefined = undefined;
  /** Whether topViaCache, when topVia() parsed it, was well formed (not only leniently readable). */
  private topViaStrict = false;
  private viaOk = true;
  private fromCache: NameAddr | null | undefined = undefined;
  private toCache: NameAddr | null | undefined = undefined;
  private cseqCache: CSeq | null | undefined = undefined;

  abstract readonly isRequest: boolean;

  // Lookups take a key (H.via, …) or any spelling ("Via", "v", "VIA"). Keys are tried first, as they are: the
  // headers hold interned keys, so that is a pointer comparison; only a miss normalises the name and looks again.

  /** First value of a header, or undefined. */
  get(key: string): string | undefined {
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) if (hs[i].key === key) return hs[i].value;
    const k = keyOf(key);
    if (k !== key) for (let i = 0; i < hs.length; i++) if (hs[i].key === k) return hs[i].value;
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  // getAll and values start their arrays at the first value, as [v]: an empty array's first push reserves 16
  // slots (144 bytes), and most headers asked for have one value (Via, Contact, Authorization: ~1 KB a registration).

  /** Every line of a header, in order. */
  getAll(key: string): string[] {
    let out = this.collectLines(key);
    if (out === null) {
      const k = keyOf(key);
      if (k !== key) out = this.collectLines(k);
    }
    return out ?? [];
  }

  private collectLines(key: string): string[] | null {
    let out: string[] | null = null;
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) {
      if (hs[i].key !== key) continue;
      if (out === null) out = [hs[i].value];
      else out.push(hs[i].value);
    }
    return out;
  }

  /** Every value of a list header across all its lines (RFC 3261 §7.3.1). */
  values(key: string): string[] {
    let out = this.collectValues(key);
    if (out === null) {
      const k = keyOf(key);
      if (k !== key) out = this.collectValues(k);
    }
    return out ?? [];
  }

  private collectValues(key: string): string[] | null {
    let out: string[] | null = null;
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) {
      if (hs[i].key !== key) continue;
      const v = hs[i].value;
      if (v.indexOf(',') < 0) {
        if (!v) continue;
        if (out === null) out = [v];
        else out.push(v);
      } else {
        const parts = splitComma(v);
        if (out === null) out = parts;
        else for (const part of parts) out.push(part);
      }
    }
    return out !== null && out.length === 0 ? null : out;
  }

  /** Appends a header line. `key` may be any spelling; the canonical one goes on the wire. */
  append(nameOrKey: string, value: string): this {
    const key = headerKey(nameOrKey);
    this.headers.push({ key, name: canonicalName(key) ?? nameOrKey, value });
    this.invalidate(key);
    return this;
  }

  /** Puts a header line first: a proxy's or a client transaction's own Via (§16.6 step 8, §8.1.1.7). */
  prepend(nameOrKey: string, value: string): this {
    const key = headerKey(nameOrKey);
    this.headers.unshift({ key, name: canonicalName(key) ?? nameOrKey, value });
    this.invalidate(key);
    return this;
  }

  /** Replaces every line of the header with one line holding `value`. */
  set(nameOrKey: string, value: string): this {
    const key = headerKey(nameOrKey);
    const hs = this.headers;
    const first = hs.findIndex((h) => h.key === key);
    if (first < 0) return this.append(nameOrKey, value);
    hs[first].value = value;
    for (let i = hs.length - 1; i > first; i--) if (hs[i].key === key) hs.splice(i, 1);
    this.invalidate(key);
    return this;
  }

  remove(nameOrKey: string): this {
    const key = headerKey(nameOrKey);
    const hs = this.headers;
    for (let i = hs.length - 1; i >= 0; i--) if (hs[i].key === key) hs.splice(i, 1);
    this.invalidate(key);
    return this;
  }

  /**
   * Removes the first value of a list header (values(key)[0]), leaving its other values and lines as they are: a
   * proxy's own Via off a response (§16.7 step 3) without splitting and joining the Vias below it.
   */
  removeFirstValue(nameOrKey: string): this {
    const key = headerKey(nameOrKey);
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) {
      if (hs[i].key !== key) continue;
      const v = hs[i].value;
      if (v.indexOf(',') < 0) {
        if (!v) continue;
        hs.splice(i, 1);
      } else {
        const parts = splitComma(v);
        if (parts.length === 0) continue;
        if (parts.length === 1) hs.splice(i, 1);
        else hs[i].value = parts.slice(1).join(', ');
      }
      this.invalidate(key);
      break;
    }
    // Lines that hold no value (an empty or all-comma line) go too, as set() and remove() would drop them.
    for (let i = hs.length - 1; i >= 0; i--) if (hs[i].key === key && splitCommaEmpty(hs[i].value)) hs.splice(i, 1);
    return this;
  }

  private invalidate(key: string): void {
    if (key === H.via) this.viaCache = this.topViaCache = undefined;
    else if (key === H.from) this.fromCache = undefined;
    else if (key === H.to) this.toCache = undefined;
    else if (key === H.cseq) this.cseqCache = undefined;
  }

  /**
   * Every Via value, top first, up to the first that fails to parse (so what is here is always the path back).
   * Throws nothing. A top Via whose parameters are malformed but whose sent-by is usable is still returned, so a
   * 400 can be sent back; viasWellFormed() is false then, as it is whenever any Via value is malformed.
   */
  vias(): Via[] {
    if (this.viaCache === undefined) {
      const values = this.values(H.via);
      let out: Via[] | null = null; // from [via], as in values()
      let ok = true;
      // The top value as topVia() parsed it, when it did: every request's was, by stampVia, before validateRequest
      // asks for them all (parsed twice, the Via was 1.5 KB of a registration's garbage and 2.5 % of its CPU).
      const top = this.topViaCache;
      for (let i = 0; i < values.length; i++) {
        const via = i === 0 && top != null ? (this.topViaStrict ? top : null) : parseVia(values[i]);
        if (via) {
          if (out === null) out = [via];
          else out.push(via);
          continue;
        }
        ok = false;
        if (i === 0) {
          const rough = top ?? parseVia(values[0], true);
          if (rough) out = [rough];
        }
        break;
      }
      out ??= [];
      this.viaCache = out;
      this.viaOk = ok;
      this.topViaCache = out[0] ?? null;
    }
    return this.viaCache;
  }

  /** False when a Via value is malformed (see vias()). */
  viasWellFormed(): boolean {
    this.vias();
    return this.viaOk;
  }

  /**
   * vias()[0], parsing only the first value until the others are asked for: a response is matched to its client
   * transaction by the top Via alone, and the proxy forwards it without reading the rest (the 180 and 200 of a call
   * carry two Vias). Once vias() has run, its first element.
   */
  topVia(): Via | null {
    if (this.topViaCache === undefined) {
      if (this.viaCache !== undefined) this.topViaCache = this.viaCache[0] ?? null;
      else {
        const v = this.firstValue(H.via);
        const strict = v === undefined ? null : parseVia(v);
        this.topViaStrict = strict !== null;
        this.topViaCache = v === undefined ? null : (strict ?? parseVia(v, true));
      }
    }
    return this.topViaCache;
  }

  /** values(key)[0] without splitting the other lines. */
  private firstValue(key: string): string | undefined {
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) {
      if (hs[i].key !== key) continue;
      const v = hs[i].value;
      if (v.indexOf(',') < 0) {
        if (v) return v;
      } else {
        const parts = splitComma(v);
        if (parts.length > 0) return parts[0];
      }
    }
    return undefined;
  }

  from(): NameAddr | null {
    if (this.fromCache === undefined) {
      const v = this.get(H.from);
      this.fromCache = v === undefined ? null : parseNameAddr(v);
    }
    return this.fromCache;
  }

  to(): NameAddr | null {
    if (this.toCache === undefined) {
      const v = this.get(H.to);
      this.toCache = v === undefined ? null : parseNameAddr(v);
    }
    return this.toCache;
  }

  callId(): string | undefined {
    return this.get(H.callId);
  }

  cseq(): CSeq | null {
    if (this.cseqCache === undefined) this.cseqCache = parseCSeq(this.get(H.cseq));
    return this.cseqCache;
  }
}

export class SipRequest extends SipMessage {
  readonly isRequest = true;
  method: string;
  version: string;
  private rawUri: string;
  private parsedUri: Uri | null | undefined = undefined;

  constructor(method: string, uri: string, version = 'SIP/2.0') {
    super();
    this.method = method;
    this.rawUri = uri;
    this.version = version;
  }

  /** Request-URI as written. */
  get uri(): string {
    return this.rawUri;
  }

  /** A new Request-URI (a proxy's target, §16.6 step 2; the strict-router fix-up, §16.4): requestUri() follows it. */
  set uri(uri: string) {
    this.rawUri = uri;
    this.parsedUri = undefined;
  }

  /** The Request-URI parsed, once per value (the endpoint's validation, then the proxy's routing, read it). */
  requestUri(): Uri | null {
    if (this.parsedUri === undefined) this.parsedUri = parseUri(this.rawUri);
    return this.parsedUri;
  }
}

export class SipResponse extends SipMessage {
  readonly isRequest = false;
  status: number;
  reason: string;
  version: string;
  /**
   * Sent statelessly (RFC 3261 §8.2.7): the transaction ends with it and a retransmitted request is simply handled
   * again. Right for answers that are as good the second time, such as a fresh Digest challenge; wrong where a
   * repeat would differ (a REGISTER's 200 OK, after which the same CSeq would be out of order).
   */
  stateless = false;
  /**
   * Not sent at all, the transaction ended (as Kamailio's pike drops a flood): for answers that would go to a source
   * that may be forged, beyond what it may be sent (a 401 flood aimed at a victim).
   */
  drop = false;

  constructor(status: number, reason: string, version = 'SIP/2.0') {
    super();
    this.status = status;
    this.reason = reason;
    this.version = version;
  }
}

/** CSeq = 1*DIGIT LWS Method; the number below 2**31 (RFC 3261 §8.1.1.5). At most ten digits. */
export function parseCSeq(v: string | undefined): CSeq | null {
  if (v === undefined) return null;
  const n = v.length;
  let i = 0;
  while (i < n && (v.charCodeAt(i) === 32 || v.charCodeAt(i) === 9)) i++;
  const digitsStart = i;
  let seq = 0;
  for (; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
  }
  if (i === digitsStart || i - digitsStart > 10 || seq >= 2 ** 31) return null;
  const lwsStart = i;
  while (i < n && isLws(v.charCodeAt(i))) i++;
  if (i === lwsStart) return null;
  const methodStart = i;
  while (i < n && isTokenChar(v.charCodeAt(i))) i++;
  if (i === methodStart) return null;
  const methodEnd = i;
  while (i < n && (v.charCodeAt(i) === 32 || v.charCodeAt(i) === 9)) i++;
  if (i !== n) return null;
  return { seq, method: METHODS.lookup(v, methodStart, methodEnd) ?? v.slice(methodStart, methodEnd) };
}

export function parseContactValues(msg: SipMessage): NameAddr[] | '*' | null {
  const values = msg.values(H.contact);
  if (values.length === 1 && values[0] === '*') return '*';
  const out: NameAddr[] = new Array(values.length); // filled in full or not returned
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === '*') return null;
    const na = parseNameAddr(v);
    if (!na) return null;
    out[i] = na;
  }
  return out;
}

/** A header line with no value in it: empty, or only commas and LWS. */
function splitCommaEmpty(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c !== 44 && !isLws(c)) return false;
  }
  return true;
}

export { isListHeader };
