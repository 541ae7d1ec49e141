// Local stand-ins for the push services (h2c servers that record each request) and the user agent's side of RFC 8291,
// written from the RFC here rather than shared with src/, so the test checks the encryption independently.

import assert from 'node:assert/strict';
import { createDecipheriv, type createECDH, createHmac } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

export interface Seen {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** An h2c server answering with `handle`; records every request. */
export async function h2Server(handle: (s: Seen) => { status: number; headers?: Record<string, string>; body?: string }) {
  const seen: Seen[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const s = { headers, body: Buffer.concat(chunks) };
      seen.push(s);
      const r = handle(s);
      stream.respond({ ':status': r.status, ...(r.headers ?? {}) });
      stream.end(r.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** RFC 8291 §3.4 decryption, written here from the RFC (not shared with src): the user agent's side. */
export function decryptWebPush(body: Buffer, ua: ReturnType<typeof createECDH>, authSecret: Buffer): Buffer {
  const hkdf = (salt: Buffer, ikm: Buffer, info: Buffer, len: number) => {
    const prk = createHmac('sha256', salt).update(ikm).digest();
    return createHmac('sha256', prk).update(Buffer.concat([info, Buffer.from([1])])).digest().subarray(0, len);
  };
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const ct = body.subarray(21 + idlen);
  assert.equal(rs, 4096);
  assert.equal(idlen, 65);
  const uaPublic = ua.getPublicKey();
  const secret = ua.computeSecret(asPublic);
  const ikm = hkdf(authSecret, secret, Buffer.concat([Buffer.from('WebPush: info'), Buffer.from([0]), uaPublic, asPublic]), 32);
  const cek = hkdf(salt, ikm, Buffer.concat([Buffer.from('Content-Encoding: aes128gcm'), Buffer.from([0])]), 16);
  const nonce = hkdf(salt, ikm, Buffer.concat([Buffer.from('Content-Encoding: nonce'), Buffer.from([0])]), 12);
  const d = createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(ct.subarray(ct.length - 16));
  const padded = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
  // The last record ends with the delimiter 0x02, then only zero padding.
  let end = padded.length - 1;
  while (padded[end] === 0) end--;
  assert.equal(padded[end], 2, 'last-record delimiter');
  return padded.subarray(0, end);
}
