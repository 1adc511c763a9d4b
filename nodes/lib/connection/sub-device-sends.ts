// What a gateway's connection sends for its sub-devices: the queue's gate (a sub-device's messages wait for its
// login; after a restart, stored messages of sub-devices nothing has taken yet wait a while for something to), and
// the messages kept for one more try after the platform refused them with 520.
import { LogMessage } from '../errors';
import { Device, deviceKey, parseAlink } from '../protocol/alink';
import { deviceOfAnyTopic } from '../protocol/gateway';
import { isOwnPublishTopic } from '../protocol/topics';
import type { DeviceConnection } from './device-connection';
import type { QueuedPublish } from './offline-queue';
import type { SubDeviceState } from './sub-device-manager';
import type { PublishOptions } from './types';

/** A sub-device message that left, kept by its Alink id. */
export interface SentMessage {
  device: Device;
  topic: string;
  payload: string | Buffer;
  options: PublishOptions;
}

/** Messages kept by Alink id so that one refused with 520 can go once more after the re-login. */
const RESEND_MEMORY = 10_000;
const CLAIM_WAIT_MS = 30_000;

function sentKey(device: Device, id: string): string {
  return `${deviceKey(device)}/${id}`;
}

export class SubDeviceSends {
  private readonly sent = new Map<string, SentMessage & { resent: boolean }>();
  /** Queued messages of sub-devices nothing took: not seen yet, waiting from the first the gate saw, or free to go. */
  private claimWait: 'not-started' | 'waiting' | 'over' = 'not-started';
  /** Sub-devices whose stored messages went out untaken, warned of once each. */
  private readonly unclaimed = new Set<string>();
  /** Sub-devices whose last user went: what they left queued goes without waiting. */
  private readonly releasedKeys = new Set<string>();

  /** `stateOf(key)`: the state of a sub-device the manager keeps, undefined for one it does not. */
  constructor(
    private readonly connection: DeviceConnection,
    private readonly gateway: Device,
    private readonly stateOf: (key: string) => SubDeviceState | undefined,
    private readonly claimWaitMs = CLAIM_WAIT_MS,
  ) {
    connection.addSendGate((topic) => this.maySend(topic));
    connection.addSendListener((message) => this.remember(message));
  }

  /** A sub-device the manager no longer keeps (one it keeps again is asked about by its state first). */
  release(key: string): void {
    this.releasedKeys.add(key);
  }

  /** The message of `device` with Alink id `id` that left, the first time a 520 refuses it; then undefined. */
  takeRefused(device: Device, id: string): SentMessage | undefined {
    const sent = this.sent.get(sentKey(device, id));
    if (!sent || sent.resent) return undefined;
    sent.resent = true;
    return sent;
  }

  /**
   * Whether a queued message may leave now: one of a kept sub-device waits (and the queue behind it, to keep the
   * order) until the sub-device is online again, or refused (then the platform's answer settles it). One of a
   * sub-device nothing has taken waits until the claim wait is over (it starts with the first such message, the
   * gates being asked only while connected), then leaves with a warning.
   */
  private maySend(topic: string): boolean {
    const device = deviceOfAnyTopic(topic);
    if (!device) return true;
    const key = deviceKey(device);
    if (key === deviceKey(this.gateway)) return true;
    const state = this.stateOf(key);
    if (state !== undefined) return state === 'online' || state === 'refused';
    if (this.releasedKeys.has(key)) return true;
    if (this.claimWait === 'not-started') {
      this.claimWait = 'waiting';
      // The timer alone ends the wait: a deadline read from the clock could still be ahead when it fires.
      setTimeout(() => {
        this.claimWait = 'over';
        this.connection.flush();
      }, this.claimWaitMs).unref();
    }
    if (this.claimWait === 'waiting') return false;
    if (!this.unclaimed.has(key)) {
      this.unclaimed.add(key);
      this.connection.log.warn(
        new LogMessage('SUBDEVICE_STORED_UNCLAIMED', { device: key, seconds: String(Math.round(this.claimWaitMs / 1000)) }),
      );
    }
    return true;
  }

  /** A message of a kept sub-device leaves (at once or from the store): kept for a second try after a 520. */
  private remember(message: Readonly<QueuedPublish>): void {
    const device = deviceOfAnyTopic(message.topic);
    if (!device || this.stateOf(deviceKey(device)) === undefined || !isOwnPublishTopic(message.topic, device.productKey, device.deviceName))
      return;
    const id = parseAlink(message.payload)?.id;
    if (typeof id !== 'string' && typeof id !== 'number') return;
    const key = sentKey(device, String(id));
    if (this.sent.get(key)?.resent) return;
    if (this.sent.size >= RESEND_MEMORY) this.sent.delete(this.sent.keys().next().value as string);
    const { topic, payload, qos, retain } = message;
    this.sent.set(key, { device, topic, payload, options: { qos, retain }, resent: false });
  }
}
