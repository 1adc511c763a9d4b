// The OpenAPI's device queries, answered from the simulator's state in the platform's answer shapes (the IoT
// Platform API reference pages of each action): QueryDeviceDetail, GetDeviceStatus, BatchGetDeviceState and
// QueryDevicePropertyStatus. RPC lists in JSON keep their XML element names: {"DeviceStatusList": {"DeviceStatus": [...]}}.
import { createHash } from 'node:crypto';
import { Device, deviceKey } from '../nodes/lib/protocol';
import { ActionHandler, ApiParams, business, missing } from './openapi';
import type { Registry } from './registry';
import type { DeviceActivity } from './sessions';

export interface QueryContext {
  registry: Registry;
  activityOf: (device: Device) => DeviceActivity;
  properties: (device: Device) => Record<string, { value: unknown; time: number }>;
  /** The device named by ProductKey and DeviceName, checked as the other actions check it. */
  device: (params: ApiParams) => Device;
  /** The instance check of the other actions. */
  checkInstance: (params: ApiParams) => void;
}

/** BatchGetDeviceState: at most this many devices per call. */
export const BATCH_STATE_MAX = 50;

/** The platform's IotId: 20 characters and a 6-digit suffix; here derived from the device, so it is stable. */
export function iotIdOf(device: Device): string {
  const hash = createHash('sha256').update(deviceKey(device)).digest('base64').replace(/[+/=]/g, '').slice(0, 20);
  return `${hash}000100`;
}

type DeviceStatus = 'ONLINE' | 'OFFLINE' | 'UNACTIVE';

function statusOf(activity: DeviceActivity): DeviceStatus {
  if (activity.online) return 'ONLINE';
  return activity.activatedAt === undefined ? 'UNACTIVE' : 'OFFLINE';
}

/** The platform's GMT fields are China Standard Time, `2018-08-06 10:48:41`; UTC fields ISO 8601. */
function gmt(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms + 8 * 3600_000).toISOString().slice(0, 19).replace('T', ' ');
}

function utc(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/** A thing-model data type for a stored value (the simulator keeps values, not the product's TSL). */
function dataTypeOf(value: unknown): string {
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'double';
  if (typeof value === 'boolean') return 'bool';
  if (Array.isArray(value)) return 'array';
  if (value !== null && typeof value === 'object') return 'struct';
  return 'text';
}

/** How actions name a device: IotId, or ProductKey and DeviceName, as the platform takes them. */
export interface DeviceFinder {
  byIotId: (iotId: string) => Device;
  /** IotId when given (it takes precedence, as on the platform), else ProductKey and DeviceName. */
  target: (params: ApiParams) => Device;
}

export function deviceFinder(context: Pick<QueryContext, 'registry' | 'device' | 'checkInstance'>): DeviceFinder {
  const byIotId = (iotId: string): Device => {
    const found = context.registry.allDevices().find((device) => iotIdOf(device) === iotId);
    if (!found) throw business('iot.device.NotExistedDevice', `The device ${iotId} does not exist.`);
    return found;
  };
  const target = (params: ApiParams): Device => {
    if (params.IotId) {
      context.checkInstance(params);
      return byIotId(params.IotId);
    }
    if (!params.ProductKey && !params.DeviceName) throw missing('IotId');
    return context.device(params);
  };
  return { byIotId, target };
}

/** `Name.1`, `Name.2`, … of a RepeatList, in order. */
export function repeatList(params: ApiParams, name: string): string[] {
  return Object.keys(params)
    .map((key) => new RegExp(`^${name}\\.(\\d+)$`).exec(key))
    .filter((match): match is RegExpExecArray => match !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((match) => params[match[0]]);
}

export function createQueries(context: QueryContext): Record<string, ActionHandler> {
  const { registry, activityOf } = context;
  const started = Date.now();
  const { byIotId, target } = deviceFinder(context);

  return {
    async QueryDeviceDetail(params) {
      const device = target(params);
      const activity = activityOf(device);
      return {
        Data: {
          IotId: iotIdOf(device),
          ProductKey: device.productKey,
          ProductName: device.productKey,
          DeviceName: device.deviceName,
          DeviceSecret: registry.deviceSecret(device.productKey, device.deviceName),
          Status: statusOf(activity),
          NodeType: 0,
          Owner: true,
          Region: params.RegionId,
          GmtCreate: gmt(started),
          UtcCreate: utc(started),
          GmtActive: gmt(activity.activatedAt),
          UtcActive: utc(activity.activatedAt),
          GmtOnline: gmt(activity.lastOnlineAt),
          UtcOnline: utc(activity.lastOnlineAt),
          IpAddress: activity.address,
        },
      };
    },

    async GetDeviceStatus(params) {
      const activity = activityOf(target(params));
      return { Data: { Status: statusOf(activity), Timestamp: activity.changedAt ?? started } };
    },

    async BatchGetDeviceState(params) {
      const iotIds = repeatList(params, 'IotId');
      const names = repeatList(params, 'DeviceName');
      let devices: Device[];
      if (iotIds.length > 0) {
        context.checkInstance(params);
        devices = iotIds.map(byIotId);
      } else {
        if (names.length === 0) throw missing('DeviceName');
        devices = names.map((deviceName) => context.device({ ...params, DeviceName: deviceName }));
      }
      if (devices.length > BATCH_STATE_MAX) {
        throw business('iot.common.InvalidFormattedParameter', `At most ${BATCH_STATE_MAX} devices per call, not ${devices.length}.`);
      }
      return {
        DeviceStatusList: {
          DeviceStatus: devices.map((device) => {
            const activity = activityOf(device);
            return {
              ProductKey: device.productKey,
              DeviceName: device.deviceName,
              IotId: iotIdOf(device),
              DeviceId: iotIdOf(device).slice(0, 20),
              Status: statusOf(activity),
              Timestamp: activity.changedAt ?? started,
              LastOnlineTime: gmt(activity.lastOnlineAt),
              AsAddress: activity.address,
            };
          }),
        },
      };
    },

    async QueryDevicePropertyStatus(params) {
      const device = target(params);
      const properties = Object.entries(context.properties(device));
      return {
        Data: {
          List: {
            PropertyStatusInfo: properties.map(([identifier, { value, time }]) => ({
              Identifier: identifier,
              Name: identifier,
              DataType: dataTypeOf(value),
              Value: typeof value === 'string' ? value : JSON.stringify(value),
              Time: String(time),
            })),
          },
        },
      };
    },
  };
}
