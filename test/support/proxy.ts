// A TCP proxy between a client and the simulator that can cut the network and hold back PUBACKs, so that tests can
// tell "written" from "acknowledged" and see what a client does while it is offline.
import * as net from 'node:net';
import { AddressInfo } from 'node:net';

const PUBLISH = 3;
const PUBACK = 4;

export interface ProxiedPublish {
  topic: string;
  payload: string;
  qos: number;
  /** When the proxy saw it (performance.now() ms). */
  at: number;
}

/** Topic, payload and QoS of a whole PUBLISH packet (MQTT 3.1.1). */
function parsePublish(packet: Buffer): ProxiedPublish {
  const qos = (packet[0] >> 1) & 0x03;
  let offset = 1;
  while ((packet[offset] & 0x80) !== 0) offset++;
  offset++;
  const topicLength = packet.readUInt16BE(offset);
  const topic = packet.toString('utf8', offset + 2, offset + 2 + topicLength);
  offset += 2 + topicLength + (qos > 0 ? 2 : 0);
  return { topic, payload: packet.toString('utf8', offset), qos, at: performance.now() };
}

/**
 * Splits a byte stream into whole MQTT packets (fixed header, remaining length, body) and hands each to `onPacket`.
 */
function packetSplitter(onPacket: (packet: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let offset = 1;
      let complete = false;
      while (offset < pending.length && offset <= 4) {
        const byte = pending[offset++];
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || pending.length < offset + length) return;
      onPacket(pending.subarray(0, offset + length));
      pending = pending.subarray(offset + length);
    }
  };
}

/** A proxy's listening side: a loopback port (OS-chosen) that hands each client to `accept`. */
abstract class ProxyServer {
  port = 0;
  protected readonly server: net.Server;

  constructor(protected readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  protected close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  protected abstract accept(client: net.Socket): void;
}

export class MqttProxy extends ProxyServer {
  /** Every PUBLISH from clients to the broker, in the order it went on the wire. */
  readonly published: ProxiedPublish[] = [];
  /** PUBACKs from the broker waiting for `releaseAcks()`, as [socket, packet]. */
  private held: Array<[net.Socket, Buffer]> = [];
  private holding = false;
  private cut = false;
  private readonly sockets = new Set<net.Socket>();

  /** Drops every connection and refuses new ones, as a network outage would. */
  cutNetwork(): void {
    this.cut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restoreNetwork(): void {
    this.cut = false;
  }

  /** From now on PUBACKs from the broker are kept back (other packets pass). */
  holdAcks(): void {
    this.holding = true;
  }

  get heldAcks(): number {
    return this.held.length;
  }

  releaseAcks(): void {
    this.holding = false;
    for (const [socket, packet] of this.held.splice(0)) if (!socket.destroyed) socket.write(packet);
  }

  async stop(): Promise<void> {
    this.cutNetwork();
    await this.close();
  }

  protected accept(client: net.Socket): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on(
      'data',
      packetSplitter((packet) => {
        if (packet[0] >> 4 === PUBLISH) this.published.push(parsePublish(packet));
        upstream.write(packet);
      }),
    );
    upstream.on(
      'data',
      packetSplitter((packet) => {
        if (this.holding && packet[0] >> 4 === PUBACK) this.held.push([client, Buffer.from(packet)]);
        else client.write(packet);
      }),
    );
  }
}

/**
 * A plain TCP proxy whose open connections can go silent: from `silence()` on they pass no byte either way, and a
 * close on one side does not reach the other, as when a peer vanishes without a FIN (a half-open connection).
 * Connections made later pass again.
 */
export class SilencingProxy extends ProxyServer {
  private readonly links = new Set<{ silent: boolean; sockets: [net.Socket, net.Socket] }>();

  silence(): void {
    for (const link of this.links) link.silent = true;
  }

  async stop(): Promise<void> {
    for (const link of this.links) for (const socket of link.sockets) socket.destroy();
    await this.close();
  }

  protected accept(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    const link = { silent: false, sockets: [client, upstream] as [net.Socket, net.Socket] };
    this.links.add(link);
    const pass = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!link.silent) to.write(chunk);
      });
      from.on('error', () => undefined);
      from.on('close', () => {
        if (link.silent) return;
        this.links.delete(link);
        to.destroy();
      });
    };
    pass(client, upstream);
    pass(upstream, client);
  }
}
