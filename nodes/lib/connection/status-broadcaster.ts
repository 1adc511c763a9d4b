// The users of a connection and what they are told: its status and ApsaraMQ's token notices. A user that throws does
// not keep the others from hearing.
import { LogMessage } from '../errors';
import type { ConnectionLogger, ConnectionNotice, ConnectionStatus, ConnectionUser } from './types';

export class StatusBroadcaster {
  private readonly users = new Set<ConnectionUser>();
  private current: ConnectionStatus;

  constructor(
    initial: ConnectionStatus,
    private readonly log: ConnectionLogger,
  ) {
    this.current = initial;
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  get size(): number {
    return this.users.size;
  }

  /** Adds a user and tells it the status at once. */
  add(user: ConnectionUser): void {
    this.users.add(user);
    this.tell(() => user.onStatus(this.current));
  }

  delete(user: ConnectionUser): void {
    this.users.delete(user);
  }

  clear(): void {
    this.users.clear();
  }

  set(status: ConnectionStatus): void {
    this.current = status;
    for (const user of [...this.users]) this.tell(() => user.onStatus(status));
  }

  notice(notice: ConnectionNotice): void {
    for (const user of [...this.users]) this.tell(() => user.onNotice?.(notice));
  }

  private tell(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.log.error(new LogMessage('STATUS_FAILED', { reason: (err as Error).message }));
    }
  }
}
