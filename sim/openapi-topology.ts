// The OpenAPI's topology actions, answered from the gateways' topology (sim/gateway.ts), in the platform's answer
// shapes (the API reference pages of GetThingTopo, BatchAddThingTopo and RemoveThingTopo; docs/protocol.md §5).
import { Device, GATEWAY_CODES } from '../nodes/lib/protocol';
import { Gateways, Refusal } from './gateway';
import { ActionHandler, ApiFailure, ApiParams, business, missing } from './openapi';
import { QueryContext, deviceFinder, iotIdOf } from './openapi-queries';

/** GetThingTopo: most sub-devices on one page. */
export const TOPOLOGY_PAGE_MAX = 50;
/** BatchAddThingTopo: most sub-devices per call. */
export const TOPOLOGY_ADD_MAX = 10;

export interface TopologyContext extends Pick<QueryContext, 'registry' | 'device' | 'checkInstance'> {
  gateways: Gateways;
}

/** The API's wording of a device-side refusal (docs/protocol.md §5: these codes are inferred). */
const REFUSALS: Record<number, string> = {
  [GATEWAY_CODES.authError]: 'iot.device.InvalidSign',
  [GATEWAY_CODES.badRequest]: 'iot.common.InvalidFormattedParameter',
  [GATEWAY_CODES.unknownDevice]: 'iot.device.NotSubDevice',
  [GATEWAY_CODES.tooManyTopology]: 'iot.device.TooManySubDevices',
  [GATEWAY_CODES.addSelf]: 'iot.device.InvalidTopoRelation',
  [GATEWAY_CODES.noTopology]: 'iot.device.InvalidTopoRelation',
};

function refused(err: unknown): ApiFailure {
  if (!(err instanceof Refusal)) throw err;
  const device = err.device ? ` for ${err.device.productKey}/${err.device.deviceName}` : '';
  return business(REFUSALS[err.code] ?? 'iot.system.SystemException', `The topological relationship was refused${device} (${err.code}).`);
}

/** `Name.1.Field`, `Name.2.Field`, … of a RepeatList of objects, in order of N. */
function repeatObjects(params: ApiParams, name: string): Array<Record<string, string>> {
  const items = new Map<number, Record<string, string>>();
  for (const [key, value] of Object.entries(params)) {
    const match = new RegExp(`^${name}\\.(\\d+)\\.(\\w+)$`).exec(key);
    if (!match) continue;
    const index = Number(match[1]);
    if (!items.has(index)) items.set(index, {});
    (items.get(index) as Record<string, string>)[match[2]] = value;
  }
  return [...items.entries()].sort(([a], [b]) => a - b).map(([, item]) => item);
}

/** A TopoAddItem as a gateway's topo/add entry: the signed fields keep their device-side names. */
function signedEntry(item: Record<string, string>): Record<string, string> {
  const entry: Record<string, string> = {};
  const fields: Array<[string, string]> = [
    ['ProductKey', 'productKey'],
    ['DeviceName', 'deviceName'],
    ['ClientId', 'clientId'],
    ['Timestamp', 'timestamp'],
    ['Sign', 'sign'],
    ['SignMethod', 'signMethod'],
  ];
  for (const [apiName, deviceName] of fields) if (item[apiName] !== undefined && item[apiName] !== '') entry[deviceName] = item[apiName];
  return entry;
}

function pageParam(params: ApiParams, name: string, max: number): number {
  const text = params[name];
  if (text === undefined || text === '') throw missing(name);
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw business('iot.common.InvalidPageParams', `The parameter ${name} must be an integer from 1 to ${max}.`);
  }
  return value;
}

export function createTopologyActions(context: TopologyContext): Record<string, ActionHandler> {
  const { registry, gateways } = context;
  const { byIotId, target } = deviceFinder(context);

  const gatewayOf = (params: ApiParams): Device => {
    let gateway: Device;
    if (params.GwIotId) {
      context.checkInstance(params);
      gateway = byIotId(params.GwIotId);
    } else {
      if (!params.GwProductKey) throw missing('GwProductKey');
      if (!params.GwDeviceName) throw missing('GwDeviceName');
      gateway = context.device({ ...params, ProductKey: params.GwProductKey, DeviceName: params.GwDeviceName });
    }
    if (registry.nodeType(gateway.productKey) !== 'gateway') {
      throw business('iot.device.NotGatewayDevice', `The device ${gateway.productKey}/${gateway.deviceName} is not a gateway.`);
    }
    return gateway;
  };

  return {
    async GetThingTopo(params) {
      const gateway = target(params);
      const pageNo = pageParam(params, 'PageNo', Number.MAX_SAFE_INTEGER);
      const pageSize = pageParam(params, 'PageSize', TOPOLOGY_PAGE_MAX);
      const all = gateways.topologyOf(gateway);
      const page = all.slice((pageNo - 1) * pageSize, pageNo * pageSize);
      return {
        Data: {
          Total: all.length,
          PageSize: pageSize,
          PageCount: Math.ceil(all.length / pageSize),
          CurrentPage: pageNo,
          List: {
            deviceInfo: page.map((device) => ({ ProductKey: device.productKey, DeviceName: device.deviceName, IotId: iotIdOf(device) })),
          },
        },
      };
    },

    async BatchAddThingTopo(params) {
      const gateway = gatewayOf(params);
      const items = repeatObjects(params, 'TopoAddItem');
      if (items.length === 0) throw missing('TopoAddItem');
      if (items.length > TOPOLOGY_ADD_MAX) {
        throw business('iot.common.InvalidFormattedParameter', `At most ${TOPOLOGY_ADD_MAX} sub-devices per call, not ${items.length}.`);
      }
      const entries = items.map((item) => {
        if (!item.ProductKey) throw missing('TopoAddItem.N.ProductKey');
        if (!item.DeviceName) throw missing('TopoAddItem.N.DeviceName');
        if (!item.Sign) throw missing('TopoAddItem.N.Sign');
        if (!item.SignMethod) throw missing('TopoAddItem.N.SignMethod');
        context.device({ ...params, ProductKey: item.ProductKey, DeviceName: item.DeviceName });
        return signedEntry(item);
      });
      try {
        gateways.apiAdd(gateway, entries);
      } catch (err) {
        throw refused(err);
      }
      return {};
    },

    async RemoveThingTopo(params) {
      return { Data: gateways.apiRemove(target(params)) };
    },
  };
}
