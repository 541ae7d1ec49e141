// name-addr / addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39, §25.1): the value shape of
// From, To, Contact, Route, Record-Route, Path, Reply-To.
//
// In the addr-spec form (no angle brackets) a ';' ends the URI: what follows are header parameters, and the URI
// itself may then carry no parameters or headers (§20.10). Serialization always uses angle brackets.

import { isTokenChar, isWs, parseParams, quote, scanQuoted, serializeParams, skipLws, trimLws, unquote, type Params } from './grammar.ts';
import { formatUri, parseUri, type Uri } from './uri.ts';

export interface NameAddr {
  /** Display name as text (quotes removed, escapes resolved), or null. */
  displayName: string | null;
  uri: Uri;
  params: Params;
}

/** Parses one name-addr or addr-spec with parameters; null when malformed. Never throws. */
export function parseNameAddr(s: string): NameAddr | null {
  let i = skipLws(s, 0);
  let displayName: string | null = null;
  let uriText: string;
  if (s.charCodeAt(i) === 34 /* " */) {
    const end = scanQuoted(s, i);
    if (end < 0) return null;
    displayName = unquote(s.slice(i, end));
    i = skipLws(s, end);
    if (s.charCodeAt(i) !== 60) return null;
  }
  // A display name is made of tokens, which never hold ':'; so a ':' before any '<' means addr-spec form.
  let lt = s.indexOf('<', i);
  const colon = s.indexOf(':', i);
  if (lt >= 0 && colon >= 0 && colon < lt) lt = -1;
  if (lt >= 0) {
    if (displayName === null && lt > i) {
      // display-name = *(token LWS) — tokens separated by whitespace only.
      const dn = trimLws(s.slice(i, lt));
      for (let k = 0; k < dn.length; k++) {
        const c = dn.charCodeAt(k);
        if (!isTokenChar(c) && !isWs(c)) return null;
      }
      displayName = dn.replace(/[ \t]+/g, ' ');
    }
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) return null;
    uriText = s.slice(lt + 1, gt);
    i = gt + 1;
  } else {
    if (displayName !== null) return null;
    // addr-spec: the URI runs to the first ';' (header params follow) or whitespace.
    const start = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === 32 || c === 9 || c === 44) break;
      i++;
    }
    uriText = s.slice(start, i);
    if (uriText.indexOf('?') >= 0) return null;
  }
  const uri = parseUri(uriText);
  if (!uri) return null;
  const params = parseParams(s, i);
  if (!params) return null;
  return { displayName, uri, params };
}

export function formatNameAddr(na: NameAddr): string {
  let out = '';
  if (na.displayName !== null && na.displayName !== '') out += quote(na.displayName) + ' ';
  out += '<' + formatUri(na.uri) + '>';
  return out + serializeParams(na.params);
}

/** The value of a tag parameter, or null. */
export function tagOf(na: NameAddr): string | null {
  return na.params.get('tag') ?? null;
}
