// The ports to the outside world of phone sign-up: captcha verification, code delivery by SMS and voice, and
// push challenges. Adapters: local.ts (log + file, for development), siteverify.ts (hCaptcha/Turnstile-style),
// twilio.ts (Twilio-style Messages and Calls API).

export type CodeTransport = 'sms' | 'voice';

export interface CodeMessage {
  number: string;
  code: string;
  transport: CodeTransport;
  /** Accept-Language of the client, if any. */
  locale: string | null;
  /** The client's kind, as Signal clients send it (`ios`, `android-2021-03`, …). */
  client: string | null;
  sessionId: string;
}

/** Why a code could not be sent, in Signal's vocabulary (the 440 body). */
export type ProviderFailure = 'providerUnavailable' | 'providerRejected' | 'illegalArgument';

export class ProviderError extends Error {
  readonly reason: ProviderFailure;
  /** True when trying again with this transport cannot succeed. */
  readonly permanent: boolean;
  constructor(reason: ProviderFailure, permanent: boolean, message: string) {
    super(message);
    this.reason = reason;
    this.permanent = permanent;
  }
}

export interface CodeSender {
  readonly name: string;
  /** Resolves when the provider accepted the message; throws ProviderError otherwise. */
  send(m: CodeMessage): Promise<void>;
}

export interface PushChallenge {
  number: string;
  pushToken: string;
  pushTokenType: 'apn' | 'fcm';
  challenge: string;
  sessionId: string;
}

export interface PushSender {
  readonly name: string;
  sendChallenge(p: PushChallenge): Promise<void>;
}

export interface CaptchaVerifier {
  readonly name: string;
  /** true: solved; false: refused. Throws ProviderError('providerUnavailable') when the service cannot be asked. */
  verify(token: string, remoteIp: string): Promise<boolean>;
}

/** The message text for a code (SMS body, or what the voice says). */
export function codeText(code: string, transport: CodeTransport): string {
  if (transport === 'sms') return `Your Switchboard verification code: ${code}`;
  return `Your Switchboard verification code is ${code.split('').join(' ')}. Again: ${code.split('').join(' ')}.`;
}
