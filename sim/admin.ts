// The simulator's admin HTTP API (JSON, loopback only): what a backend would do with the OpenAPI, without signing.
import * as http from 'node:http';
import { Device, PROPERTY_LIMITS, matches } from '../nodes/lib/protocol';
import type { Gateways } from './gateway';
import { SimulatedPlatform, MAX_SYNC_TIMEOUT_MS, RrpcResult, checkProperties } from './platform';
import type { Registry } from './registry';

export interface AdminContext {
  platform: SimulatedPlatform;
  registry: Registry;
  onlineClientId(device: Device): string | undefined;
  online(device: Device): { ext: number } | undefined;
  /** Revokes a token and tells the clients that hold it; returns whether the token existed. */
  revokeToken(token: string): boolean;
  gateways: Gateways;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** The largest request body the admin API reads: a payload at the services' limit, base64-encoded, fits. */
export const ADMIN_MAX_BODY_BYTES = 1024 * 1024;

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new BadRequest(`the path segment '${segment}' is not valid percent-encoding`);
  }
}

type Body = Record<string, unknown>;

function text(body: Body, name: string, required = true): string | undefined {
  const value = body[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '') throw new BadRequest(`${name} must be a non-empty string`);
  return value;
}

function device(body: Body): Device {
  return { productKey: text(body, 'productKey') as string, deviceName: text(body, 'deviceName') as string };
}

function devices(body: Body, name: string): Device[] {
  const list = body[name];
  if (!Array.isArray(list) || list.length === 0) throw new BadRequest(`${name} must be a non-empty array of {productKey, deviceName}`);
  return list.map((entry: unknown) => device((entry ?? {}) as Body));
}

/** A change the platform may refuse: its refusal is the caller's bad request. */
function refusable<T>(action: () => T): T {
  try {
    return action();
  } catch (err) {
    throw new BadRequest((err as Error).message);
  }
}

function timeout(body: Body, fallback?: number): number | undefined {
  const value = body.timeout ?? fallback;
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value > 0)) throw new BadRequest('timeout must be a positive number of milliseconds');
  return value;
}

/** `payload` as UTF-8 text, or `payloadBase64`. */
function payloadOf(body: Body): Buffer {
  if (typeof body.payloadBase64 === 'string') return Buffer.from(body.payloadBase64, 'base64');
  if (typeof body.payload === 'string') return Buffer.from(body.payload, 'utf8');
  if (body.payload !== undefined) return Buffer.from(JSON.stringify(body.payload), 'utf8');
  throw new BadRequest('payload or payloadBase64 is required');
}

function qos(body: Body): 0 | 1 {
  const value = body.qos ?? 0;
  if (value !== 0 && value !== 1) throw new BadRequest('qos must be 0 or 1');
  return value;
}

function rrpcResponse(result: RrpcResult): Body {
  const response: Body = { rrpcCode: result.rrpcCode, messageId: result.messageId };
  if (result.payload) {
    response.payload = result.payload.toString('utf8');
    response.payloadBase64 = result.payload.toString('base64');
  }
  return response;
}

