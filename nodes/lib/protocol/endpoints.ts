// Where each service listens (docs/protocol.md §1, §4, §5), derived from the identifiers or given explicitly.
import { isIPv6 } from 'node:net';
import { AliyunIotError } from '../errors';
import { Protocol, isProtocol, requireMatch, validateInstanceId, validateProductKey, validateRegion } from './identifiers';
import { DEFAULTS, RANGES } from './limits';

export interface Endpoint {
  protocol: Protocol;
  host: string;
  port: number;
  /** WebSocket path; undefined for TCP and TLS. */
  path?: string;
}

const WEBSOCKET_PATH = '/mqtt';

// TLS on 1883 presents a GlobalSign R1 chain, which Node trusts; 8883 presents Alibaba Cloud's own IoT root, which
// must be given as an extra CA (docs/protocol.md §1).
const IOT_DEFAULT_PORTS: Record<Protocol, number> = { mqtts: 1883, mqtt: 1883, wss: 443, ws: 443 };
const MQ_DEFAULT_PORTS: Record<Protocol, number> = { mqtts: 8883, mqtt: 1883, wss: 443, ws: 80 };
export const AMQP_PORTS = Object.freeze({ amqps: 5671, amqp: 5672 });
export const API_PORTS = Object.freeze({ https: 443, http: 80 });

export function isTlsProtocol(protocol: Protocol): boolean {
  return protocol === 'mqtts' || protocol === 'wss';
}

export function isWebSocketProtocol(protocol: Protocol): boolean {
  return protocol === 'ws' || protocol === 'wss';
}

/** securemode of the IoT Platform's client id: 2 over TLS, 3 over plain TCP. */
export function securemodeFor(protocol: Protocol): 2 | 3 {
  return isTlsProtocol(protocol) ? 2 : 3;
}

/** A host as it goes into a URL: an IPv6 address in brackets. */
export function hostForUrl(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

/** A host as the user may give it, `[::1]` or `::1`: without the brackets, as sockets and TLS take it. */
function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') && isIPv6(host.slice(1, -1)) ? host.slice(1, -1) : host;
}

export function endpointUrl(endpoint: Endpoint): string {
  return `${endpoint.protocol}://${hostForUrl(endpoint.host)}:${endpoint.port}${endpoint.path ?? ''}`;
}

export function checkPort(port: number | undefined): void {
  if (port !== undefined && !(Number.isInteger(port) && port >= RANGES.port.min && port <= RANGES.port.max)) {
    throw new AliyunIotError('PORT_INVALID', { value: String(port) });
  }
}

function endpointFor(protocol: Protocol, host: string, port: number | undefined, defaults: Record<Protocol, number>): Endpoint {
  if (!isProtocol(protocol)) throw new AliyunIotError('PROTOCOL_INVALID', { value: String(protocol) });
  checkPort(port);
  const endpoint: Endpoint = { protocol, host: bareHost(host), port: port ?? defaults[protocol] };
  if (isWebSocketProtocol(protocol)) endpoint.path = WEBSOCKET_PATH;
  return endpoint;
}

export interface IotEndpointOptions {
  productKey: string;
  protocol: Protocol;
  region?: string;
  instanceId?: string;
  host?: string;
  port?: number;
}

/** Old public instance by region, new and Enterprise instances by instance id, or an explicit host. */
export function iotEndpoint(options: IotEndpointOptions): Endpoint {
  let host = options.host;
  if (!host) {
    if (options.instanceId) {
      host = `${validateInstanceId(options.instanceId)}.mqtt.iothub.aliyuncs.com`;
    } else {
      const region = validateRegion(options.region || DEFAULTS.region);
      host = `${validateProductKey(options.productKey)}.iot-as-mqtt.${region}.aliyuncs.com`;
    }
  }
  return endpointFor(options.protocol, host, options.port, IOT_DEFAULT_PORTS);
}

export interface MqEndpointOptions {
  instanceId: string;
  protocol: Protocol;
  host?: string;
  port?: number;
}

export function mqEndpoint(options: MqEndpointOptions): Endpoint {
  const host = options.host || `${validateInstanceId(options.instanceId)}.mqtt.aliyuncs.com`;
  return endpointFor(options.protocol, host, options.port, MQ_DEFAULT_PORTS);
}

export interface AmqpEndpoint {
  tls: boolean;
  host: string;
  port: number;
}

export function amqpEndpointUrl(amqp: AmqpEndpoint): string {
  return `${amqp.tls ? 'amqps' : 'amqp'}://${hostForUrl(amqp.host)}:${amqp.port}`;
}

/** The server-side subscription's host: by instance id (new instances) or by account id and region (old public). */
export function amqpEndpoint(options: { iotInstanceId?: string; uid?: string; regionId: string }): AmqpEndpoint {
  if (options.iotInstanceId) return { tls: true, host: `${options.iotInstanceId}.amqp.iothub.aliyuncs.com`, port: AMQP_PORTS.amqps };
  const uid = requireMatch(options.uid, 'uid', 'UID_INVALID', 'uid');
  return { tls: true, host: `${uid}.iot-amqp.${options.regionId}.aliyuncs.com`, port: AMQP_PORTS.amqps };
}

/** `amqps://host:port` or `amqp://host:port`, as the user may give it instead of the derived endpoint. */
export function parseAmqpEndpoint(text: string, field: string): AmqpEndpoint {
  const parsed = parseEndpointUrl(text, field, AMQP_PORTS);
  return { tls: parsed.protocol === 'amqps', host: parsed.host, port: parsed.port };
}

export function openApiEndpoint(regionId: string): string {
  return `https://iot.${regionId}.aliyuncs.com`;
}

/** Checks an OpenAPI endpoint URL the user gave (https or http). */
export function checkApiEndpoint(text: string, field: string): string {
  parseEndpointUrl(text, field, API_PORTS);
  return text;
}

function parseEndpointUrl(
  text: string,
  field: string,
  protocols: Readonly<Record<string, number>>,
): { protocol: string; host: string; port: number } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AliyunIotError('ENDPOINT_INVALID', { field, value: text });
  }
  const protocol = url.protocol.replace(/:$/, '');
  if (!(protocol in protocols) || url.hostname === '') throw new AliyunIotError('ENDPOINT_INVALID', { field, value: text });
  return { protocol, host: bareHost(url.hostname), port: url.port ? Number(url.port) : protocols[protocol] };
}
