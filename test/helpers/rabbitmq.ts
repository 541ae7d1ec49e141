// RabbitMQ for tests: the machine's broker at 127.0.0.1:5672 (guest/guest). Each test file gets a vhost of its own
// (rabbitmqctl), so Kazoo's fixed exchange names never meet another run's. Without a reachable broker (or without
// rabbitmqctl) the tests skip with the reason; with SWITCHBOARD_REQUIRE_PEERS=1 (set by .ci/run) they fail instead.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import { which } from './peers.ts';

const run = promisify(execFile);

export const RABBIT_HOST = process.env.SWITCHBOARD_TEST_AMQP_HOST ?? '127.0.0.1';
export const RABBIT_PORT = Number(process.env.SWITCHBOARD_TEST_AMQP_PORT ?? 5672);

function reachable(ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: RABBIT_HOST, port: RABBIT_PORT });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(ms, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function ctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { timeout: 60_000 });
  return stdout;
}

/** For node:test's `skip`: false when the broker and rabbitmqctl are usable, else the reason (or a throw under CI). */
export async function missingRabbit(): Promise<string | false> {
  let reason: string | null = null;
  if (!which('rabbitmqctl')) reason = 'rabbitmqctl not installed (apt-get install -y rabbitmq-server)';
  else if (!(await reachable())) reason = `RabbitMQ not reachable at ${RABBIT_HOST}:${RABBIT_PORT} (start it: rabbitmq-server -detached)`;
  if (reason === null) return false;
  if (process.env.SWITCHBOARD_REQUIRE_PEERS === '1') throw new Error(`required peer missing: ${reason}`);
  return reason;
}

export interface TestVhost {
  name: string;
  /** amqp://guest:guest@host:port/<vhost> */
  url: string;
  delete(): Promise<void>;
}

/** A fresh vhost open to guest; vhosts left behind by runs over an hour ago are removed on the way. */
export async function createVhost(prefix = 'sb-test'): Promise<TestVhost> {
  const now = Date.now();
  try {
    for (const v of (await ctl('list_vhosts', 'name')).split('\n').map((l) => l.trim())) {
      const m = /^sb-(?:test|bench)-(\d+)-/.exec(v);
      if (m && now - Number(m[1]) > 3600_000) await ctl('delete_vhost', v).catch(() => {});
    }
  } catch {
    // listing is best effort
  }
  const name = `${prefix}-${now}-${randomBytes(3).toString('hex')}`;
  await ctl('add_vhost', name);
  await ctl('set_permissions', '-p', name, 'guest', '.*', '.*', '.*');
  return {
    name,
    url: `amqp://guest:guest@${RABBIT_HOST}:${RABBIT_PORT}/${encodeURIComponent(name)}`,
    async delete() {
      await ctl('delete_vhost', name).catch(() => {});
    },
  };
}

/**
 * Restarts the broker application (every connection drops, non-durable queues and exchanges go, the listener is down
 * meanwhile) and waits until it accepts connections again; `downMs` keeps it stopped a while first.
 */
export async function restartBroker(downMs = 0): Promise<void> {
  await ctl('stop_app');
  try {
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
  } finally {
    await ctl('start_app');
  }
  await ctl('await_startup');
  for (let i = 0; i < 100 && !(await reachable(200)); i++) await new Promise((r) => setTimeout(r, 100));
}

/** Messages currently in a queue of a vhost (from the broker's own count). */
export async function queueDepth(vhost: string, queue: string): Promise<number> {
  const out = await ctl('list_queues', '-p', vhost, 'name', 'messages');
  for (const line of out.split('\n')) {
    const [n, count] = line.trim().split(/\s+/);
    if (n === queue) return Number(count);
  }
  return -1;
}

/** The bindings of a vhost's queues to `exchange`, as the broker holds them: routing keys by queue. */
export async function queueBindings(vhost: string, exchange: string): Promise<Array<{ queue: string; key: string }>> {
  const out = await ctl('list_bindings', '-q', '--no-table-headers', '-p', vhost, 'source_name', 'destination_name', 'routing_key');
  const found: Array<{ queue: string; key: string }> = [];
  for (const line of out.split('\n')) {
    const [source, queue, key] = line.split('\t');
    if (source === exchange && queue) found.push({ queue, key: key ?? '' });
  }
  return found;
}
