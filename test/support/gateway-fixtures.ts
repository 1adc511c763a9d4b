// A registry with a gateway product and a sub-device product, and a raw mqtt.js gateway that speaks the topology
// and session protocol: for the simulator's tests and the library's.
import mqtt, { MqttClient } from 'mqtt';
import { AlinkObject, Device, GatewayAnswer, SubDeviceCredentials, readGatewayAnswer, signIotLogin } from '../../nodes/lib/protocol';
import { Simulator, SimulatorConfig, SimulatorOptions, startSimulator } from '../../sim';

export const GW_PK = 'a1GateWay01';
export const SUB_PK = 'a1SubDev001';
export const DIRECT_PK = 'a1Direct001';

export function subSecret(deviceName: string): string {
  return `sub-secret-${deviceName}`;
}

export function subName(index: number): string {
  return `sub${String(index).padStart(4, '0')}`;
}

/** A sub-device created in the registry without a secret, which `thing/sub/register` hands out. */
export function freshName(index: number): string {
  return `fresh-${String(index).padStart(4, '0')}`;
}

export function subDevice(index: number, extra: Partial<SubDeviceCredentials> = {}): SubDeviceCredentials {
  const deviceName = subName(index);
  return { productKey: SUB_PK, deviceName, deviceSecret: subSecret(deviceName), ...extra };
}

export const GATEWAY_CONFIG: SimulatorConfig = {
  products: [
    {
      productKey: GW_PK,
      nodeType: 'gateway',
      devices: ['gw01', 'gw02'].map((deviceName) => ({ deviceName, deviceSecret: `gw-secret-${deviceName}` })),
    },
    {
      productKey: SUB_PK,
      nodeType: 'sub-device',
      dynamicRegistration: true,
      topics: [
        { topic: '/${productKey}/${deviceName}/user/get', access: 'sub' },
        { topic: '/${productKey}/${deviceName}/user/update', access: 'pub' },
      ],
      syncServices: ['getStatus'],
      devices: [
        ...Array.from({ length: 1100 }, (_, index) => ({ deviceName: subName(index + 1), deviceSecret: subSecret(subName(index + 1)) })),
        // Created without a secret (the simulator makes one), for register to hand out.
        ...Array.from({ length: 40 }, (_, index) => ({ deviceName: freshName(index + 1) })),
      ],
    },
    { productKey: DIRECT_PK, devices: [{ deviceName: 'direct01', deviceSecret: 'direct-secret' }] },
  ],
};

export function startGatewaySimulator(extra: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  return startSimulator({ ...GATEWAY_CONFIG, port: 0, adminPort: 0, ...extra });
}

export const GW01: Device = { productKey: GW_PK, deviceName: 'gw01' };
export const GW02: Device = { productKey: GW_PK, deviceName: 'gw02' };

/** A gateway as a raw mqtt.js client: publishes requests and waits for their replies by id. */
export class RawGateway {
  private nextId = 1;
  readonly messages: Array<{ topic: string; payload: string }> = [];

  private constructor(
    readonly client: MqttClient,
    readonly device: Device,
  ) {
    client.on('message', (topic, payload) => this.messages.push({ topic, payload: payload.toString() }));
  }

  static connect(sim: Simulator, device: Device, announce: Record<string, string> = { _ss: '1' }): Promise<RawGateway> {
    const login = signIotLogin({ ...device, deviceSecret: `gw-secret-${device.deviceName}` }, { securemode: 3, extra: announce });
    return new Promise((resolve, reject) => {
      const client = mqtt.connect({ host: '127.0.0.1', port: sim.port, protocol: 'mqtt', reconnectPeriod: 0, ...login });
      client.once('connect', () => {
        const gateway = new RawGateway(client, device);
        client.subscribe(
          [
            `/sys/${device.productKey}/${device.deviceName}/thing/#`,
            `/ext/session/${device.productKey}/${device.deviceName}/#`,
            `/ext/error/${device.productKey}/${device.deviceName}`,
          ],
          { qos: 0 },
          (err) => (err ? reject(err) : resolve(gateway)),
        );
      });
      client.once('error', reject);
    });
  }

  id(): string {
    return String(this.nextId++);
  }

  /** The payload of the next message on `topic` (already arrived or still to come) that `accept` takes. */
  async next(topic: string | RegExp, accept: (payload: string) => boolean = () => true, timeoutMs = 3000): Promise<string> {
    return (await this.nextMessage(topic, accept, timeoutMs)).payload;
  }

  nextMessage(
    topic: string | RegExp,
    accept: (payload: string) => boolean = () => true,
    timeoutMs = 3000,
  ): Promise<{ topic: string; payload: string }> {
    const wanted = (entry: { topic: string; payload: string }): boolean =>
      (typeof topic === 'string' ? entry.topic === topic : topic.test(entry.topic)) && accept(entry.payload);
    const take = (): { topic: string; payload: string } | undefined => {
      const found = this.messages.findIndex(wanted);
      return found >= 0 ? this.messages.splice(found, 1)[0] : undefined;
    };
    const already = take();
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('message', listener);
        reject(new Error(`nothing on ${String(topic)} within ${timeoutMs} ms`));
      }, timeoutMs);
      // Runs after the constructor's listener has stored the message.
      const listener = (): void => {
        const found = take();
        if (!found) return;
        clearTimeout(timer);
        this.client.off('message', listener);
        resolve(found);
      };
      this.client.on('message', listener);
    });
  }

  /** Publishes `{topic, payload}` and resolves with the reply on `${topic}_reply` of the same id. */
  async request(request: { topic: string; payload: string }): Promise<GatewayAnswer> {
    const id = (JSON.parse(request.payload) as AlinkObject).id;
    const reply = this.next(`${request.topic}_reply`, (payload) => (JSON.parse(payload) as AlinkObject).id === id);
    this.client.publish(request.topic, request.payload, { qos: 0 });
    return readGatewayAnswer(await reply) as GatewayAnswer;
  }

  publish(topic: string, payload: unknown, qos: 0 | 1 = 0): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.publish(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }

  /** Resolves with the SUBACK's return code. */
  subscribe(filter: string): Promise<number> {
    return new Promise((resolve, reject) =>
      this.client.subscribe(filter, { qos: 1 }, (err, _granted, suback) => (suback ? resolve(suback.granted[0] as number) : reject(err))),
    );
  }

  end(): Promise<void> {
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()));
  }
}
