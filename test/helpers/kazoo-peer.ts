// A Kazoo component on the bus, written straight on amqplib (not on Switchboard's adapter), for tests and benchmarks:
// it declares Kazoo's exchanges as Kazoo does, owns a reply queue bound to `targeted` with its Server-ID, publishes
// requests with the Kazoo envelope, matches replies by Msg-ID, and binds listening queues as a Kazoo app would.

import { randomBytes, randomUUID } from 'node:crypto';
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';

export type Json = Record<string, unknown>;

export class KazooPeer {
  readonly serverId: string;
  private conn!: ChannelModel;
  private ch!: Channel;
  private readonly waiting = new Map<string, { resolve: (m: Json[]) => void; got: Json[]; want: number; timer: NodeJS.Timeout }>();
  /** Replies that matched no request (or arrived after their request was done). */
  readonly stray: Json[] = [];

  private constructor(serverId: string) {
    this.serverId = serverId;
  }

  static async open(url: string, name = 'kamailio@sbc'): Promise<KazooPeer> {
    const p = new KazooPeer(`${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    p.conn = await connect(url, { noDelay: true });
    p.conn.on('error', () => {});
    p.ch = await p.conn.createChannel();
    p.ch.on('error', () => {});
    for (const [ex, type] of [['callmgr', 'topic'], ['registrar', 'topic'], ['targeted', 'direct']] as const) await p.ch.assertExchange(ex, type, { durable: false, autoDelete: false });
    await p.ch.assertQueue(p.serverId, { exclusive: true, autoDelete: true });
    await p.ch.bindQueue(p.serverId, 'targeted', p.serverId);
    await p.ch.consume(p.serverId, (m) => m && p.onReply(m), { noAck: true });
    return p;
  }

  get channel(): Channel {
    return this.ch;
  }

  private onReply(m: ConsumeMessage): void {
    const body = JSON.parse(m.content.toString()) as Json;
    const w = this.waiting.get(body['Msg-ID'] as string);
    if (!w) {
      this.stray.push(body);
      return;
    }
    w.got.push(body);
    if (w.got.length >= w.want) {
      clearTimeout(w.timer);
      this.waiting.delete(body['Msg-ID'] as string);
      w.resolve(w.got);
    }
  }

  /** The Kazoo envelope, as kz_api:default_headers builds it. */
  envelope(name: string, msgId = randomUUID()): Json {
    return { 'App-Name': 'kamailio', 'App-Version': '5.6.3', 'Event-Category': 'directory', 'Event-Name': name, 'Msg-ID': msgId, 'Server-ID': this.serverId, Node: 'kamailio@sbc' };
  }

  publish(exchange: string, key: string, body: Json | string | Buffer): void {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    this.ch.publish(exchange, key, buf, { contentType: 'application/json' });
  }

  /** Publishes a request and collects replies with its Msg-ID: `want` of them, or what came within `ms`. */
  request(exchange: string, key: string, body: Json, o: { want?: number; ms?: number } = {}): Promise<Json[]> {
    const id = body['Msg-ID'] as string;
    const want = o.want ?? 1;
    const p = new Promise<Json[]>((resolve) => {
      const got: Json[] = [];
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(got);
      }, o.ms ?? 3000);
      this.waiting.set(id, { resolve, got, want, timer });
    });
    this.publish(exchange, key, body);
    return p;
  }

  /** A queue bound as a Kazoo listener would bind it; messages land in the returned list. */
  async listen(exchange: string, bindings: string[], o: { durable?: boolean; name?: string } = {}): Promise<{ queue: string; messages: Json[] }> {
    const q = await this.ch.assertQueue(o.name ?? '', o.durable ? { durable: true, autoDelete: false } : { exclusive: true, autoDelete: true });
    for (const b of bindings) await this.ch.bindQueue(q.queue, exchange, b);
    const messages: Json[] = [];
    await this.ch.consume(q.queue, (m) => m && messages.push(JSON.parse(m.content.toString()) as Json), { noAck: true });
    return { queue: q.queue, messages };
  }

  async close(): Promise<void> {
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    await this.conn.close().catch(() => {});
  }
}

export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
