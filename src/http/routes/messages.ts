// The app's side of messaging (issue 18): app sessions and the inbox.
//
//   POST   /v1/sessions             log in: Bearer access token (from /auth/login, or a device token) or a phone
//                                   device's Basic credentials → { kid, key, expiresAt } (the key is shown once);
//                                   or {username, password[, recoveryKey]}: also opens the bridge's vault for
//                                   this session (Basic + {deviceKey} for a phone device) → { …, vault }
//   POST   /v1/sessions/rollover    a new key for this session's device; the old one stays good --app-session-overlap
//   DELETE /v1/sessions/current     log out (this session)
//   PUT    /v1/sessions/current/push  push this device for its messages (provider and token or Web Push subscription;
//                                   encrypt: the details sealed to the session key instead of a bare wake-up); DELETE stops
//   GET    /v1/push/vapid           the VAPID public key a browser subscribes with (applicationServerKey)
//   GET    /v1/messages             queued messages, in order (clients without a socket)
//   DELETE /v1/messages/{id}        ack: removes the message
//   POST   /v1/messages             send to an address of record served here, with a client id (a retry is stored once);
//                                   with linkedAccount: to a remote IM address through the bridge (202, a delivery frame follows)
//   GET    /v1/messages/stream      WebSocket (messaging/stream.ts)
//
// Everything but POST /v1/sessions takes `Authorization: Session <kid>:<key>`; an account reads and acks only its own
// messages (every store call is keyed by the session's account). Bodies travel base64; their size is bounded.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { WebSocketServer } from 'ws';
import { isSwitchboardError, sbError } from '../../errors.ts';
import { parseLoginName } from '../../identity/accounts.ts';
import type { DeviceService } from '../../identity/phone/devices.ts';
import type { Logger } from '../../log.ts';
import type { Inbox } from '../../messaging/inbox.ts';
import { parseSessionAuthorization, type AppSession, type AppSessions, type IssuedSession } from '../../messaging/sessions.ts';
import { bridged, serveInboxStream, type StreamFrames } from '../../messaging/stream.ts';
import type { AccountStore } from '../../storage/ports.ts';
import { principalOf, type Authenticator } from '../authenticate.ts';
import { errorSchema } from '../schemas.ts';

export interface MessageRoutesOptions {
  sessions: AppSessions;
  inbox: Inbox;
  accounts: Pick<AccountStore, 'findById' | 'findByName'>;
  /** Phone devices' Basic credentials (absent without phone sign-up). */
  devices?: Pick<DeviceService, 'authenticate'>;
  auth: Authenticator;
  realms: string[];
  maxBody: number;
  /** Logins and sends per minute per address (0: no limit). */
  rateLimitPerMinute: number;
  loginRateLimitPerMinute: number;
  log: Logger;
  /** Web Push's VAPID public key (GET /v1/push/vapid), or null. */
  vapidPublicKey: string | null;
  /** The push providers configured (PUT /v1/sessions/current/push names one). */
  pushProviders: string[];
  /** The IM bridge (bridge/subsystem.ts), absent without it. */
  bridge?: SessionBridge;
}

/** What the bridge adds to sessions and messages: the vault opened at session start, IM sends, stream frames. */
export interface SessionBridge {
  /** Checks a password login (counted and locked like /auth/login); the account id. */
  passwordLogin(login: string, password: string, address: string): Promise<string>;
  /** Opens the vault for a new session (never stores the password); what the reply says about it. */
  sessionStarted(s: IssuedSession, how: { password?: string; recoveryKey?: string; deviceKey?: string }): Promise<Record<string, unknown>>;
  send(s: AppSession, linkedAccount: string, to: string, body: Buffer): Promise<{ id: string; status: 'queued'; delivered: false }>;
  frames: StreamFrames;
}

declare module 'fastify' {
  interface FastifyRequest {
    appSession: AppSession | null;
  }
}

