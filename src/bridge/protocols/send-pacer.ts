// Flood-safe sending: servers drop a client that writes faster than they read (RFC 1459 §8.10: each line costs
// the client 2 s on a timer that may run at most 10 s ahead, so 5 lines at once and then one every 2 s). A token
// bucket of the same shape paces the lines of every send, in order; what waits is bounded in bytes, so a sender
// faster than the server gets an error rather than growing memory.

export interface PacerOptions {
  burst: number;          // lines that may go at once (RFC 1459 §8.10: 5)
  intervalMs: number;     // one more line per interval after the burst (RFC 1459 §8.10: 2000)
  maxQueuedBytes: number; // what may wait, in UTF-16 code units of the lines (a bound, not an accounting)
}

/** Writes one line; `done` is called once the line is handed to the socket, with an error when it was not. */
export type LineWriter = (line: string, done: (err?: Error) => void) => void;

/** One send(): settled once, by its last line written or its first failure. */
interface Batch {
  remaining: number;
  settled: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Pending {
  line: string;
  batch: Batch;
}

export class SendPacer {
  readonly #write: LineWriter;
  readonly #opts: PacerOptions;
  #tokens: number;
  #refilledAt = Date.now();
  #queue: Pending[] = [];
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed: Error | null = null;
  readonly #unsettled = new Set<Batch>();

  constructor(write: LineWriter, opts: PacerOptions) {
    this.#write = write;
    this.#opts = opts;
    this.#tokens = opts.burst;
  }

  /** Queues the lines of one message; resolves when the last one is written, rejects when the queue is full, the
   *  pacer closed, or a write failed. */
  send(lines: readonly string[]): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (lines.length === 0) return Promise.resolve();
    const size = lines.reduce((n, l) => n + l.length, 0);
    if (this.#queuedBytes + size > this.#opts.maxQueuedBytes) {
      return Promise.reject(new Error(`send queue full (${this.#queuedBytes} waiting, limit ${this.#opts.maxQueuedBytes})`));
    }
    return new Promise<void>((resolve, reject) => {
      const batch: Batch = { remaining: lines.length, settled: false, resolve, reject };
      this.#unsettled.add(batch);
      for (const line of lines) this.#queue.push({ line, batch });
      this.#queuedBytes += size;
      this.#drain();
    });
  }

  /** Rejects everything waiting with `err`; later sends reject at once. */
  close(err: Error): void {
    if (this.#closed) return;
    this.#closed = err;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const b of this.#unsettled) this.#settle(b, err);
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #refill(): void {
    const now = Date.now();
    if (this.#tokens >= this.#opts.burst) {
      this.#refilledAt = now; // a full bucket earns nothing: the next token is one interval after the next line
      return;
    }
    const earned = Math.floor((now - this.#refilledAt) / this.#opts.intervalMs);
    if (earned > 0) {
      this.#tokens = Math.min(this.#opts.burst, this.#tokens + earned);
      this.#refilledAt = this.#tokens === this.#opts.burst ? now : this.#refilledAt + earned * this.#opts.intervalMs;
    }
  }

  #drain(): void {
    if (this.#timer || this.#closed) return;
    this.#refill();
    while (this.#queue.length > 0 && this.#tokens > 0) {
      const p = this.#queue.shift()!;
      this.#queuedBytes -= p.line.length;
      if (p.batch.settled) continue;
      this.#tokens -= 1;
      this.#write(p.line, (err) => {
        if (err) this.#settle(p.batch, err);
        else if (--p.batch.remaining === 0) this.#settle(p.batch);
      });
    }
    if (this.#queue.length > 0) {
      const wait = Math.max(1, this.#refilledAt + this.#opts.intervalMs - Date.now());
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#drain();
      }, wait);
    }
  }

  #settle(b: Batch, err?: Error): void {
    if (b.settled) return;
    b.settled = true;
    this.#unsettled.delete(b);
    if (err) b.reject(err);
    else b.resolve();
  }
}
