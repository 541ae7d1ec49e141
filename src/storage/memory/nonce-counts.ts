// In-process nonce-count window (the approach of Kamailio's auth module): the highest nc accepted for each of
// the last `size` nonces this process issued, in a typed array indexed by nonce index modulo size. A nonce
// older than the window, or issued by another incarnation, cannot be vouched for and is reported stale, so
// the client is re-challenged (stale=true) rather than refused.
//
// 2^22 slots of Uint16 = 8 MiB track every nonce of the last 2^22 - 1 challenges (the slot of the next nonce to
// be issued is never vouched for).

import type { NonceCountResult, NonceCountTracker, NonceInfo } from '../../sip/digest.ts';

export class NonceCountWindow implements NonceCountTracker {
  private readonly counts: Uint16Array;
  private readonly mask: number;
  private readonly boot: number;
  private readonly nextIndex: () => number;

  /**
   * @param boot the issuer's incarnation id
   * @param nextIndex the index the issuer will give its next nonce
   */
  constructor(boot: number, nextIndex: () => number, sizeLog2 = 22) {
    this.counts = new Uint16Array(1 << sizeLog2);
    this.mask = (1 << sizeLog2) - 1;
    this.boot = boot >>> 0;
    this.nextIndex = nextIndex;
  }

  /** Called when a nonce is issued: its slot starts afresh (it may hold a count of an older nonce). */
  issued(info: NonceInfo): void {
    this.counts[info.index & this.mask] = 0;
  }

  claim(info: NonceInfo, nc: number): NonceCountResult {
    if (info.boot !== this.boot) return 'stale';
    const age = (this.nextIndex() - info.index) >>> 0;
    if (age === 0 || age > this.mask) return 'stale';
    if (nc > 0xffff) return 'stale';
    const slot = info.index & this.mask;
    if (nc <= this.counts[slot]) return 'replay';
    this.counts[slot] = nc;
    return 'ok';
  }
}
