// Half-open AMQP connections (issue 16): a peer that goes silent without closing is detected by the AMQP
// idle-time-out on both sides, the simulator's listener closes it (and a connection that never logs in), and the
// cloud-application client connects again by its reconnect policy. A proxy that stops passing bytes makes the silence.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { MqttClient } from 'mqtt';
import { CloudApplicationConnection, ConnectionStatus, MessageReceiver, ReconnectPolicy } from '../../nodes/lib/connection';
import { RANGES } from '../../nodes/lib/protocol';
import { Simulator } from '../../sim';
import { UPDATE_TOPIC, amqpConsumer, cloudClient, connectDevice, endClients, startCloudSimulator } from '../support/cloud-fixtures';
import { waitFor } from '../support/helpers';
import { SilencingProxy } from '../support/proxy';
import { GROUP } from '../support/registry';

describe('AMQP: half-open connections are detected and closed', function () {
  let sim: Simulator;
  let proxy: SilencingProxy;
  let device: MqttClient | undefined;
  let cloud: CloudApplicationConnection | undefined;

  async function start(options: { amqpIdleTimeoutMs?: number; amqpAuthTimeoutMs?: number }): Promise<void> {
    sim = await startCloudSimulator(options);
    proxy = await new SilencingProxy({ host: '127.0.0.1', port: sim.amqpPort }).start();
  }

  afterEach(async function () {
    if (cloud) await new Promise<void>((resolve) => cloud?.close(resolve));
    cloud = undefined;
    if (device) await endClients(device);
    device = undefined;
    await proxy?.stop();
    await sim.stop();
  });

  function connect(policy: Partial<ReconnectPolicy>, statuses: ConnectionStatus[], heard: string[]): CloudApplicationConnection {
    const connection = cloudClient(sim, { clientId: 'idle-app', amqpPort: proxy.port, policy });
    connection.register({ onStatus: (status) => statuses.push(status) });
    const receiver: MessageReceiver = { onMessage: (_topic, payload) => heard.push(payload.toString()), onSubscribeError: () => undefined };
    connection.subscribe(receiver, '#');
    return connection;
  }

  const consumers = (): number => sim.amqp?.groups.stats(GROUP).consumers ?? -1;

  it('the client hears nothing for twice its idle-time-out, closes the link and connects again by its policy', async function () {
    await start({ amqpIdleTimeoutMs: 1500 });
    const statuses: ConnectionStatus[] = [];
    const heard: string[] = [];
    cloud = connect({ amqpIdleTimeoutMs: 150, networkBaseMs: 20, networkMaxMs: 50 }, statuses, heard);
    await waitFor(() => cloud?.status.state === 'connected' && consumers() === 1, 'the first link');
    let consumersWhenLost = -1;
    cloud.register({ onStatus: (status) => (consumersWhenLost = status.state === 'disconnected' ? consumers() : consumersWhenLost) });
    proxy.silence();
    await waitFor(() => consumersWhenLost >= 0, 'the client to notice the silence');
    assert.equal(consumersWhenLost, 1, 'the client noticed first: the listener still had the silent link');
    await waitFor(() => cloud?.status.state === 'connected' && consumers() === 2, 'the new link beside the silent one');
    await waitFor(() => consumers() === 1, 'the listener to drop the silent link at its idle timeout', 10_000);
    device = await connectDevice(sim, 'dev01');
    device.publish(UPDATE_TOPIC, 'after the silence', { qos: 1 });
    await waitFor(() => heard.includes('after the silence'), 'a device message on the new link');
    assert.deepEqual(
      statuses.map((status) => status.state).filter((state, index, all) => state !== all[index - 1]),
      ['idle', 'connecting', 'connected', 'disconnected', 'connecting', 'connected'],
    );
  });

  it('the listener closes a connection silent for its idle timeout, and one that does not log in in time', async function () {
    await start({ amqpIdleTimeoutMs: 200, amqpAuthTimeoutMs: 200 });
    const statuses: ConnectionStatus[] = [];
    // The client does not watch the silence itself: what ends the link is the listener.
    cloud = connect({ amqpIdleTimeoutMs: 0 }, statuses, []);
    await waitFor(() => cloud?.status.state === 'connected' && consumers() === 1, 'the link');
    proxy.silence();
    await waitFor(() => consumers() === 0, 'the listener to drop the silent consumer');

    for (const bytes of [Buffer.alloc(0), Buffer.from('AMQP\x03\x01\x00\x00')]) {
      const socket = net.connect(sim.amqpPort, '127.0.0.1', () => socket.write(bytes));
      socket.on('error', () => undefined);
      // Read what the listener sends (its protocol header), or the socket never sees the end.
      socket.resume();
      await new Promise((resolve) => socket.once('close', resolve));
    }
  });

  it("by default the listener keeps a silent connection for the client's idle-time-out, within the platform's range", async function () {
    await start({});
    // A client that announces no idle-time-out is kept for the longest the platform allows.
    const consumer = amqpConsumer(sim, { clientId: 'no-heartbeat' });
    await consumer.ready;
    const remote = (consumer.connection as unknown as { remote: { open?: { idle_time_out?: number } } }).remote;
    // The listener announces half its limit, since rhea closes a connection silent for twice the announced value.
    assert.equal(remote.open?.idle_time_out, RANGES.amqpIdleTimeoutMs.max / 2);
    await consumer.close();
  });
});
