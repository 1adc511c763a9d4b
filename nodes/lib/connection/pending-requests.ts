// Matching answers to requests by id: the thing-model posts of a device, the simulator's calls to devices.

/** The counter's start for a time: the time of day, so that a restart on the same day does not reuse ids. */
function firstId(now: number): number {
  return (now % 86_400_000) * 40;
}

/** The process's one sequence, which every AlinkIds without a start of its own draws from. */
let processIds: { next: number } | undefined;

/**
 * Alink ids: digit strings within 0..2^32-1. Generators share one sequence in the process, so that two made in the
 * same millisecond (a post client's and its connection's history posts) never hand out the same id; the sequence
 * starts from the time of day so that a restarted process does not reuse the ids of the one before it on the same day.
 * `now`: a sequence of its own, from that time.
 */
export class AlinkIds {
  private readonly counter: { next: number };

  constructor(now?: number) {
    this.counter = now === undefined ? (processIds ??= { next: firstId(Date.now()) }) : { next: firstId(now) };
  }

  take(): string {
    const id = this.counter.next;
    this.counter.next = (id + 1) % 4_294_967_296;
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
