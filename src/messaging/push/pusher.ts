// Sends the pushes: for an inbox message, one to each of the recipient's devices whose app session asked for them
// (PUT /v1/sessions/current/push), content-free or sealed to that session's key (payload.ts). Outcomes go on the bus
// as push.sent / push.failed (provider, kind, status: never a token or a payload) and into
// switchboard_pushes_total{provider,outcome}. A provider that calls a token dead gets the target removed. A push
// never fails what caused it: errors are logged and counted.

import type { EventBus } from '../../bus/event-bus.ts';
import type { Logger } from '../../log.ts';
import type { StoredMessage } from '../../storage/ports/messaging.ts';
import type { BindingRecord } from '../../storage/ports.ts';
import { pushParamsOf } from '../../registrar/push-params.ts';
import type { AppSessions } from '../sessions.ts';
import { encryptedPayload, wakeUp } from './payload.ts';
import type { PushNotification, PushProvider, PushProviderName, PushResult, PushTarget } from './ports.ts';

export interface PusherOptions {
  providers: PushProvider[];
  sessions: AppSessions;
  bus: EventBus;
  node: string;
  log: Logger;
  /** Seconds a provider may hold a message push. */
  messageTtl: number;
  count?: (provider: PushProviderName, outcome: 'sent' | 'failed' | 'gone') => void;
}

export class Pusher {
  private readonly o: PusherOptions;
  private readonly providers = new Map<PushProviderName, PushProvider>();

  constructor(o: PusherOptions) {
    this.o = o;
    for (const p of o.providers) this.providers.set(p.name, p);
  }

  /** The pn-provider values served here (RFC 8599: a REGISTER naming another gets 555). */
  get names(): PushProviderName[] {
    return [...this.providers.keys()];
  }

  supports(name: string): name is PushProviderName {
    return this.providers.has(name as PushProviderName);
  }

  /** Pushes every device of the recipient that asked for pushes; never throws. */
  async messageStored(m: StoredMessage): Promise<void> {
    let targets: Awaited<ReturnType<AppSessions['pushTargets']>>;
    try {
      targets = await this.o.sessions.pushTargets(m.accountId);
    } catch (err) {
      this.o.log.warn({ err, account: m.accountId }, 'push targets unreadable');
      return;
    }
    await Promise.all(
      targets
        .filter((t) => m.deviceId === null || t.session.deviceId === null || t.session.deviceId === m.deviceId)
        .map(async (t) => {
          const payload = t.push.encrypt
            ? encryptedPayload({ type: 'message', id: m.id, sender: m.sender, contentType: m.contentType, body: m.body.toString('base64') }, t.session.kid, t.key)
            : wakeUp('message');
          const r = await this.send(m.accountId, t.push, { kind: 'message', payload, ttl: this.o.messageTtl });
          if (!r.ok && r.gone) await this.o.sessions.setPush(t.session, null).catch(() => {});
        }),
    );
  }

  /**
   * Fork late (proxy/fork-late.ts): a content-free wake-up to the device of a SIP binding, from its RFC 8599 pn-*
   * contact parameters, so that it registers again and gets the call or MESSAGE waiting for it. True when sent.
   */
  async wakeBinding(b: BindingRecord, kind: 'call' | 'message', ttl: number): Promise<boolean> {
    const pn = pushParamsOf(b.contact);
    if (!pn || !this.supports(pn.provider)) return false;
    const r = await this.send(b.accountId ?? '', { provider: pn.provider, prid: pn.prid, param: pn.param }, { kind, payload: wakeUp(kind), ttl });
    return r.ok;
  }

  /** One push, announced and counted. */
  async send(accountId: string, target: PushTarget, n: PushNotification): Promise<PushResult> {
    const provider = this.providers.get(target.provider);
    let r: PushResult;
    if (!provider) r = { ok: false, status: 0, reason: 'provider not configured', gone: false };
    else {
      try {
        r = await provider.send(target, n);
      } catch (err) {
        r = { ok: false, status: 0, reason: (err as Error).message, gone: false };
      }
    }
    const base = { accountId, provider: target.provider, kind: n.kind, node: this.o.node };
    if (r.ok) {
      this.o.count?.(target.provider, 'sent');
      this.o.bus.publish('push.sent', base, { batch: true });
    } else {
      this.o.count?.(target.provider, r.gone ? 'gone' : 'failed');
      this.o.bus.publish('push.failed', { ...base, status: r.status, reason: r.reason, gone: r.gone }, { batch: true });
      this.o.log.info({ account: accountId, provider: target.provider, status: r.status, reason: r.reason }, 'push failed');
    }
    return r;
  }

  close(): void {
    for (const p of this.providers.values()) p.close();
  }
}
