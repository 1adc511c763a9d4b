// Who is logged in as what, and which IoT devices are online: the one record of it in the simulator.
import type { Client } from 'aedes';
import { Device, deviceKey } from '../nodes/lib/protocol';
import type { IotSession, Session } from './registry';

/**
 * The platform keeps one session per device, whatever timestamp its signed client id carries: a persistent IoT
 * session is known to the broker by its username, `${deviceName}&${productKey}`.
 */
function persistentSessionKey(username: string | undefined): string | undefined {
  return username && /^[^&|]+&[^&|]+$/.test(username) ? `iot-session:${username}` : undefined;
}

/** What the platform knows of a device's connections, for the OpenAPI's status queries (ms since the epoch). */
export interface DeviceActivity {
  online: boolean;
  /** The first login ever: a device without one is not activated (UNACTIVE). */
  activatedAt?: number;
  lastOnlineAt?: number;
  /** When it last went online or offline. */
  changedAt?: number;
  /** The address of its latest connection. */
  address?: string;
}

export class Sessions {
  private readonly byClient = new WeakMap<Client, Session>();
  private readonly activity = new Map<string, Omit<DeviceActivity, 'online'>>();
  /** The live connection of each IoT device: a newer login knocks the older one off. */
  private readonly deviceClients = new Map<string, Client>();
  /** The client id each client sent, where the broker knows it by its session key instead (see persistentSessionKey). */
  private readonly sentClientIds = new WeakMap<Client, string>();

  /** Before the broker sees a CONNECT: a persistent IoT session gets its session key as client id; returns that key. */
  keyPersistentSession(client: Client, sentClientId: string, username: string | undefined): string | undefined {
    const key = persistentSessionKey(username);
    if (key) this.sentClientIds.set(client, sentClientId);
    return key;
  }

  /** The client id as the client sent it. */
  clientIdOf(client: Client): string {
    return this.sentClientIds.get(client) ?? client.id;
  }

  sessionOf(client: Client): Session | undefined {
    return this.byClient.get(client);
  }

  /**
   * A login succeeded. One connection per device: a new IoT login knocks the older one off, before the broker takes
   * over its session; `knockingOff` hears of it just before.
   */
  loggedIn(client: Client, session: Session, knockingOff: (previous: Client, device: string) => void): void {
    this.byClient.set(client, session);
    if (session.kind !== 'iot') return;
    const key = deviceKey(session);
    const previous = this.deviceClients.get(key);
    if (previous && previous !== client && !previous.closed) {
      knockingOff(previous, key);
      this.deviceClients.delete(key);
      previous.close();
    }
  }

  /** The broker took the client over: an IoT device is online from now on. */
  ready(client: Client): Session | undefined {
    const session = this.byClient.get(client);
    if (session?.kind === 'iot') {
      const key = deviceKey(session);
      this.deviceClients.set(key, client);
      const now = Date.now();
      const address = (client.conn as { remoteAddress?: string } | undefined)?.remoteAddress;
      this.activity.set(key, { activatedAt: this.activity.get(key)?.activatedAt ?? now, lastOnlineAt: now, changedAt: now, address });
    }
    return session;
  }

  disconnected(client: Client): void {
    const session = this.byClient.get(client);
    if (session?.kind !== 'iot') return;
    const key = deviceKey(session);
    if (this.deviceClients.get(key) !== client) return;
    this.deviceClients.delete(key);
    const record = this.activity.get(key);
    if (record) record.changedAt = Date.now();
  }

  activityOf(device: Device): DeviceActivity {
    return { online: this.deviceClients.has(deviceKey(device)), ...this.activity.get(deviceKey(device)) };
  }

  /** The session of the device's live connection, if it has one. */
  online(device: Device): IotSession | undefined {
    const client = this.deviceClients.get(deviceKey(device));
    const session = client ? this.byClient.get(client) : undefined;
    return session?.kind === 'iot' ? session : undefined;
  }

  /** The device's live connection. */
  clientOf(device: Device): Client | undefined {
    return this.deviceClients.get(deviceKey(device));
  }

  /** The client id the device's live connection sent. */
  onlineClientId(device: Device): string | undefined {
    const client = this.deviceClients.get(deviceKey(device));
    return client && this.clientIdOf(client);
  }

  /** Devices with a live connection, as `${productKey}/${deviceName}`. */
  onlineDevices(): string[] {
    return [...this.deviceClients.keys()];
  }

  /** The simulator stopped: no device is online. Sessions and sent client ids stay with their clients. */
  clearOnline(): void {
    this.deviceClients.clear();
  }
}