const sessionSchema = {
  type: 'object',
  required: ['kid', 'key', 'expiresAt'],
  properties: {
    kid: { type: 'string' },
    key: { type: 'string' },
    expiresAt: { type: 'integer' },
    deviceId: { type: ['integer', 'null'] },
    vault: {
      type: 'object',
      description: 'The bridge vault for this session: open, created (recoveryKey shown this once), recovery_required, locked',
      properties: { state: { type: 'string' }, recoveryKey: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

const messageSchema = {
  type: 'object',
  required: ['id', 'sender', 'contentType', 'body', 'timestamp'],
  properties: {
    id: { type: 'string' },
    sender: { type: 'string' },
    contentType: { type: 'string' },
    body: { type: 'string', description: 'base64' },
    timestamp: { type: 'integer' },
    linkedAccount: { type: 'string', description: 'a bridged IM: the linked account it came through' },
    remote: { type: 'string', description: 'a bridged IM: the remote address' },
  },
} as const;

const security = [{ session: [] }];

export const messageRoutes: FastifyPluginAsync<MessageRoutesOptions> = async (app, o) => {
  const limit = (max: number): { rateLimit?: { max: number; timeWindow: number } } => (max > 0 ? { rateLimit: { max, timeWindow: 60_000 } } : {});
  app.decorateRequest('appSession', null);
  const session = async (req: FastifyRequest) => {
    const creds = parseSessionAuthorization(req.headers.authorization);
    if (!creds) throw sbError('MSG_ERR_SESSION', 'Authorization: Session <kid>:<key> required');
    req.appSession = await o.sessions.authenticate(creds.kid, creds.key);
  };
  const current = (req: FastifyRequest): AppSession => req.appSession!;
  const issued = (s: Awaited<ReturnType<AppSessions['create']>>) => ({ kid: s.kid, key: s.key, expiresAt: s.expiresAt, deviceId: s.deviceId });

  app.post<{ Body: { username?: string; password?: string; recoveryKey?: string; deviceKey?: string } | undefined }>(
    '/v1/sessions',
    {
      config: limit(o.loginRateLimitPerMinute),
      schema: {
        tags: ['messages'],
        summary: 'Start an app session: with a Bearer access token (password login, or a device token), a phone device\u2019s Basic credentials, or {username, password} (which also opens the bridge vault)',
        body: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 400 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
            recoveryKey: { type: 'string', minLength: 52, maxLength: 80 },
            deviceKey: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
          },
        },
        response: { 200: sessionSchema, 401: errorSchema, 429: errorSchema },
      },
    },
    async (req) => {
      const h = req.headers.authorization ?? '';
      const b = req.body ?? {};
      const withVault = async (s: IssuedSession, how: Parameters<SessionBridge['sessionStarted']>[1]) => {
        const out: Record<string, unknown> = issued(s);
        if (o.bridge && (how.password || how.deviceKey)) out.vault = await o.bridge.sessionStarted(s, how);
        return out;
      };
      if (b.username !== undefined || b.password !== undefined) {
        if (!o.bridge || b.username === undefined || b.password === undefined) throw sbError('HTTP_ERR_UNAUTHORIZED', 'username and password are required');
        const accountId = await o.bridge.passwordLogin(b.username, b.password, req.ip);
        return withVault(await o.sessions.create(accountId, null), { password: b.password, recoveryKey: b.recoveryKey });
      }
      if (/^Basic /i.test(h)) {
        if (!o.devices) throw sbError('HTTP_ERR_UNAUTHORIZED', 'no phone devices here');
        const d = await o.devices.authenticate(h, req.ip);
        return withVault(await o.sessions.create(d.accountId, d.deviceId), { deviceKey: b.deviceKey });
      }
      const p = await principalOf(req, o.auth);
      if (!p || p.via !== 'token') throw sbError('HTTP_ERR_UNAUTHORIZED', 'a Bearer access token or Basic device credentials are required');
      return issued(await o.sessions.create(p.accountId, p.device));
    },
  );

  app.post(
    '/v1/sessions/rollover',
    { preHandler: session, schema: { tags: ['messages'], summary: 'A new session key for this device; the old one stays good for the overlap window', security, response: { 200: sessionSchema, 401: errorSchema } } },
    async (req) => issued(await o.sessions.rollover(current(req))),
  );

  app.delete(
    '/v1/sessions/current',
    { preHandler: session, schema: { tags: ['messages'], summary: 'End this app session', security, response: { 204: { type: 'null' }, 401: errorSchema } } },
    async (req, reply) => {
      await o.sessions.logout(current(req));
      return reply.status(204).send();
    },
  );

  app.put<{ Body: { provider: 'fcm' | 'apns' | 'webpush'; token?: string; param?: string; endpoint?: string; keys?: { p256dh: string; auth: string }; encrypt?: boolean } }>(
    '/v1/sessions/current/push',
    {
      preHandler: session,
      schema: {
        tags: ['messages'],
        summary: 'Push this device when messages arrive: an FCM or APNs token, or a Web Push subscription; encrypt seals the details to the session key',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['provider'],
          properties: {
            provider: { type: 'string', enum: ['fcm', 'apns', 'webpush'] },
            token: { type: 'string', minLength: 1, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' },
            param: { type: 'string', maxLength: 200, pattern: '^[\\x21-\\x7e]*$' },
            endpoint: { type: 'string', maxLength: 1024, pattern: '^https?://' },
            keys: {
              type: 'object',
              additionalProperties: false,
              required: ['p256dh', 'auth'],
              properties: { p256dh: { type: 'string', pattern: '^[A-Za-z0-9_-]{87}$' }, auth: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' } },
            },
            encrypt: { type: 'boolean' },
          },
        },
        response: { 204: { type: 'null' }, 400: errorSchema, 401: errorSchema },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (!o.pushProviders.includes(b.provider)) throw sbError('HTTP_ERR_VALIDATION', `push provider ${b.provider} is not configured here`);
      const prid = b.provider === 'webpush' ? b.endpoint : b.token;
      if (!prid) throw sbError('HTTP_ERR_VALIDATION', b.provider === 'webpush' ? 'endpoint required' : 'token required');
      await o.sessions.setPush(current(req), { provider: b.provider, prid, param: b.param ?? null, ...(b.keys ? { p256dh: b.keys.p256dh, auth: b.keys.auth } : {}), encrypt: b.encrypt ?? false });
      return reply.status(204).send();
    },
  );

  app.delete(
    '/v1/sessions/current/push',
    { preHandler: session, schema: { tags: ['messages'], summary: 'Stop pushing this device', security, response: { 204: { type: 'null' }, 401: errorSchema } } },
    async (req, reply) => {
      await o.sessions.setPush(current(req), null);
      return reply.status(204).send();
    },
  );

  app.get(
    '/v1/push/vapid',
    { schema: { tags: ['messages'], summary: 'The VAPID public key (base64url, uncompressed P-256) for PushManager.subscribe', response: { 200: { type: 'object', properties: { publicKey: { type: 'string' } } }, 404: errorSchema } } },
    async () => {
      if (!o.vapidPublicKey) throw sbError('HTTP_ERR_NOT_FOUND', 'Web Push is off');
      return { publicKey: o.vapidPublicKey };
    },
  );

  app.get<{ Querystring: { limit?: number } }>(
    '/v1/messages',
    {
      preHandler: session,
      schema: {
        tags: ['messages'],
        summary: 'Queued messages in order (each stays until acked with DELETE /v1/messages/{id})',
        security,
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 100 } } },
        response: { 200: { type: 'object', required: ['messages', 'more'], properties: { messages: { type: 'array', items: messageSchema }, more: { type: 'boolean' } } }, 401: errorSchema },
      },
    },
    async (req) => {
      const s = current(req);
      const n = req.query.limit ?? 100;
      const list = await o.inbox.pending(s.accountId, s.deviceId, n + 1);
      return {
        messages: list.slice(0, n).map((m) => ({ id: m.id, sender: m.sender, contentType: m.contentType, body: m.body.toString('base64'), timestamp: m.createdAt, ...bridged(m.sender) })),
        more: list.length > n,
      };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/messages/:id',
    {
      preHandler: session,
      schema: {
        tags: ['messages'],
        summary: 'Ack a message: it is removed (404 when it is not this account\u2019s queued message)',
        security,
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 204: { type: 'null' }, 401: errorSchema, 404: errorSchema },
      },
    },
    async (req, reply) => {
      if (!(await o.inbox.ack(current(req).accountId, req.params.id, 'app'))) throw sbError('HTTP_ERR_NOT_FOUND', 'no such queued message');
      return reply.status(204).send();
    },
  );

  app.post<{ Body: { to: string; linkedAccount?: string; clientId?: string; contentType?: string; body: string } }>(
    '/v1/messages',
    {
      preHandler: session,
      config: limit(o.rateLimitPerMinute),
      bodyLimit: Math.ceil(o.maxBody / 3) * 4 + 4096,
      schema: {
        tags: ['messages'],
        summary: 'Send a message to an address of record served here; a retry with the same clientId is stored once',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['to', 'body'],
          properties: {
            to: { type: 'string', minLength: 3, maxLength: 300, description: 'sip:user@realm or user@realm; with linkedAccount the remote address (a JID, an IRC nick or #channel)' },
            linkedAccount: { type: 'string', minLength: 1, maxLength: 64, description: 'send through this linked account (GET /v1/linked-accounts)' },
            clientId: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[\\x21-\\x7e]+$' },
            contentType: { type: 'string', minLength: 3, maxLength: 100, pattern: '^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;[ -~]*)?$' },
            body: { type: 'string', maxLength: Math.ceil(o.maxBody / 3) * 4, pattern: '^[A-Za-z0-9+/]*={0,2}$' },
          },
        },
        response: {
          200: { type: 'object', required: ['id', 'status', 'delivered'], properties: { id: { type: 'string' }, status: { type: 'string', enum: ['stored', 'duplicate'] }, delivered: { type: 'boolean' } } },
          202: { type: 'object', required: ['id', 'status', 'delivered'], properties: { id: { type: 'string' }, status: { type: 'string', enum: ['queued'] }, delivered: { type: 'boolean' } } },
          400: errorSchema,
          401: errorSchema,
          404: errorSchema,
          409: errorSchema,
          413: errorSchema,
          429: errorSchema,
          507: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const s = current(req);
      if (req.body.linkedAccount !== undefined) {
        if (!o.bridge) throw sbError('BRIDGE_ERR_LINKED_NOT_FOUND', 'no IM bridge here');
        return reply.status(202).send(await o.bridge.send(s, req.body.linkedAccount, req.body.to, Buffer.from(req.body.body, 'base64')));
      }
      const sender = await o.accounts.findById(s.accountId);
      if (!sender) throw sbError('MSG_ERR_SESSION');
      const to = req.body.to.replace(/^sips?:/i, '');
      let name: { username: string; realm: string };
      try {
        name = parseLoginName(to, o.realms[0]);
      } catch {
        throw sbError('MSG_ERR_RECIPIENT', 'not an address of record');
      }
      if (!o.realms.includes(name.realm)) throw sbError('MSG_ERR_RECIPIENT', 'not a realm served here');
      const recipient = await o.accounts.findByName(name.username, name.realm);
      if (!recipient || recipient.disabled) throw sbError('MSG_ERR_RECIPIENT');
      return o.inbox.send({
        accountId: recipient.id,
        sender: `sip:${sender.aor}`,
        contentType: req.body.contentType ?? 'text/plain',
        body: Buffer.from(req.body.body, 'base64'),
        clientId: req.body.clientId ?? null,
        via: 'app',
      });
    },
  );

  // The stream: a WebSocket upgrade on this server's port, authenticated like the routes above. One socket per
  // session: a second one replaces the first.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  const sockets = new Map<string, import('ws').WebSocket>();
  const refuse = (socket: Duplex, status: number, code: string, message: string) => {
    const body = JSON.stringify({ error: { code, message } });
    socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Not Found'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/messages/stream') return refuse(socket, 404, 'HTTP_ERR_NOT_FOUND', 'no WebSocket here');
    const creds = parseSessionAuthorization(req.headers.authorization);
    if (!creds) return refuse(socket, 401, 'MSG_ERR_SESSION', 'Authorization: Session <kid>:<key> required');
    o.sessions.authenticate(creds.kid, creds.key).then(
      (s) => {
        if (socket.destroyed) return;
        wss.handleUpgrade(req, socket, head, (ws) => {
          sockets.get(s.kid)?.close(4409, 'replaced by a newer connection');
          sockets.set(s.kid, ws);
          ws.on('close', () => {
            if (sockets.get(s.kid) === ws) sockets.delete(s.kid);
          });
          serveInboxStream(ws, s, o.inbox, o.log, () => o.sessions.now(), o.bridge?.frames);
        });
      },
      (err: unknown) => {
        if (isSwitchboardError(err, 'MSG_ERR_SESSION')) refuse(socket, 401, err.code, err.message);
        else {
          o.log.warn({ err }, 'inbox stream authentication failed');
          socket.destroy();
        }
      },
    );
  };
  app.server.on('upgrade', onUpgrade);
  // preClose, not onClose: the HTTP server's close waits for these sockets, so they must go first (an app still
  // connected at shutdown otherwise held the stop up for good).
  app.addHook('preClose', async () => {
    app.server.off('upgrade', onUpgrade);
    for (const ws of sockets.values()) ws.close(1001, 'server shutting down');
    wss.close();
  });
};
