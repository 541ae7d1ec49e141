// The push port (RFC 8599's "push notification service"): one provider per pn-provider value. Adapters: fcm.ts
// (FCM HTTP v1), apns.ts (APNs over HTTP/2, token auth), webpush.ts (RFC 8030 with RFC 8291 and VAPID, RFC 8292).

export type PushProviderName = 'fcm' | 'apns' | 'webpush';

/** Where a push goes: RFC 8599's pn-provider, pn-prid and pn-param, plus Web Push's subscription keys. */
export interface PushTarget {
  provider: PushProviderName;
  /** The device's token (FCM registration token, APNs device token) or, for Web Push, the subscription's endpoint. */
  prid: string;
  /** pn-param: APNs "<team>.<bundle id>.<voip|remote>"; FCM the project id (unused: ours is configured); else null. */
  param: string | null;
  /** Web Push: the subscription's P-256 public key (65 bytes, base64url) and auth secret (16 bytes, base64url). */
  p256dh?: string;
  auth?: string;
}

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
