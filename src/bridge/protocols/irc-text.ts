// IRC text both ways, as pure functions: what may be sent in one PRIVMSG (RFC 2812 §2.3: a line is at most 512
// bytes with its CR LF, and the server relays it with our ":nick!user@host " prefix in front, so the text must leave
// room for that), how a body becomes lines (no CR/LF/NUL injection: each body line is its own PRIVMSG, split on
// grapheme and so UTF-8 boundaries), and what an incoming line looks like once formatting codes are gone.

import { MAX_IM_BODY } from '../protocol.ts';

/** RFC 2812 §2.3: 512 bytes per line, CR LF included. */
export const IRC_LINE_BYTES = 512;
/** The longest user and host a server may put in the prefix it relays our line with (USERLEN 10 + "~"; HOSTLEN 63). */
const RELAY_USER_BYTES = 11;
const RELAY_HOST_BYTES = 63;

/** RFC 2812 §2.3.1 nickname: a letter or special first, then letters, digits, specials and '-'; bounded at 30. */
export const NICK = /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]{0,29}$/;
/** RFC 2812 §1.3 channel: a prefix, then anything but NUL, BEL, CR, LF, space, comma and colon; bounded at 50. */
export const CHANNEL = /^[#&+!][^\0\x07\r\n ,:]{1,49}$/;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Bytes left for the text of one PRIVMSG to `target` once the server has put our longest possible prefix on it. */
export function textBudget(nick: string, target: string): number {
  const prefix = 1 + utf8(nick) + 1 + RELAY_USER_BYTES + 1 + RELAY_HOST_BYTES + 1; // ":nick!user@host "
  const command = utf8(`PRIVMSG ${target} :`);
  return IRC_LINE_BYTES - 2 - prefix - command;
}

/** C0 controls but TAB, and DEL: NUL, CR and LF would end or cut the line; \x01 would make it a CTCP request. */
const CONTROLS = /[\0-\x08\x0a-\x1f\x7f]/g;

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Splits one line (no CR/LF left in it) into pieces of at most `budget` UTF-8 bytes: after the last space when one
 *  is in the second half of the piece, else between graphemes; a grapheme longer than the budget (hundreds of
 *  combining marks) is split between code points, which never splits a UTF-8 sequence. */
export function splitLine(line: string, budget: number): string[] {
  if (budget < 4) throw new Error(`an IRC text budget of ${budget} bytes cannot hold one code point`);
  const out: string[] = [];
  let piece = '';
  let bytes = 0;
  let lastSpace = -1; // index in `piece` just after its last space
  const flush = () => {
    if (lastSpace > piece.length / 2 && lastSpace < piece.length) {
      out.push(piece.slice(0, lastSpace));
      piece = piece.slice(lastSpace);
      bytes = utf8(piece);
    } else {
      out.push(piece);
      piece = '';
      bytes = 0;
    }
    lastSpace = -1;
  };
  for (const { segment } of graphemes.segment(line)) {
    const units = utf8(segment) <= budget ? [segment] : Array.from(segment);
    for (const unit of units) {
      const n = utf8(unit);
      if (bytes + n > budget) flush();
      piece += unit;
      bytes += n;
      if (unit === ' ') lastSpace = piece.length;
    }
  }
  if (piece !== '') out.push(piece);
  return out;
}

/** A body from the app as PRIVMSG texts: bounded (MAX_IM_BODY), one per body line, controls removed, empty lines
 *  dropped (servers refuse them, 412), each within `budget` bytes. */
export function bodyToLines(body: string, budget: number): string[] {
  if (utf8(body) > MAX_IM_BODY) throw new RangeError(`body over ${MAX_IM_BODY} bytes`);
  const out: string[] = [];
  for (const raw of body.split(/\r\n|\r|\n/)) {
    const line = raw.replace(CONTROLS, '');
    if (line.trim() === '') continue;
    out.push(...splitLine(line, budget));
  }
  return out;
}

/** mIRC formatting (bold, colour with its digits, hex colour, italics, reset, …) and other controls out of an
 *  incoming text, which the app shows as plain text; bounded like every IM body. */
export function ircToText(text: string): string {
  const plain = text
    .replace(/\x03(\d{1,2}(,\d{1,2})?)?/g, '')
    .replace(/\x04([0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?)?/g, '')
    .replace(CONTROLS, '');
  if (utf8(plain) <= MAX_IM_BODY) return plain;
  return Buffer.from(plain, 'utf8').subarray(0, MAX_IM_BODY).toString('utf8').replace(/\uFFFD$/, '');
}

/** A remote address the app may send to: a nick, a channel, or "#channel/nick" (a reply in the channel, addressed
 *  to that nick, as the channel messages it received were named). Null when it is none of them. */
export function parseAddress(to: string): { target: string; addressee?: string } | null {
  if (NICK.test(to)) return { target: to };
  // A nick has no '/', so the last one splits "#chan/nick" (and "#a/b/nick" for channel "#a/b"); a channel whose own
  // name ends in "/<something nick-like>" is read as that form.
  const slash = to.lastIndexOf('/');
  if (slash > 0) {
    const channel = to.slice(0, slash);
    const nick = to.slice(slash + 1);
    if (CHANNEL.test(channel) && NICK.test(nick)) return { target: channel, addressee: nick };
  }
  if (CHANNEL.test(to)) return { target: to };
  return null;
}
