// The push port (RFC 8599's "push notification service"): one provider per pn-provider value. Adapters: fcm.ts
// (FCM HTTP v1), apns.ts (APNs over HTTP/2, token auth), webpush.ts (RFC 8030 with RFC 8291 and VAPID, RFC 8292).

import type { PushProviderName, PushTarget } from '../../storage/ports/messaging.ts';

// The target is stored with an app session (storage/ports/messaging.ts), so its type lives with the store's port.
export type { PushProviderName, PushTarget };

export interface PushNotification {
  /** What wakes the device: an incoming call rings (voip, high priority), a message is fetched. */
  kind: 'call' | 'message';
  /** Opaque bytes for the app (payload.ts: a wake-up, or sealed to its session key); at most MAX_PUSH_PAYLOAD. */
  payload: Buffer;
  /** Seconds the provider may hold it for an offline device. */
  ttl: number;
}

export type PushResult =
  | { ok: true; id: string | null }
  /** gone: the provider says the token or subscription is dead (remove it). */
  | { ok: false; status: number; reason: string; gone: boolean };

export interface PushProvider {
  readonly name: PushProviderName;
  send(target: PushTarget, n: PushNotification): Promise<PushResult>;
  close(): void;
}

/** The largest payload handed to a provider (their limits: APNs 4 KB, FCM 4 KB of data, Web Push 4 KB encrypted). */
export const MAX_PUSH_PAYLOAD = 3072;