async function route(context: AdminContext, method: string, path: string, body: Body): Promise<unknown> {
  const { platform, registry } = context;
  if (method === 'GET' && path === '/devices') {
    return {
      devices: registry.allDevices().map((entry) => ({
        ...entry,
        online: context.online(entry) !== undefined,
        clientId: context.onlineClientId(entry) ?? null,
      })),
    };
  }
  if (method === 'POST' && path === '/devices') {
    const created = device(body);
    if (!matches('deviceName', created.deviceName)) throw new BadRequest('deviceName is not a valid DeviceName');
    return { ...created, deviceSecret: refusable(() => registry.addDevice(created)) };
  }
  const properties = /^\/devices\/([^/]+)\/([^/]+)\/properties$/.exec(path);
  if (method === 'GET' && properties) {
    return { properties: platform.propertiesOf({ productKey: decodeSegment(properties[1]), deviceName: decodeSegment(properties[2]) }) };
  }
  const history = /^\/devices\/([^/]+)\/([^/]+)\/properties\/history$/.exec(path);
  if (method === 'GET' && history) {
    return { history: platform.historyOf({ productKey: decodeSegment(history[1]), deviceName: decodeSegment(history[2]) }) };
  }
  const topology = /^\/gateways\/([^/]+)\/([^/]+)\/topology$/.exec(path);
  if (method === 'GET' && topology) {
    const gateway = { productKey: decodeSegment(topology[1]), deviceName: decodeSegment(topology[2]) };
    return { subDevices: context.gateways.topologyOf(gateway), online: context.gateways.onlineThrough(gateway) };
  }
  if (method === 'POST' && (path === '/topology/add' || path === '/topology/delete')) {
    const gateway = device((body.gateway ?? {}) as Body);
    const subDevices = devices(body, 'subDevices');
    return {
      subDevices: refusable(() =>
        path === '/topology/add' ? context.gateways.adminAdd(gateway, subDevices) : context.gateways.adminDelete(gateway, subDevices),
      ),
    };
  }
  const state = /^\/devices\/(disable|enable|delete)$/.exec(path);
  if (method === 'POST' && state) {
    const target = device(body);
    refusable(() => context.gateways.setState(target, state[1] === 'disable' ? 'disabled' : state[1] === 'enable' ? 'active' : 'deleted'));
    return { success: true };
  }
  if (method === 'POST' && path === '/pub') {
    const topic = text(body, 'topic') as string;
    if (/[+#]/.test(topic)) throw new BadRequest('topic must not hold wildcards');
    platform.pub(topic, payloadOf(body), qos(body));
    return { success: true };
  }
  if (method === 'POST' && path === '/properties/set') {
    if (!body.items || typeof body.items !== 'object' || Array.isArray(body.items))
      throw new BadRequest('items must be an object of property values');
    const items = body.items as Record<string, unknown>;
    const { refusedCode, dropped } = checkProperties(items);
    if (refusedCode !== undefined) throw new BadRequest(`items holds more than ${PROPERTY_LIMITS.perPost} properties`);
    if (dropped.length > 0) throw new BadRequest(`items the platform does not take: ${dropped.slice(0, 3).join('; ')}`);
    return platform.setProperties(device(body), items, timeout(body));
  }
  if (method === 'POST' && path === '/services/invoke') {
    const serviceId = text(body, 'identifier') as string;
    const sync = body.sync === true;
    return platform.invokeService(device(body), serviceId, body.args ?? {}, sync, timeout(body, sync ? 5000 : undefined));
  }
  if (method === 'POST' && path === '/rrpc') {
    const limit = timeout(body, 5000) as number;
    if (limit < 1000 || limit > MAX_SYNC_TIMEOUT_MS) throw new BadRequest('timeout must be 1000-8000 ms, as RRpc allows');
    return rrpcResponse(await platform.rrpc(device(body), payloadOf(body), limit, text(body, 'topic', false)));
  }
  if (method === 'POST' && path === '/mq/tokens') {
    const actions = body.actions ?? 'RW';
    if (actions !== 'R' && actions !== 'W' && actions !== 'RW') throw new BadRequest('actions must be R, W or RW');
    if (!Array.isArray(body.resources) || !body.resources.every((resource) => typeof resource === 'string')) {
      throw new BadRequest('resources must be an array of topic filters');
    }
    const expireTime = body.expireTime ?? Date.now() + 3_600_000;
    if (typeof expireTime !== 'number') throw new BadRequest('expireTime must be milliseconds since the epoch');
    try {
      return registry.applyToken(text(body, 'instanceId') as string, {
        accessKeyId: text(body, 'accessKeyId') as string,
        actions,
        resources: body.resources as string[],
        expireTime,
      });
    } catch (err) {
      throw new BadRequest((err as Error).message);
    }
  }
  if (method === 'POST' && path === '/mq/tokens/revoke') {
    if (!context.revokeToken(text(body, 'token') as string)) throw new BadRequest('no such token');
    return { success: true };
  }
  if (path === '/rules' && method === 'GET') return { rules: platform.rules.list() };
  if (path === '/rules' && method === 'PUT') {
    try {
      platform.rules.replace(body.rules);
    } catch (err) {
      throw new BadRequest((err as Error).message);
    }
    return { rules: platform.rules.list() };
  }
  return undefined;
}

/** The path of a request target; any target the URL parser refuses (such as `//`) is a bad request. */
function requestPath(target: string | undefined): string {
  try {
    return new URL(target ?? '/', 'http://localhost').pathname;
  } catch {
    throw new BadRequest(`the request target '${target}' is not a valid path`);
  }
}

function readBody(request: http.IncomingMessage): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > ADMIN_MAX_BODY_BYTES) {
        request.removeAllListeners('data');
        request.resume();
        reject(new BadRequest(`the body is larger than ${ADMIN_MAX_BODY_BYTES} bytes`, 413));
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => {
      if (bytes > ADMIN_MAX_BODY_BYTES) return;
      if (chunks.length === 0) return resolve({});
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadRequest('the body must be a JSON object');
        resolve(parsed as Body);
      } catch (err) {
        reject(err instanceof BadRequest ? err : new BadRequest('the body is not valid JSON'));
      }
    });
  });
}

export function createAdminServer(context: AdminContext): http.Server {
  return http.createServer((request, response) => {
    /** Answers once: the body is serialised before the headers go, so a value that cannot be becomes a 500. */
    const send = (status: number, value: unknown): void => {
      if (response.headersSent) return;
      let text: string;
      try {
        text = JSON.stringify(value);
      } catch (err) {
        status = 500;
        text = JSON.stringify({ error: `the answer cannot be serialised: ${(err as Error).message}` });
      }
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(text);
    };
    const fail = (err: unknown): void => {
      const error = err instanceof Error ? err : new Error(String(err));
      send(error instanceof BadRequest ? error.status : 500, { error: error.message });
    };
    readBody(request)
      .then((body) => route(context, request.method ?? 'GET', requestPath(request.url), body))
      .then((result) =>
        result === undefined ? send(404, { error: `no such endpoint: ${request.method} ${request.url}` }) : send(200, result),
      )
      .catch(fail);
  });
}
