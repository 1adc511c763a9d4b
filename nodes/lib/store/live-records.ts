// The sizes of the records a log holds, by sequence number: appends come in rising order, acknowledgements in any.
// An array from the oldest held record on; acknowledged slots are -1 until the oldest moves past them.

const GONE = -1;

export class LiveRecords {
  private sizes: number[] = [];
  private head = 0;
  /** The sequence number of sizes[0]. */
  private base = 0;
  private held = 0;
  private heldBytes = 0;

  get count(): number {
    return this.held;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** The oldest sequence number held, if any. */
  get oldest(): number | undefined {
    return this.held === 0 ? undefined : this.base + this.head;
  }

  /** Adds a record; `seq` is above every one added before. */
  add(seq: number, bytes: number): void {
    if (this.head === this.sizes.length) {
      this.sizes = [];
      this.head = 0;
      this.base = seq;
    }
    while (this.base + this.sizes.length < seq) this.sizes.push(GONE);
    this.sizes.push(bytes);
    this.held++;
    this.heldBytes += bytes;
  }

  /** Removes a record; false when it is not held. */
  remove(seq: number): boolean {
    const index = seq - this.base;
    if (index < this.head || index >= this.sizes.length || this.sizes[index] === GONE) return false;
    this.heldBytes -= this.sizes[index];
    this.sizes[index] = GONE;
    this.held--;
    while (this.head < this.sizes.length && this.sizes[this.head] === GONE) this.head++;
    if (this.head > 4096 && this.head * 2 > this.sizes.length) {
      this.sizes = this.sizes.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
    return true;
  }
}
