// HTTP requests from a chosen local address (127.0.0.2 is another client than 127.0.0.1 on Linux's loopback), so
// that tests can be two parties: fetch cannot pick its source address.
import http from 'node:http';

export type Json = Record<string, unknown>;

export interface HttpReply {
  status: number;
  body: Json;
  headers: http.IncomingHttpHeaders;
}

export function httpFrom(
  localAddress: string,
  baseUrl: string,
  method: string,
  path: string,
  o: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpReply> {
  const url = new URL(path, baseUrl);
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...o.headers };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Json) : {}, headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export function basicAuth(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}
