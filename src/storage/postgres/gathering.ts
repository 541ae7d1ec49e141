// When a group (a commit of binding writes, a query of credential lookups) should wait a moment for more to join it:
// only under load, told by the size of the group before it, and once per group. PostgreSQL's cost is mostly per
// statement and commit, so larger groups cost it less (bench/RESULTS.md, scale-out: with several workers each one's
// groups are small); a lone REGISTER never waits.

export class Gathering {
  /** How long a group waits, in ms. */
  readonly ms: number;
  private readonly after: number;
  private readonly enough: number;
  private waited = false;
  private last = 0;

  /** @param after the size of the previous group that means load @param enough a group this big goes at once */
  constructor(ms: number, after: number, enough: number) {
    this.ms = ms;
    this.after = after;
    this.enough = enough;
  }

  /** True when the group, `size` so far, should wait `ms` before it goes; false once it has waited. */
  wait(size: number): boolean {
    this.waited = !this.waited && this.last >= this.after && size < this.enough;
    return this.waited;
  }

  /** The group that went had `size` members. */
  sent(size: number): void {
    this.last = size;
  }
}
