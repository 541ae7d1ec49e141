// Character classes and small scanners from RFC 3261 §25.1. Strings here are "wire strings": the message bytes
// decoded as latin1, one char per byte, so offsets equal byte offsets and re-encoding is exact.

const TOKEN = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~') TOKEN[c.charCodeAt(0)] = 1;

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
export function isTokenChar(code: number): boolean {
  return code < 128 && TOKEN[code] === 1;
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

export function isWs(code: number): boolean {
  return code === 32 || code === 9;
}

/** Linear whitespace inside a header value after unfolding: SP, HTAB, and stray CR/LF. */
export function isLws(code: number): boolean {
  return code === 32 || code === 9 || code === 13 || code === 10;
}

export function skipLws(s: string, i: number, end = s.length): number {
  while (i < end && isLws(s.charCodeAt(i))) i++;
  return i;
}

export function trimLws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isLws(s.charCodeAt(a))) a++;
  while (b > a && isLws(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Index just past the closing quote of the quoted-string opening at `i`, or -1 when unterminated. */
export function scanQuoted(s: string, i: number): number {
  // s[i] === '"'
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 92 /* \ */) {
      j++;
      continue;
    }
    if (c === 34 /* " */) return j + 1;
  }
  return -1;
}

/**
 * The content of a quoted-string with its quoted-pairs resolved. Input includes the quotes; anything that is not
 * exactly one whole quoted-string (unterminated, or with text after the closing quote) is returned unchanged.
 */
export function unquote(q: string): string {
  if (q.length < 2 || q.charCodeAt(0) !== 34 || scanQuoted(q, 0) !== q.length) return q;
  const inner = q.slice(1, -1);
  if (inner.indexOf('\\') < 0) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === '\\' && i + 1 < inner.length) out += inner[++i];
    else out += c;
  }
  return out;
}

/**
 * A quoted-string for the value, escaping `"` and `\`. CR and LF cannot be carried by a quoted-pair (RFC 3261
 * §25.1), and written raw they would end the header line (header injection), so each becomes a space.
 */
export function quote(v: string): string {
  // Most values (a realm, a nonce) hold none of the four: two regular-expression replaces each cost more than the scan.
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 13 || c === 10 || c === 34 || c === 92) return '"' + v.replace(/[\r\n]/g, ' ').replace(/["\\]/g, '\\$&') + '"';
  }
  return '"' + v + '"';
}

/**
 * Splits a header value on top-level commas: commas inside quoted strings or angle brackets do not count.
 * Returns trimmed, non-empty parts. Throws nothing; an unterminated quote or bracket takes the rest of the value.
 */
export function splitComma(s: string): string[] {
  if (s.indexOf(',') < 0) {
    const t = trimLws(s);
    return t ? [t] : [];
  }
  const out: string[] = [];
  let start = 0;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      const end = scanQuoted(s, i);
      if (end < 0) break;
      i = end - 1;
    } else if (c === 60 /* < */) angle = true;
    else if (c === 62 /* > */) angle = false;
    else if (c === 44 /* , */ && !angle) {
      const part = trimLws(s.slice(start, i));
      if (part) out.push(part);
      start = i + 1;
    }
  }
  const last = trimLws(s.slice(start));
  if (last) out.push(last);
  return out;
}

/**
 * The parameters of a URI, name-addr or Via, names lower-case, in order. Read-only: parsed ones are a ParamList
 * (a value without any holds the one shared EMPTY_PARAMS), so code that changes parameters puts a Map of its own in
 * their place (copy-on-write: stampVia's received and rport, a notifier's From without its tag).
 */
export type Params = ReadonlyMap<string, string | null>;

/**
 * Parsed parameters: name, value pairs in one array, found by a scan. A Via, a From or a Contact URI has one to
 * three parameters; as a Map each list was a table allocated for four and a hash of every name set or looked up.
 * Read-only to everyone: it has no set, so a cast to Map cannot change it either (copy into a Map to edit).
 */
