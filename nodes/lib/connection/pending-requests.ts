// Matching answers to requests by id: the thing-model posts of a device, the simulator's calls to devices.

/**
 * Alink ids: digit strings within 0..2^32-1, unique per connection. The counter starts from the time of day so that
 * a restarted connection does not reuse the ids of the one before it on the same day.
 */
export class AlinkIds {
  private next: number;

  constructor(now = Date.now()) {
    this.next = (now % 86_400_000) * 40;
  }

  take(): string {
    const id = this.next;
    this.next = (this.next + 1) % 4_294_967_296;
    return String(id);
  }
}

/** Requests waiting for their answer, keyed by the exact id string; each settles once, by answer or timeout. */
export class PendingRequests<T> {
  private readonly waiting = new Map<string, { timer: NodeJS.Timeout; settle: (error: Error | undefined, value?: T) => void }>();

  get size(): number {
    return this.waiting.size;
  }

  has(id: string): boolean {
    return this.waiting.has(id);
  }

  add(id: string, timeoutMs: number, settle: (error: Error | undefined, value?: T) => void, timeoutError: () => Error): void {
    if (this.waiting.has(id)) throw new Error(`request id ${id} is already waiting`);
    const timer = setTimeout(() => {
      this.waiting.delete(id);
      settle(timeoutError());
    }, timeoutMs);
    this.waiting.set(id, { timer, settle });
  }

  /** False when nothing waits for this id (an answer after its timeout, or not ours). */
  resolve(id: string, value: T): boolean {
    return this.finish(id, undefined, value);
  }

  reject(id: string, error: Error): boolean {
    return this.finish(id, error);
  }

  rejectAll(error: () => Error): void {
    for (const id of [...this.waiting.keys()]) this.finish(id, error());
  }

  private finish(id: string, error: Error | undefined, value?: T): boolean {
    const entry = this.waiting.get(id);
    if (!entry) return false;
    clearTimeout(entry.timer);
    this.waiting.delete(id);
    entry.settle(error, value);
    return true;
  }
}
