// Timers that all last the same time (the 100 Trying's 200 ms; the INVITE transactions' T1 and 64*T1, through
// after()): their deadlines come in the order they were set, so one queue and one Node timer for its head serve them
// all, instead of a Timeout object, a closure and a timer-list insertion and removal each. Nothing is cancelled: the
// callback decides when it fires whether there is still something to do (holding an item until then costs less than
// the bookkeeping of removing it). Measured with bench/calls-hotpath.bench.ts: the 100 Trying's setTimeout and
// closure were 2.1 us of a call's ~160 us of server time (two INVITEs a call).

export class DelayQueue<T> {
  private items: Array<T | undefined> = [];
  private deadlines: number[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly ms: number;
  private readonly fire: (item: T) => void;
  private readonly now: () => number;
  private readonly slackMs: number;

  /**
   * `now` is the clock deadlines are read on (Date.now where tests mock the clock). `slackMs`: the timer never waits
   * less than this, so items due close together fire together, up to that much late (for waits whose end need not
   * be punctual, such as Timer K's: one wake-up a second rather than one per transaction).
   */
  constructor(ms: number, fire: (item: T) => void, now: () => number = () => performance.now(), slackMs = 0) {
    this.ms = ms;
    this.fire = fire;
    this.now = now;
    this.slackMs = slackMs;
  }

  get size(): number {
    return this.items.length - this.head;
  }

  /** `fire(item)` in `ms` (never before; later when the event loop is busy, as setTimeout). */
  add(item: T): void {
    this.items.push(item);
    this.deadlines.push(this.now() + this.ms);
    if (this.timer === null) this.arm();
  }

  /** Drops every pending item without firing it. */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.items = [];
    this.deadlines = [];
    this.head = 0;
  }

  private arm(): void {
    const wait = Math.max(this.slackMs, Math.ceil(this.deadlines[this.head] - this.now()));
    this.timer = setTimeout(this.run, wait);
    this.timer.unref();
  }

  private readonly run = (): void => {
    this.timer = null;
    const now = this.now();
    const { items, deadlines } = this;
    try {
      while (this.items === items && this.head < items.length && deadlines[this.head] <= now) {
        const item = items[this.head] as T;
        items[this.head] = undefined;
        this.head++;
        this.fire(item);
      }
    } finally {
      if (this.items === items) this.compact();
      if (this.timer === null && this.head < this.items.length) this.arm();
    }
  };

  /** Fired items are dropped from the front once they are the larger part. */
  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.deadlines = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.deadlines = this.deadlines.slice(this.head);
      this.head = 0;
    }
  }
}

/** What a shared queue holds: `delayed()` is called once, when its time has come. */
export interface Delayed {
  delayed(): void;
}

const shared = new Map<number, DelayQueue<Delayed>>();

/**
 * `item.delayed()` in `ms`, from one queue per duration for the whole process: for the end of a transaction's
 * wait states (Timers L, M and D, 32 s), where the item is the transaction, held that long by its table anyway.
 */
export function after(ms: number, item: Delayed): void {
  let q = shared.get(ms);
  if (!q) shared.set(ms, (q = new DelayQueue<Delayed>(ms, (i) => i.delayed())));
  q.add(item);
}