export class ParamList<V = string | null> implements ReadonlyMap<string, V> {
  /** name, value, name, value, … in order, each name once. */
  private readonly list: Array<string | V>;

  constructor(list: Array<string | V>) {
    this.list = list;
  }

  get size(): number {
    return this.list.length >> 1;
  }

  private indexOf(name: string): number {
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) if (l[i] === name) return i;
    return -1;
  }

  get(name: string): V | undefined {
    const i = this.indexOf(name);
    return i < 0 ? undefined : (this.list[i + 1] as V);
  }

  has(name: string): boolean {
    return this.indexOf(name) >= 0;
  }

  forEach(f: (value: V, name: string, map: ReadonlyMap<string, V>) => void): void {
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) f(l[i + 1] as V, l[i] as string, this);
  }

  *entries(): MapIterator<[string, V]> {
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) yield [l[i] as string, l[i + 1] as V];
  }

  *keys(): MapIterator<string> {
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) yield l[i] as string;
  }

  *values(): MapIterator<V> {
    const l = this.list;
    for (let i = 1; i < l.length; i += 2) yield l[i] as V;
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }
}

/**
 * Adds a parameter to a list being built (`list` null: none yet), a repeated name taking the new value in the old
 * place (as Map.set did). Starts the array at its first pair: an empty array's first push reserves 16 slots.
 */
export function addParam(list: Array<string | null> | null, name: string, value: string | null): Array<string | null> {
  if (list === null) return [name, value];
  for (let i = 0; i < list.length; i += 2) {
    if (list[i] === name) {
      list[i + 1] = value;
      return list;
    }
  }
  list.push(name, value);
  return list;
}

/**
 * The parameters of everything parsed without any: most Request-URIs, From and To URIs, To before its tag, a
 * Contact's header parameters. A Map each was ~180 bytes, nine of them per registration (1.6 of its 34 KB,
 * allocation profile of bench/tools/gc-trace.sh).
 */
// Its list is frozen; the instance is not (a frozen one has a hidden class of its own, and every params.get/has site
// would see two where it sees one), and it has no method that changes it.
export const EMPTY_PARAMS: Params = new ParamList(Object.freeze([]) as unknown as Array<string | null>);

/**
 * Whether `word` is written in `s` at `from`: its characters compared in place (the caller knows the length fits).
 * Cheaper than startsWith with a position (a builtin call each) for the short names matched on every message.
 */
export function equalsAt(s: string, from: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (s.charCodeAt(from + k) !== word.charCodeAt(k)) return false;
  return true;
}

/**
 * Constant spellings by length and first character, each with a value, for matching a token in place: `lookup`
 * gives the value of the spelling written at s[from, to), or undefined. Case-sensitive: only the spelling given
 * matches.
 */
export class Spellings<V = string> {
  /** By length, then by first character (ASCII): the entries spelt so. */
  private readonly byLength: Array<Array<Array<[string, V]> | undefined> | undefined> = [];

  constructor(entries: Iterable<[string, V]>) {
    for (const entry of entries) {
      const w = entry[0];
      const first = w.charCodeAt(0);
      if (first > 127) throw new Error(`Spellings: ${w} does not start with an ASCII character`);
      const byFirst = (this.byLength[w.length] ??= new Array<Array<[string, V]> | undefined>(128).fill(undefined));
      (byFirst[first] ??= []).push(entry);
    }
  }

  /** A table of words whose values are themselves. */
  static of(words: readonly string[]): Spellings<string> {
    return new Spellings(words.map((w): [string, string] => [w, w]));
  }

  lookup(s: string, from: number, to: number): V | undefined {
    const byFirst = this.byLength[to - from];
    if (byFirst === undefined) return undefined;
    const list = byFirst[s.charCodeAt(from) & 127];
    if (list === undefined) return undefined;
    for (let k = 0; k < list.length; k++) if (equalsAt(s, from, list[k][0])) return list[k][1];
    return undefined;
  }
}

