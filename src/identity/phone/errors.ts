// Errors of the phone API: a catalogue error (src/errors.ts) that may carry a body to merge into the JSON answer
// (the verification session, {timeRemaining}, {reason, permanentFailure}) and a Retry-After.

import { sbError, type ErrorCode, type SwitchboardError } from '../../errors.ts';

export interface PhoneErrorDetail {
  body?: Record<string, unknown>;
  retryAfter?: number;
  headers?: Record<string, string>;
}

export function phoneError(code: ErrorCode, detail: PhoneErrorDetail & { message?: string } = {}): SwitchboardError {
  const { message, ...rest } = detail;
  return sbError(code, message, rest as Record<string, unknown>);
}

export function rateLimited(retryAfter: number, body?: Record<string, unknown>, what = 'too many requests'): SwitchboardError {
  return phoneError('PHONE_ERR_RATE_LIMITED', { message: `${what}; retry after ${retryAfter} s`, retryAfter, body });
}
