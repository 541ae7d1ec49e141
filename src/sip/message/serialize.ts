// Serialization (RFC 3261 §7). Header lines go out as they are held, one line per field; Content-Length is
// always written from the body's actual length, so a message can never be framed wrongly on a stream.

import { H } from './header-names.ts';
import type { SipMessage, SipRequest, SipResponse } from './message.ts';

export function startLine(msg: SipMessage): string {
  if (msg.isRequest) {
    const r = msg as SipRequest;
    return `${r.method} ${r.uri} ${r.version}`;
  }
  const r = msg as SipResponse;
  return `${r.version} ${r.status} ${r.reason}`;
}

/** The header section as a wire string, ending with the blank line. */
export function serializeHead(msg: SipMessage): string {
  let out = startLine(msg) + '\r\n';
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key === H.contentLength) continue;
    out += h.name + ': ' + h.value + '\r\n';
  }
  return out + 'Content-Length: ' + msg.body.length + '\r\n\r\n';
}

export function serialize(msg: SipMessage): Buffer {
  const head = serializeHead(msg);
  const body = msg.body;
  if (body.length === 0) return Buffer.from(head, 'latin1');
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, 'latin1');
  body.copy(out, head.length);
  return out;
}