/**
 * The methods of the IANA registry as constants: a request line's or CSeq's method written so is taken without a
 * slice, and the handler, metrics and CSeq comparisons of every request then meet strings that are one already.
 */
export const METHODS = Spellings.of([
  'REGISTER', 'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'MESSAGE', 'INFO', 'PRACK',
  'UPDATE', 'REFER',
]);

/**
 * Parameter names as constants, by length: the ones nearly every Via, From, To, Contact and their URIs carry. A name
 * written so (in lower case) is matched in place and the constant taken, where a slice and a toLowerCase made a new
 * string each, for the params Map to hash once more (branch, tag, transport, rport: five or six a request).
 */
const PARAM_NAMES = Spellings.of([
  'branch', 'tag', 'rport', 'received', 'transport', 'expires', 'q', 'lr', 'user', 'maddr', 'ttl', 'method', 'ob',
  'gr', 'reg-id', '+sip.instance', 'alias', 'comp', 'pub-gruu', 'temp-gruu', 'pn-provider', 'pn-prid', 'pn-param',
]);

/** The lower-case name of the parameter written at s[from, to). */
export function paramName(s: string, from: number, to: number): string {
  return PARAM_NAMES.lookup(s, from, to) ?? s.slice(from, to).toLowerCase();
}

/**
 * Parses `;name[=value]` parameters starting at `i` (which points at the first ';' or at the end). Names are
 * lower-cased (they compare case-insensitively); values keep their case, quoted values keep their quotes so
 * they serialize back unchanged. Returns null on a syntax error, EMPTY_PARAMS when there are none.
 */
export function parseParams(s: string, i: number, end = s.length): Params | null {
  let params: Array<string | null> | null = null;
  i = skipLws(s, i, end);
  while (i < end) {
    if (s.charCodeAt(i) !== 59 /* ; */) return null;
    i = skipLws(s, i + 1, end);
    const nameStart = i;
    while (i < end && isTokenChar(s.charCodeAt(i))) i++;
    if (i === nameStart) return null;
    const name = paramName(s, nameStart, i);
    i = skipLws(s, i, end);
    let value: string | null = null;
    if (i < end && s.charCodeAt(i) === 61 /* = */) {
      i = skipLws(s, i + 1, end);
      if (i < end && s.charCodeAt(i) === 34) {
        const q = scanQuoted(s, i);
        if (q < 0 || q > end) return null;
        value = s.slice(i, q);
        i = q;
      } else {
        const vStart = i;
        // gen-value = token / host / quoted-string; IPv6 references bring '[', ']' and ':'.
        while (i < end) {
          const c = s.charCodeAt(i);
          if (isTokenChar(c) || c === 58 || c === 91 || c === 93) i++;
          else break;
        }
        if (i === vStart) return null;
        value = s.slice(vStart, i);
      }
      i = skipLws(s, i, end);
    }
    params = addParam(params, name, value);
  }
  return params === null ? EMPTY_PARAMS : new ParamList(params);
}

export function serializeParams(params: Params | undefined): string {
  if (!params || params.size === 0) return '';
  let out = '';
  params.forEach((v, k) => (out += v === null ? ';' + k : ';' + k + '=' + v));
  return out;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Decodes %HH escapes; invalid escapes are kept literally. */
export function unescapePercent(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) === 37 && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out += s[i];
  }
  return out;
}

/** Converts a wire string (latin1, one char per byte) to the text it encodes as UTF-8. */
export function wireToText(s: string): string {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 127) return Buffer.from(s, 'latin1').toString('utf8');
  }
  return s;
}

/** Converts text to a wire string (its UTF-8 bytes, one char per byte). */
export function textToWire(s: string): string {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 127) return Buffer.from(s, 'utf8').toString('latin1');
  }
  return s;
}
