// GET /v1/events: the bus's events (binding.*, presence.*, …) as a server-sent event stream (text/event-stream),
// for the admin console's live feed and for operators' scripts (`curl -N -H 'Authorization: Bearer …'`).
//
// Authentication is the usual `Authorization` header: an admin's access token, or an API key holding
// `events.read` (only an admin can grant it). The console reads the stream with fetch() so the header can be set;
// no token ever goes into a URL (EventSource cannot send headers, so it is not used). The caller is checked again
// every `recheckMs`: an access token that expired or an API key that was revoked ends the stream with an
// `auth-expired` event, and the client reconnects with a fresh token.
//
// One bus subscription (`#`) is held while at least one stream is open and fanned out here, so the bus sees one
// consumer however many consoles are open (over AMQP: one binding on the node's queue), and none when nobody
// watches. A client that cannot keep up (more than `maxBufferedBytes` unsent) is disconnected rather than
// buffered without bound.

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { topicMatches, type BusMessage, type EventBus } from '../../bus/event-bus.ts';
import { sbError } from '../../errors.ts';
import { guard, principalOf, type Authenticator } from '../authenticate.ts';
import { errorSchema } from '../schemas.ts';

export interface EventRoutesOptions {
  bus: EventBus;
  auth: Authenticator;
  /** Comment lines that keep idle proxies from closing the stream. */
  heartbeatMs?: number;
  /** How often the caller's token or key is checked again. */
  recheckMs?: number;
  maxBufferedBytes?: number;
}

interface Stream {
  patterns: string[];
  send(msg: BusMessage): void;
  end(event?: string): void;
}

// Words as topics encode them (topicWord: %XX escapes, '+' for a space), and the wildcards.
const TOPIC_PATTERN = /^[A-Za-z0-9_~%+*#-]+(\.[A-Za-z0-9_~%+*#-]+)*$/;

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, o) => {
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  const recheckMs = o.recheckMs ?? 30_000;
  const maxBuffered = o.maxBufferedBytes ?? 1 << 20;
  const streams = new Set<Stream>();
  let unsubscribe: (() => void) | null = null;

  const fanOut = (msg: BusMessage) => {
    // Relayed SIP requests between nodes (whole messages, bodies included) are plumbing, not events.
    if (msg.topic.startsWith('sip.relay')) return;
    for (const s of streams) if (s.patterns.some((p) => topicMatches(p, msg.topic))) s.send(msg);
  };
  const attach = (s: Stream) => {
    streams.add(s);
    unsubscribe ??= o.bus.subscribe('#', fanOut);
  };
  const detach = (s: Stream) => {
    streams.delete(s);
    if (streams.size === 0 && unsubscribe) {
      unsubscribe();
      unsubscribe = null;
    }
  };
  // Open streams would keep the HTTP server from closing.
  app.addHook('preClose', async () => {
    for (const s of [...streams]) s.end('shutdown');
  });

  app.get<{ Querystring: { topics?: string } }>(
    '/v1/events',
    {
      preHandler: guard(o.auth, { permission: 'events.read' }),
      schema: {
        tags: ['events'],
        summary: 'Live bus events as server-sent events (admin, or an API key with events.read)',
        description:
          'Each event: `id` (a sequence number), `event` (the topic, e.g. binding.added), `data` (JSON: topic, at, payload). ' +
          'Comment lines every 15 s keep the connection open; an `auth-expired` event ends the stream when the token expires or the key is revoked.',
        security: [{ bearer: [] }],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            topics: { type: 'string', maxLength: 1000, description: 'Comma-separated topic patterns (`*` one word, `#` any); default `#` (everything)' },
          },
        },
        response: { 400: errorSchema, 401: errorSchema, 403: errorSchema },
      },
    },
    async (req: FastifyRequest<{ Querystring: { topics?: string } }>, reply: FastifyReply) => {
      const patterns = (req.query.topics ?? '#').split(',').map((p) => p.trim()).filter(Boolean);
      if (patterns.length === 0 || patterns.length > 32 || !patterns.every((p) => TOPIC_PATTERN.test(p))) {
        throw sbError('HTTP_ERR_VALIDATION', 'topics must be comma-separated topic patterns (words of letters, digits, _ or -, or * or #)');
      }
      const authorization = req.headers.authorization;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        // Not kept alive for reuse when the stream ends: a server shutting down must not wait for it to idle out.
        connection: 'close',
        // Proxies such as nginx must pass each event on at once.
        'x-accel-buffering': 'no',
      });
      let seq = 0;
      let ended = false;
      const write = (chunk: string) => {
        if (ended) return;
        res.write(chunk);
        if (res.writableLength > maxBuffered) stream.end();
      };
      const stream: Stream = {
        patterns,
        send: (msg) => write(`id: ${++seq}\nevent: ${msg.topic}\ndata: ${JSON.stringify({ topic: msg.topic, at: msg.at, payload: msg.payload })}\n\n`),
        end: (event) => {
          if (ended) return;
          if (event) write(`event: ${event}\ndata: {}\n\n`);
          ended = true;
          clearInterval(heartbeat);
          clearInterval(recheck);
          detach(stream);
          // The socket goes with the stream (an idle keep-alive socket would hold up the server's close).
          res.end(() => res.socket?.destroy());
        },
      };
      const heartbeat = setInterval(() => write(': keep-alive\n\n'), heartbeatMs);
      const recheck = setInterval(() => {
        principalOf({ headers: { authorization } } as FastifyRequest, o.auth).then(
          (p) => {
            if (!p) stream.end('auth-expired');
          },
          () => stream.end('auth-expired'),
        );
      }, recheckMs);
      heartbeat.unref();
      recheck.unref();
      res.on('close', () => stream.end());
      res.on('error', () => stream.end());
      write(`retry: 3000\nevent: ready\ndata: ${JSON.stringify({ topics: patterns })}\n\n`);
      attach(stream);
    },
  );
};
