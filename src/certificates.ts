// TLS material: the operator's certificate and key (--tls-cert, --tls-key), or, for local use, a self-signed
// ECDSA P-256 certificate generated once into <data-dir>/tls/ (localhost, 127.0.0.1, ::1 and the host name as
// subjectAltNames). The certificate is DER-encoded here from node:crypto primitives (RFC 5280), so no
// certificate library is needed for a development convenience.

import { constants, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import { sbError } from './errors.ts';

export interface TlsFiles {
  key: string;
  cert: string;
  /** True when generated here (browsers and phones will not trust it without being told to). */
  selfSigned: boolean;
  certPath: string;
}

/**
 * Mozilla's "intermediate" server profile (ssl-config.mozilla.org, guidelines 5.7): TLS 1.3's suites and, for
 * TLS 1.2, ECDHE/DHE with AEAD ciphers only (AES-GCM, ChaCha20-Poly1305). No CBC suites: they are what Lucky13-
 * style padding oracles need, and no client of the last decade lacks an AEAD suite. The DHE suites are unused
 * unless a DH group is configured (Node has none by default), as in Mozilla's own nginx output.
 */
export const TLS_INTERMEDIATE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * The options every TLS context of ours gets (SIP over TLS, WSS, and connections we open): TLS 1.2 and up, the
 * configured suites, and no renegotiation. A TLS 1.2 client may otherwise ask for a new handshake on an open
 * connection at will, each costing the server a private-key operation (a DoS lever); SIP has no use for it
 * (client certificates are asked for in the first handshake), and TLS 1.3 removed it altogether.
 */
export function tlsContextOptions(ciphers: string): { ciphers: string; minVersion: 'TLSv1.2'; secureOptions: number } {
  return { ciphers, minVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
}

// --- DER (X.690) encoding, just what a certificate needs ---------------------------------------------------

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, body: Buffer) => tlv(0xa0 + n, body);

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if (v[0] & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [parts[0] * 40 + parts[1]];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    let v = p >>> 7;
    while (v > 0) {
      chunk.unshift(0x80 | (v & 0x7f));
      v >>>= 7;
    }
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));

function time(d: Date): Buffer {
  // UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'latin1')) : tlv(0x18, Buffer.from(iso, 'latin1'));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.from(groups.flatMap((g) => {
    const v = parseInt(g || '0', 16);
    return [v >> 8, v & 0xff];
  }));
}

/** A self-signed X.509 v3 certificate (PEM) for the private `key`, valid `days` days, for the given names and addresses. */
export function selfSignedCertificate(key: KeyObject, names: string[], days: number): string {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const ecdsaWithSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), utf8(names[0] ?? 'localhost'))), set(seq(oid('2.5.4.10'), utf8('Switchboard (self-signed)'))));
  const now = new Date();
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + days * 86_400_000);
  const altNames = names.map((n) => (isIP(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n, 'latin1'))));
  const extensions = explicit(
    3,
    seq(
      seq(oid('2.5.29.17'), tlv(0x04, seq(...altNames))), // subjectAltName
      seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq())), // basicConstraints critical, CA false
      seq(oid('2.5.29.37'), tlv(0x04, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2')))), // extKeyUsage server+client auth
    ),
  );
  const tbs = seq(explicit(0, integer(Buffer.from([2]))), integer(randomBytes(16)), ecdsaWithSha256, name, seq(time(notBefore), time(notAfter)), name, spki, extensions);
  const signature = sign('sha256', tbs, { key, dsaEncoding: 'der' });
  const der = seq(tbs, ecdsaWithSha256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

/** The certificate and key to serve TLS and WSS with: configured files, or a generated self-signed pair. */
export function loadTlsFiles(o: { dataDir: string; certPath: string | null; keyPath: string | null; hostnames?: string[] }): TlsFiles {
  if (o.certPath || o.keyPath) {
    if (!o.certPath || !o.keyPath) throw sbError('CONFIG_ERR_INVALID', '--tls-cert and --tls-key go together');
    const cert = readFileSync(o.certPath, 'utf8');
    const key = readFileSync(o.keyPath, 'utf8');
    try {
      new X509Certificate(cert);
      createPrivateKey(key);
    } catch (e) {
      throw sbError('CONFIG_ERR_INVALID', `cannot read TLS certificate or key: ${(e as Error).message}`);
    }
    return { cert, key, selfSigned: false, certPath: o.certPath };
  }
  const dir = path.join(o.dataDir, 'tls');
  const certPath = path.join(dir, 'self-signed-cert.pem');
  const keyPath = path.join(dir, 'self-signed-key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, 'utf8');
    if (new Date(new X509Certificate(cert).validTo).getTime() > Date.now() + 7 * 86_400_000) {
      return { cert, key: readFileSync(keyPath, 'utf8'), selfSigned: true, certPath };
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const names = ['localhost', '127.0.0.1', '::1', ...new Set([hostname(), ...(o.hostnames ?? [])])];
  const cert = selfSignedCertificate(privateKey, names, 825);
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeFileSync(keyPath, key, { mode: 0o600 });
  writeFileSync(certPath, cert);
  return { cert, key, selfSigned: true, certPath };
}
