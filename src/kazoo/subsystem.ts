// Kazoo's directory as one subsystem (lifecycle.ts): with an AMQP bus and --kazoo-directory on, Switchboard answers
// authn_req, announces reg_success, answers reg_query and honours reg_flush/reg_sync (directory.ts).

import type { EventBus } from '../bus/event-bus.ts';
import type { Config } from '../config.ts';
import type { ReversibleSipPasswords } from '../identity/reversible-passwords.ts';
import type { Hook, Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { BindingChange } from '../registrar/location-service.ts';
import { deriveKey } from '../secrets.ts';
import type { AccountStore, CredentialStore } from '../storage/ports.ts';
import { KazooDirectory, kazooServerId, registrarOf, type LocalBindings } from './directory.ts';

/** How this process is known on Kazoo's bus. */
export interface KazooIdentity {
  /** Node (`switchboard@<node>` unless --kazoo-node). */
  node: string;
  /** Server-ID: this process's queue on the targeted exchange. */
  serverId: string;
  /** The tag every node of the deployment derives from the master key it shares. */
  deployment: string;
  /** The deployment's tag where its nodes share the location index (one registrar to Kazoo), else null. */
  cluster: string | null;
}

/**
 * Every node of a deployment derives the same tag from the master key it shares. It names the queue the deployment's
 * nodes share for Kazoo's authn requests (another deployment on the broker, with other accounts, has its own and
 * answers too, deferring what it does not know), and where the nodes share the location index they are one
 * registrar to Kazoo: their Server-IDs carry the tag (directory.ts).
 */
export function kazooIdentity(config: Config, node: string, master: Buffer, sharedIndex: boolean): KazooIdentity {
  const deployment = deriveKey(master, 'kazoo-deployment').toString('hex').slice(0, 12);
  const cluster = sharedIndex ? deployment : null;
  const kazooNode = config.kazoo.node ?? `switchboard@${node}`;
  return { node: kazooNode, serverId: kazooServerId(kazooNode, cluster), deployment, cluster };
}

export interface KazooOptions {
  config: Config;
  id: KazooIdentity;
  version: string;
  bus: EventBus;
  credentials: CredentialStore;
  accounts: Pick<AccountStore, 'findByName'>;
  passwords: ReversibleSipPasswords;
  location: LocalBindings;
  /** The location service's binding changes: reg_success for ours. */
  bindingChanges: Hook<readonly BindingChange[]>;
  log: Logger;
}

export interface KazooSubsystem extends Subsystem {
  readonly directory: KazooDirectory;
}

export function createKazoo(o: KazooOptions): KazooSubsystem {
  const { config } = o;
  const directory = new KazooDirectory({
    bus: o.bus,
    credentials: o.credentials,
    passwords: o.passwords,
    location: o.location,
    sender: { appName: 'switchboard', appVersion: o.version, node: o.id.node, serverId: o.id.serverId },
    expiresDeviation: config.kazoo.expiresDeviation,
    foreignRegistrations: config.kazoo.foreignRegistrations !== 'off',
    ownsAor: config.kazoo.foreignRegistrations === 'all' ? undefined : registrarOf(config.realms, o.accounts),
    cluster: o.id.cluster,
    authnGroup: `switchboard.${o.id.deployment}.authn`,
    log: o.log,
  });
  // Binding changes become reg_success once the directory runs; those of the start-up (expired while down) wait.
  let pending: BindingChange[] | null = [];
  o.bindingChanges.on((changes) => {
    if (pending) pending.push(...changes);
    else directory.onBindingChanges(changes);
  });
  return {
    name: 'kazoo',
    directory,
    start() {
      directory.start();
      const waiting = pending ?? [];
      pending = null;
      directory.onBindingChanges(waiting);
    },
    stop() {
      directory.stop();
    },
  };
}
