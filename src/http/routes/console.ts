// The browser pages: the admin console at /console/ and the web softphone at /phone/, plain HTML + ES modules +
// CSS from src/http/console/ (no build step), SIP.js's ES modules from node_modules at /ui/vendor/sip.js/, and
// GET /v1/client-config, which tells a page the realms and the WSS port.
//
// Every page response carries a Content-Security-Policy that allows scripts, styles and connections only from
// this origin, plus the SIP WSS endpoint for connections; no inline script or style anywhere. Files are served
// from fixed roots with an extension allow-list, so a request can never reach outside them.

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { sbError } from '../../errors.ts';
import type { ListenerAddress } from '../../sip/transport/types.ts';

export interface ConsoleRoutesOptions {
  /** The SIP listeners (the pages learn the WSS port from them). */
  sip: ListenerAddress[];
  realms: string[];
  version: string;
}

const UI_ROOT = path.resolve(import.meta.dirname, '../console');
const SIPJS_ROOT = path.dirname(fileURLToPath(import.meta.resolve('sip.js')));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The host of the Host header when it is a plain DNS name or IP literal (it goes into the CSP). */
function hostOf(req: FastifyRequest): string | null {
  const h = req.hostname;
  return /^[A-Za-z0-9.-]{1,253}$/.test(h) || /^\[[0-9A-Fa-f:.]{2,45}\]$/.test(h) ? h : null;
}

export const consoleRoutes: FastifyPluginAsync<ConsoleRoutesOptions> = async (app, o) => {
  const wssPort = o.sip.find((l) => l.transport === 'WSS')?.port ?? null;

  const securityHeaders = (req: FastifyRequest, reply: FastifyReply) => {
    const host = hostOf(req);
    const connect = ["'self'", ...(wssPort !== null && host !== null ? [`wss://${host}:${wssPort}`] : [])].join(' ');
    reply.header(
      'Content-Security-Policy',
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ${connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    );
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Resource-Policy', 'same-origin');
    reply.header('Permissions-Policy', 'camera=(), geolocation=(), microphone=(self)');
  };

  const serve = async (req: FastifyRequest, reply: FastifyReply, root: string, rel: string, allowed: string[]) => {
    const ext = path.extname(rel);
    const inside = path.resolve(root, rel);
    if (rel.includes('\0') || rel.includes('\\') || !allowed.includes(ext) || !inside.startsWith(root + path.sep)) {
      throw sbError('HTTP_ERR_NOT_FOUND', `no file ${req.url}`);
    }
    let info;
    try {
      info = await stat(inside);
    } catch {
      throw sbError('HTTP_ERR_NOT_FOUND', `no file ${req.url}`);
    }
    if (!info.isFile()) throw sbError('HTTP_ERR_NOT_FOUND', `no file ${req.url}`);
    const etag = `"${createHash('sha1').update(`${info.size}:${info.mtimeMs}`).digest('base64url')}"`;
    securityHeaders(req, reply);
    reply.header('Cache-Control', 'no-cache');
    reply.header('ETag', etag);
    if (req.headers['if-none-match'] === etag) return reply.status(304).send();
    return reply.type(TYPES[ext]).send(await readFile(inside));
  };

  const page = (prefix: string, dir: string) => {
    app.get(prefix, { schema: { hide: true } }, async (_req, reply) => reply.redirect(`${prefix}/`, 301));
    app.get<{ Params: { '*': string } }>(`${prefix}/*`, { schema: { hide: true } }, async (req, reply) => {
      const rel = req.params['*'] || 'index.html';
      return serve(req, reply, path.join(UI_ROOT, dir), rel, ['.html', '.js', '.css', '.svg', '.png']);
    });
  };
  page('/console', 'admin');
  page('/phone', 'phone');
  app.get<{ Params: { '*': string } }>('/ui/shared/*', { schema: { hide: true } }, async (req, reply) =>
    serve(req, reply, path.join(UI_ROOT, 'shared'), req.params['*'], ['.js', '.css', '.svg', '.png']),
  );
  app.get<{ Params: { '*': string } }>('/ui/vendor/sip.js/*', { schema: { hide: true } }, async (req, reply) =>
    serve(req, reply, SIPJS_ROOT, req.params['*'], ['.js']),
  );

  app.get(
    '/v1/client-config',
    {
      schema: {
        tags: ['console'],
        summary: 'What browser clients need to connect: realms and the SIP WSS port (the host is the one serving this)',
        response: {
          200: {
            type: 'object',
            properties: {
              realm: { type: 'string' },
              realms: { type: 'array', items: { type: 'string' } },
              wssPort: { type: 'integer', nullable: true },
              version: { type: 'string' },
            },
          },
        },
      },
    },
    async (_req, reply) => {
      reply.header('Cache-Control', 'no-cache');
      return { realm: o.realms[0], realms: o.realms, wssPort, version: o.version };
    },
  );
};
