// The IM bridge as one subsystem (lifecycle.ts), built after messaging (it stores incoming IMs in the inbox and
// holds a Secret per app session) and before HTTP (routes/linked-accounts.ts, and what routes/messages.ts asks of
// it: password sessions open the vault, sends through a linked account, stream frames).
//
// Pieces: the vault (vault.ts), the app side of linked accounts and connections (links.ts), and — unless
// --bridge-connectors is empty — a connector inside this process (connector.ts) for the listed types.

import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import { isSwitchboardError, sbError } from '../errors.ts';
import type { AccountService } from '../identity/account-service.ts';
import type { Hook, Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Inbox } from '../messaging/inbox.ts';
import type { AppSessions, IssuedSession, SessionChange } from '../messaging/sessions.ts';
import type { LinkedAccountStore, LinkType, VaultStore } from '../storage/ports/bridge.ts';
import { Connector } from './connector.ts';
import { Bridge } from './links.ts';
import { PROTOCOLS, type ProtocolRegistry } from './registry.ts';
import { serverPolicy, type ServerPolicy } from './server-policy.ts';
import { Vault } from './vault.ts';

export interface PasswordSet {
  accountId: string;
  password: string;
  /** The password before, when the change was made with it (the user's own change); null: an administrator's reset. */
  previous: string | null;
}

export interface BridgeSubsystemOptions {
  config: Config;
  node: string;
  master: Buffer;
  /** The deployment's tag (kazoo/subsystem.ts kazooIdentity): names the bridge's group queues on an AMQP bus. */
  deployment: string;
  store: VaultStore & LinkedAccountStore;
  bus: EventBus;
  accounts: Pick<AccountService, 'login'>;
  sessions: Pick<AppSessions, 'keyOf' | 'anyLive'>;
  sessionChanges: Hook<SessionChange>;
  /** Identity's: every new password, with the old one when known (the vault is rewrapped, or reset). */
  passwordSet: Hook<PasswordSet>;
  inbox: Pick<Inbox, 'send'>;
  /** Protocol modules (tests add theirs); default registry.ts's. */
  protocols?: ProtocolRegistry;
  now: () => number;
  log: Logger;
}

export interface BridgeSubsystem extends Subsystem {
  readonly bridge: Bridge;
  readonly vault: Vault;
  /** The connector inside this process, or null. */
  readonly connector: Connector | null;
  passwordLogin(login: string, password: string, address: string): Promise<string>;
  sessionStarted(s: IssuedSession, how: { password?: string; recoveryKey?: string; deviceKey?: string }): Promise<Record<string, unknown>>;
}

export function createBridge(o: BridgeSubsystemOptions): BridgeSubsystem {
  const log = o.log.child({ component: 'bridge' });
  const vault = new Vault(o.store, { memoryKiB: o.config.passwords.argon2MemoryKiB, passes: o.config.passwords.argon2Passes });
  const protocols = o.protocols ?? PROTOCOLS;
  const types = o.config.bridge.connectors as LinkType[];
  let policy: ServerPolicy;
  try {
    policy = serverPolicy(o.config);
  } catch (err) {
    throw sbError('CONFIG_ERR_INVALID', (err as Error).message);
  }
  // Types a link may name: this process's connector's, and any a connector on the bus has announced.
  const servedTypes = () => new Set<LinkType>([...types, ...bridge.connectors.everServed()]);
  const bridge: Bridge = new Bridge({ store: o.store, sessions: o.sessions, inbox: o.inbox, bus: o.bus, master: o.master, node: o.node, groupPrefix: `switchboard.${o.deployment}`, maxLinked: o.config.bridge.maxLinked, policy, servedTypes, now: o.now, log });
  const connector = types.length ? new Connector({ bus: o.bus, master: o.master, types, protocols, policy, node: o.node, log: log.child({ component: 'connector' }) }) : null;

  o.sessionChanges.on(async (c) => {
    if (c.event === 'rolled') bridge.sessionRolled(c.from, c.to);
    else await bridge.sessionEnded(c.accountId, c.kid).catch((err: unknown) => log.warn({ err }, 'bridge: session end failed'));
  });
  o.passwordSet.on(async ({ accountId, password, previous }) => {
    try {
      if (previous !== null && (await vault.rewrapPassword(accountId, previous, password))) return;
    } catch (err) {
      log.warn({ err: isSwitchboardError(err) ? err.code : err, account: accountId }, 'vault: the old password did not open it; treating the change as a reset');
    }
    if (previous === null && (await vault.exists(accountId))) {
      const r = await vault.passwordReset(accountId);
      log.warn({ account: accountId, recovery: r }, r === 'recoverable' ? 'password reset: the vault opens again only with the recovery key' : 'password reset: no recovery key, linked credentials are lost');
      if (r === 'none') await vault.forget(accountId);
    }
  });

  return {
    name: 'bridge',
    bridge,
    vault,
    connector,
    async passwordLogin(login, password, address) {
      return (await o.accounts.login(login, password, address)).id;
    },
    async sessionStarted(s, how) {
      try {
        const opened = how.password
          ? await vault.openWithPassword(s.accountId, how.password, how.recoveryKey)
          : s.deviceId !== null && how.deviceKey
            ? await vault.openWithDeviceKey(s.accountId, s.deviceId, Buffer.from(how.deviceKey, 'base64url'))
            : null;
        if (!opened) return { state: 'locked' };
        await bridge.sessionOpened(s, opened.secret);
        return opened.recoveryKey ? { state: 'created', recoveryKey: opened.recoveryKey } : { state: 'open' };
      } catch (err) {
        if (isSwitchboardError(err, 'BRIDGE_ERR_VAULT_RECOVERY') || isSwitchboardError(err, 'BRIDGE_ERR_RECOVERY_KEY')) return { state: 'recovery_required', message: err.message };
        if (isSwitchboardError(err, 'BRIDGE_ERR_VAULT_PASSWORD')) return { state: 'locked', message: err.message };
        throw err;
      }
    },
    async start() {
      for (const t of types) if (!protocols.has(t)) throw sbError('CONFIG_ERR_INVALID', `--bridge-connectors: no protocol module for ${t}`);
      await bridge.start();
      await connector?.start();
    },
    async stop() {
      await connector?.stop();
      bridge.stop();
    },
  };
}
