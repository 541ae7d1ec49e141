// One HTTP/2 session per provider origin, reused for every push (APNs requires HTTP/2 and asks providers to keep
// their connections open; FCM and Web Push services speak it too). A session that errors or goes away is dropped
// and the next request opens a new one. https only, except on loopback (local test servers, h2c).

import http2 from 'node:http2';

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** Refuses http:// off loopback: push credentials must not cross a network in the clear. */
export function checkPushUrl(url: string, what: string): URL {
  const u = new URL(url);
  const loopback = u.hostname === '127.0.0.1' || u.hostname === '[::1]' || u.hostname === 'localhost';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw new Error(`${what} must be https (http only on loopback): ${u.origin}`);
  return u;
}

/** Most bytes of a provider's answer read (their error bodies are small JSON). */
const MAX_RESPONSE = 65_536;

export class H2Pool {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  private readonly timeoutMs: number;

  constructor(timeoutMs = 10_000) {
    this.timeoutMs = timeoutMs;
  }

  request(url: URL, method: string, headers: Record<string, string>, body: Buffer | string | null): Promise<H2Response> {
    const session = this.session(url.origin);
    return new Promise((resolve, reject) => {
      const req = session.request({ ':method': method, ':path': url.pathname + url.search, ...headers }, { endStream: body === null });
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      let resHeaders: http2.IncomingHttpHeaders = {};
      req.setTimeout(this.timeoutMs, () => req.close(http2.constants.NGHTTP2_CANCEL));
      req.on('response', (h) => {
        status = Number(h[':status']);
        resHeaders = h;
      });
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_RESPONSE) chunks.push(c);
      });
      req.on('end', () => resolve({ status, headers: resHeaders, body: Buffer.concat(chunks) }));
      req.on('close', () => {
        if (status === 0) reject(new Error(`no answer from ${url.origin}`));
      });
      req.on('error', reject);
      if (body !== null) req.end(body);
    });
  }

  private session(origin: string): http2.ClientHttp2Session {
    const open = this.sessions.get(origin);
    if (open && !open.closed && !open.destroyed) return open;
    const s = http2.connect(origin);
    s.on('error', () => this.sessions.delete(origin));
    s.on('goaway', () => this.sessions.delete(origin));
    s.on('close', () => {
      if (this.sessions.get(origin) === s) this.sessions.delete(origin);
    });
    // An idle pool must not keep the process alive.
    s.unref();
    this.sessions.set(origin, s);
    return s;
  }

  close(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}
