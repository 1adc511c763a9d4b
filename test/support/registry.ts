// The simulator registries the tests run against: the test registry, its cloud-application variant, and the demo
// registry that ships with the package. Tests that need more devices or keys extend the test registry here.
import * as path from 'node:path';
import { SimulatorConfig, loadConfigFile } from '../../sim';
import { REPO_ROOT } from './paths';

export const PK = 'a1B2c3D4e5F';
export const MQ_INSTANCE = 'post-cn-test';
export const FAR_FUTURE = 4102444800000;

export function deviceSecret(deviceName: string): string {
  return deviceName === 'dev01' ? 'secret123' : `secret-${deviceName}`;
}

export const SIM_CONFIG: SimulatorConfig = {
  products: [
    {
      productKey: PK,
      topics: [
        { topic: '/${productKey}/${deviceName}/user/get', access: 'sub' },
        { topic: '/${productKey}/${deviceName}/user/update', access: 'pub' },
        { topic: '/${productKey}/${deviceName}/user/echo', access: 'all' },
        { topic: '/${productKey}/${deviceName}/user/data/#', access: 'all' },
        { topic: '/${productKey}/${deviceName}/user/fanout', access: 'pub' },
        { topic: '/${productKey}/+/user/fanout', access: 'sub' },
      ],
      devices: ['dev01', 'dev02', 'dev03', 'dev04', 'dev05', 'dev06', 'dev07', 'dev08', 'dev09'].map((deviceName) => ({
        deviceName,
        deviceSecret: deviceSecret(deviceName),
      })),
    },
  ],
  mq: [
    {
      instanceId: MQ_INSTANCE,
      accessKeys: [{ accessKeyId: 'AK', accessKeySecret: 'SK' }],
      groups: ['GID_test'],
      parentTopics: ['parent'],
      tokens: [
        { accessKeyId: 'AK', token: 'tok1', actions: 'RW', resources: ['parent/#'], expireTime: FAR_FUTURE },
        { accessKeyId: 'AK', token: 'tokExpired', actions: 'RW', resources: ['parent/#'], expireTime: 1000 },
      ],
      deviceCredentials: [{ clientId: 'GID_test@@@dev02', deviceAccessKeyId: 'DC.1', deviceAccessKeySecret: 'dsk' }],
    },
  ],
};

type Product = NonNullable<SimulatorConfig['products']>[number];
type MqInstance = NonNullable<SimulatorConfig['mq']>[number];

/** What a test adds to (or, for `mqTokens`, puts instead of) the test registry's entries. */
export interface RegistryExtras {
  devices?: Product['devices'];
  mqAccessKeys?: MqInstance['accessKeys'];
  mqTokens?: MqInstance['tokens'];
  /** Replace the instance's tokens instead of adding to them. */
  replaceTokens?: boolean;
  mqDeviceCredentials?: MqInstance['deviceCredentials'];
}

/** The test registry with more devices, AccessKeys, tokens or device credentials. */
export function testRegistry(extras: RegistryExtras = {}): SimulatorConfig {
  const product = (SIM_CONFIG.products ?? [])[0];
  const mq = (SIM_CONFIG.mq ?? [])[0];
  return {
    ...SIM_CONFIG,
    products: [{ ...product, devices: [...product.devices, ...(extras.devices ?? [])] }],
    mq: [
      {
        ...mq,
        accessKeys: [...(mq.accessKeys ?? []), ...(extras.mqAccessKeys ?? [])],
        tokens: [...(extras.replaceTokens ? [] : (mq.tokens ?? [])), ...(extras.mqTokens ?? [])],
        deviceCredentials: [...(mq.deviceCredentials ?? []), ...(extras.mqDeviceCredentials ?? [])],
      },
    ],
  };
}

export const AK_ID = 'LTAI_test_ak';
export const AK_SECRET = 'test_secret_0123456789';
export const GROUP = 'GROUP_A';
export const SYNC_TIMEOUT_MS = 1000;

/** The test registry with a `cloud` section (AMQP server-side subscription, OpenAPI) and a synchronous service. */
export const CLOUD_CONFIG: SimulatorConfig = {
  ...SIM_CONFIG,
  products: (SIM_CONFIG.products ?? []).map((product) => ({ ...product, syncServices: ['getStatus'] })),
  cloud: {
    uid: '1234567890',
    accessKeys: [{ accessKeyId: AK_ID, accessKeySecret: AK_SECRET }],
    consumerGroups: [GROUP, 'GROUP_B'],
    syncTimeoutMs: SYNC_TIMEOUT_MS,
  },
};

/** The registry `npm start` and the examples use (sim/demo-registry.json). */
export const DEMO_REGISTRY_FILE = path.join(REPO_ROOT, 'sim', 'demo-registry.json');

export function demoRegistry(): SimulatorConfig {
  return loadConfigFile(DEMO_REGISTRY_FILE);
}
