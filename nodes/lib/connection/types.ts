// What the node layer and the two kinds of connection (a device's MQTT connection, a cloud application's AMQP link
// and OpenAPI) agree on.
import type { AliyunIotError, LogMessage, StatusCode } from '../errors';
import type { Qos } from '../protocol/topics';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'refused' | 'kicked' | 'closed';

/**
 * What user nodes show. `reason` is a key under `status` in the connection node's catalog, `returnCode` the CONNACK
 * code of a refused login.
 */
export interface ConnectionStatus {
  state: ConnectionState;
  reason: StatusCode;
  returnCode?: number;
  /** Messages waiting in the connection's queue (or stored and not yet acknowledged), when there are any. */
  queued?: number;
  /** Why the disk queue could not store the last message, until it stores one again. */
  storeProblem?: 'store-disk-full' | 'store-unwritable' | 'store-io';
}

export interface ConnectionUser {
  onStatus(status: ConnectionStatus): void;
  /** ApsaraMQ's notices about the connection's token ($SYS/tokenExpireNotice, $SYS/tokenInvalidNotice). */
  onNotice?(notice: ConnectionNotice): void;
}

export interface ConnectionNotice {
  kind: 'token-expiring' | 'token-invalid';
  /** The connection, as in logs. */
  target: string;
  topic: string;
  payload: unknown;
}

/** What comes with a message besides topic and payload; a cloud application also learns the device and message id. */
export interface MessageMeta {
  qos: number;
  retain: boolean;
  device?: { productKey?: string; deviceName?: string; messageId: string };
}

export interface MessageReceiver {
  onMessage(topic: string, payload: Buffer, meta: MessageMeta): void;
  onSubscribeError(filter: string, error: AliyunIotError): void;
}

/** Where a connection logs: lines are catalog messages, so the node layer can give them in the user's language. */
export interface ConnectionLogger {
  debug(message: LogMessage): void;
  info(message: LogMessage): void;
  warn(message: LogMessage): void;
  error(message: LogMessage): void;
}

export type PublishCallback = (error?: Error) => void;

export interface PublishOptions {
  qos?: unknown;
  retain?: boolean;
  /** How long the message may wait in the offline queue; default the connection's queueTimeoutMs (0: no limit). */
  queueTimeoutMs?: number;
  /**
   * A request about the session itself (a gateway's logins and topology): with a disk queue it is never stored, but
   * sent at once ahead of what is stored, or failed with DISCONNECTED while the connection is down.
   */
  control?: boolean;
}

export type ConnectionMode = 'iot' | 'mq' | 'cloud';

/** What the in and out nodes need of a config node's connection, device (MQTT) or cloud application alike. */
export interface SharedConnection {
  readonly mode: ConnectionMode;
  readonly status: ConnectionStatus;
  readonly log: ConnectionLogger;
  register(user: ConnectionUser): void;
  deregister(user: ConnectionUser, removed: boolean): void;
  expandTopic(topic: string): string;
  checkSubscriptions(requests: Array<{ topic: string; qos?: unknown }>): string[];
  subscribe(receiver: MessageReceiver, filterTemplate: string, qos?: unknown): string;
  unsubscribe(receiver: MessageReceiver, filterTemplate: string, removed?: boolean): void;
  unsubscribeAll(receiver: MessageReceiver, removed?: boolean): void;
  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }>;
  publish(topicTemplate: unknown, value: unknown, options: PublishOptions, callback: PublishCallback): void;
  connect(): void;
  disconnect(callback?: () => void): void;
  close(callback?: () => void): void;
}
