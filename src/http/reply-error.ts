// The one way an HTTP error leaves: a catalogue error (src/errors.ts) as {"error":{"code","message"}} with the
// catalogue's status. Routes throw sbError(...); the error handlers end here. test/unit/errors.test.ts keeps
// error statuses and codes from being written anywhere else.

import type { FastifyReply } from 'fastify';
import { sbError, type ErrorCode, type SwitchboardError } from '../errors.ts';

/**
 * Sends `err`. `status` overrides the catalogue's only for HTTP_ERR_REQUEST, whose status is the one the framework
 * found (413 body too large, 415 media type, 400 bad JSON); `body` adds fields beside `error` (Signal's dialect).
 */
export function sendError(reply: FastifyReply, err: SwitchboardError, status?: number, body?: Record<string, unknown>): FastifyReply {
  return reply.status(status ?? err.http ?? 500).send({ ...(body ?? {}), error: { code: err.code, message: err.message } });
}

/** Shorthand for the handlers: the catalogue entry `code` with `message`. */
export function sendCode(reply: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  return sendError(reply, sbError(code, message));
}

/**
 * An error the framework or a plugin threw that is not ours: its 4xx kept as HTTP_ERR_REQUEST with its message,
 * anything else HTTP_ERR_INTERNAL without detail (the caller logs it).
 */
export function sendForeignError(reply: FastifyReply, err: { statusCode?: number; message?: string }): FastifyReply {
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  if (status === 500) return sendCode(reply, 'HTTP_ERR_INTERNAL');
  return sendError(reply, sbError('HTTP_ERR_REQUEST', err.message || undefined), status);
}
